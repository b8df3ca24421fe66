"""The typed config the env factories build from: the one place they read a run config.

The factories serve two callers. The native engine's config was composed from runconfig.schema
and validated at the door, so it holds every key. RoboBase's Workspace passes its own config:
RoboBase's shared keys (`num_train_envs`, `frame_stack`, `action_sequence`, `pixels`,
`visual_observation_shape`, `seed`, `num_eval_episodes`) and the `env` node the engine copies
onto it, but none of this project's other keys (`num_eval_envs`, `demo_noise`,
`env.sim_device`, ...). `factory_config(cfg)` reads either: a key the config lacks takes the
default runconfig.schema declares for it, every value is checked by the key's declared rule, and
the result is a frozen, typed `FactoryConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from envs.config import STAGE0_HOME, ConfigError, TaskConfig, make_task_config
from runconfig.rules import RULES, check_value
from runconfig.schema import declared_default

_ABSENT = object()


def declared(cfg: DictConfig, key: str) -> Any:
    """`cfg`'s value for the dotted `key`, or the schema's default when the config lacks it;
    checked by the key's rule (ConfigError naming the key, the value and what is allowed)."""
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    if value is _ABSENT:
        value = declared_default(key)
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return check_value(key, value) if key in RULES else value


@dataclass(frozen=True)
class FactoryConfig:
    """What the factories read of a run config, typed and checked."""

    seed: int
    frame_stack: int
    action_sequence: int
    num_train_envs: int
    num_eval_episodes: int
    num_eval_envs: int | None  # null: the backend's default (the factory's default_eval_envs)
    demo_noise: float
    sim_device: str            # env.* keys: Genesis reads them
    renderer: str
    as_torch: bool | str
    engine: str | None         # engine.name; None in a config without an engine (RoboBase's own)
    task: dict[str, Any]       # TaskConfig kwargs: `task_kwargs`

    def task_config(self) -> TaskConfig:
        return make_task_config(**self.task)

    @property
    def eval_task(self) -> dict[str, Any]:
        """The task as evaluated (RoboBase's eval and demo env too): `at_home`."""
        return at_home(self.task)


def factory_config(cfg: DictConfig) -> FactoryConfig:
    return FactoryConfig(
        seed=int(declared(cfg, "seed")), frame_stack=int(declared(cfg, "frame_stack")),
        action_sequence=int(declared(cfg, "action_sequence")), num_train_envs=int(declared(cfg, "num_train_envs")),
        num_eval_episodes=int(declared(cfg, "num_eval_episodes")), num_eval_envs=declared(cfg, "num_eval_envs"),
        demo_noise=float(declared(cfg, "demo_noise")), sim_device=str(declared(cfg, "env.sim_device")),
        renderer=str(declared(cfg, "env.renderer")), as_torch=declared(cfg, "env.as_torch"),
        engine=OmegaConf.select(cfg, "engine.name"), task=task_kwargs(cfg))


def task_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """TaskConfig kwargs from the run config: the `task` group (and `env.task`, if an env sets
    any), plus RoboBase's shared keys and the stage/reward groups."""
    kw: dict[str, Any] = {}
    for node in (OmegaConf.select(cfg, "task"), OmegaConf.select(cfg, "env.task")):
        if node is not None:
            kw.update(OmegaConf.to_container(node, resolve=True) or {})
    # Hydra groups each write their own node; the task sees them as plain options.
    if isinstance(OmegaConf.select(cfg, "curriculum_stage"), DictConfig):
        kw["curriculum_stage"] = cfg.curriculum_stage.stage
    if isinstance(OmegaConf.select(cfg, "reward_version"), DictConfig):
        kw["reward_version"] = cfg.reward_version.name
    episode_length = OmegaConf.select(cfg, "env.episode_length", default=_ABSENT)
    if episode_length is not _ABSENT:
        kw["episode_length"] = episode_length
    kw["pixels"] = bool(cfg.pixels)
    shape = OmegaConf.select(cfg, "visual_observation_shape", default=_ABSENT)
    if shape is _ABSENT:
        shape = declared_default("visual_observation_shape")
    if shape is not None:
        items = list(shape) if isinstance(shape, (list, tuple, ListConfig)) else None
        if items is None or len(items) != 2 or not all(isinstance(s, int) and not isinstance(s, bool)
                                                       for s in items) or items[0] != items[1]:
            shown = OmegaConf.to_container(shape) if OmegaConf.is_config(shape) else shape
            raise ConfigError(f"visual_observation_shape={shown!r} is invalid: allowed [S, S] (a square, S an "
                              "integer)")
        kw["image_size"] = items[0]
    return kw


def at_home(task: dict[str, Any]) -> dict[str, Any]:
    """TaskConfig kwargs of the task as evaluated: every start at home (stage0_starts is where
    training episodes start, not the task)."""
    return {**task, "stage0_starts": STAGE0_HOME}


def eval_task_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """`task_kwargs` of the task as evaluated (`at_home`)."""
    return at_home(task_kwargs(cfg))
