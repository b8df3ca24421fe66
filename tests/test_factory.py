"""The EnvFactory plugin: spaces, seeding, demos in RoboBase's format, bad config."""
from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from envs.config import ConfigError
from factories import MujocoLiftFactory


def make_cfg(**over):
    base = {"env": {"task": {"curriculum_stage": 3}}, "pixels": True, "visual_observation_shape": [32, 32],
            "num_train_envs": 2, "frame_stack": 2, "action_sequence": 1, "seed": 7, "demos": 0}
    base.update(over)
    return OmegaConf.create(base)


def test_mujoco_train_env_is_async_and_matches_eval_spaces():
    f = MujocoLiftFactory()
    cfg = make_cfg()
    train = f.make_train_env(cfg)
    ev = f.make_eval_env(cfg)
    try:
        assert train.num_envs == 2
        assert train.single_observation_space == ev.observation_space
        assert train.single_action_space == ev.action_space
        obs, _ = train.reset(seed=cfg.seed)
        assert obs["rgb_wrist"].shape == (2, 2, 3, 32, 32) and obs["low_dim_state"].shape == (2, 2, 18)
        assert not np.array_equal(obs["low_dim_state"][0], obs["low_dim_state"][1])  # seeds differ per env
        _, r, term, trunc, info = train.step(np.zeros((2, 1, 4), np.float32))
        assert r.shape == (2,) and info["task_success"].shape == (2,) and info["demo"].shape == (2,)
    finally:
        train.close()
        ev.close()


class FakeBuffer:
    sequential = False

    def __init__(self):
        self.rows, self.finals = [], []

    def add(self, obs, action, reward, term, trunc, demo):
        self.rows.append((obs, action, reward, term, trunc, demo))

    def add_final(self, obs):
        self.finals.append(obs)


def test_demos_follow_robobase_format():
    f = MujocoLiftFactory()
    cfg = make_cfg(pixels=False, visual_observation_shape=None)
    f.collect_or_fetch_demos(cfg, 2)
    f.post_collect_or_fetch_demos(cfg)
    buf = FakeBuffer()
    f.load_demos_into_replay(cfg, buf, is_demo_buffer=True)
    assert len(buf.finals) >= 1 and len(buf.rows) > 10
    obs, action, reward, term, trunc, demo = buf.rows[0]
    assert obs["low_dim_state"].shape == (2, 21) and action.shape == (1, 4)
    assert np.all(np.abs(action) <= 1.0) and demo == 1
    assert any(r[3] for r in buf.rows), "a successful demo ends with a termination"


@pytest.mark.parametrize("over,match", [
    ({"num_train_envs": 0}, r"num_train_envs=0 is invalid: allowed an integer from 1 to 65536"),
    ({"frame_stack": 0}, r"frame_stack=0 is invalid"),
    ({"visual_observation_shape": [84, 64]}, r"visual_observation_shape=\[84, 64\] is invalid"),
    ({"env": {"task": {"curriculum_stage": 9}}}, r"curriculum_stage=9 is invalid"),
])
def test_bad_config_named_before_any_env_starts(over, match):
    with pytest.raises(ConfigError, match=match):
        MujocoLiftFactory().make_train_env(make_cfg(**over))


def test_factory_works_without_robobase():
    import importlib.util

    import factories.factory as ff

    if importlib.util.find_spec("robobase") is None:
        assert ff._EnvFactoryBase.__module__ == "factories.factory"
    else:  # pragma: no cover
        from robobase.envs.env import EnvFactory

        assert issubclass(MujocoLiftFactory, EnvFactory)
