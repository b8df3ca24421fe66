"""The SO-101 lift-cube task. Importing registers the gymnasium ids.

`LiftCube-MuJoCo-v0` and `LiftCube-Genesis-v0` are single envs; kwargs are task options
(``curriculum_stage``, ``reward_version``, ``image_size``, ``pixels``, ...; see
``envs.config.TaskConfig``).
"""
from envs._headless import setup_headless_gl

setup_headless_gl()  # before anything imports mujoco or genesis

import gymnasium as gym  # noqa: E402

from envs.config import ConfigError, TaskConfig, make_task_config  # noqa: E402

__all__ = ["ConfigError", "TaskConfig", "make_task_config"]

for _id, _entry in (("LiftCube-MuJoCo-v0", "envs.lift_env:LiftCubeMujocoEnv"),
                    ("LiftCube-Genesis-v0", "envs.genesis_env:LiftCubeGenesisEnv")):
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry, max_episode_steps=None, disable_env_checker=True)
