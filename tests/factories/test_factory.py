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


def test_eval_env_starts_at_home_when_training_starts_are_mixed():
    """task.stage0_starts changes where training episodes start; evaluations start at home."""
    f = MujocoLiftFactory()
    cfg = make_cfg(pixels=False, visual_observation_shape=None, num_train_envs=8, num_eval_episodes=8, num_eval_envs=8,
                   env={"task": {"curriculum_stage": 0, "stage0_starts": [0, 1, 0]}})
    train, ev = f.make_batched_env(cfg), f.make_batched_eval_env(cfg)
    try:
        _, tinfo = train.reset()
        _, einfo = ev.reset()
        above = tinfo["gripper_pos"][:, 2] - tinfo["cube_pos"][:, 2]  # (8,)
        assert bool(((above > 0.015) & (above < 0.045)).all())
        assert float((einfo["gripper_pos"][:, 2] - einfo["cube_pos"][:, 2]).min()) > 0.1
        assert float(einfo["gripper_pos"].std(0).max()) < 0.01  # one home pose, up to joint noise
    finally:
        train.close()
        ev.close()


class ContractBuffer:
    """RoboBase's UniformReplayBuffer add contract (`_check_add_types`), built as the Workspace
    builds it from the eval env's spaces: one frame per observation key ((F, ...) -> (...)),
    actions without the sequence axis ((T, A) -> (A,)), a scalar `demo`; shapes are refused
    with RoboBase's own message."""

    sequential = False

    def __init__(self, eval_env):
        self.obs_shapes = {k: sp.shape[1:] for k, sp in eval_env.observation_space.spaces.items()}
        self.action_shape = eval_env.action_space.shape[1:]
        self.rows, self.finals = [], []

    def _check(self, name, value, shape):
        got = np.shape(value)
        if got != tuple(shape):
            raise ValueError(f"arg {name} has shape {got}, expected {tuple(shape)}")

    def add(self, obs, action, reward, term, trunc, **extra):
        assert set(obs) == set(self.obs_shapes) and set(extra) == {"demo"}
        for k, v in obs.items():
            self._check(k, v, self.obs_shapes[k])
        self._check("action", action, self.action_shape)
        for name, v in (("reward", reward), ("terminal", term), ("truncated", trunc), ("demo", extra["demo"])):
            self._check(name, v, ())
        self.rows.append((obs, action, reward, term, trunc, extra["demo"]))

    def add_final(self, obs):
        for k, v in obs.items():
            self._check(k, v, self.obs_shapes[k])
        self.finals.append(obs)


@pytest.mark.parametrize("pixels", [False, True])
def test_demos_load_into_a_buffer_with_robobase_add_contract(pixels):
    f = MujocoLiftFactory()
    cfg = make_cfg(pixels=pixels, visual_observation_shape=[32, 32] if pixels else None, frame_stack=3)
    ev = f.make_eval_env(cfg)
    buf = ContractBuffer(ev)
    ev.close()
    f.collect_or_fetch_demos(cfg, 2)
    f.post_collect_or_fetch_demos(cfg)
    f.load_demos_into_replay(cfg, buf, is_demo_buffer=True)
    assert len(buf.finals) >= 1 and len(buf.rows) > 10
    obs, action, reward, term, trunc, demo = buf.rows[0]
    assert obs["low_dim_state"].shape == ((18,) if pixels else (21,)) and action.shape == (4,)
    if pixels:
        assert obs["rgb_wrist"].shape == (3, 32, 32) and obs["rgb_wrist"].dtype == np.uint8
    assert np.all(np.abs(action) <= 1.0) and demo == 1
    assert any(r[3] for r in buf.rows), "a successful demo ends with a termination"


def test_contract_buffer_refuses_stacked_frames_as_robobase_does():
    buf = ContractBuffer(type("E", (), {"observation_space": type("S", (), {"spaces": {
        "low_dim_state": np.zeros((3, 21))}})(), "action_space": np.zeros((1, 4))})())
    with pytest.raises(ValueError, match=r"arg action has shape \(1, 4\), expected \(4,\)"):
        buf.add({"low_dim_state": np.zeros(21)}, np.zeros((1, 4)), 0.0, False, False, demo=1)
    with pytest.raises(ValueError, match=r"arg low_dim_state has shape \(3, 21\), expected \(21,\)"):
        buf.add({"low_dim_state": np.zeros((3, 21))}, np.zeros(4), 0.0, False, False, demo=1)


@pytest.mark.parametrize("over,match", [
    ({"num_train_envs": 0}, r"num_train_envs=0 is invalid: allowed an integer from 1 to 65536"),
    ({"frame_stack": 0}, r"frame_stack=0 is invalid"),
    ({"visual_observation_shape": [84, 64]}, r"visual_observation_shape=\[84, 64\] is invalid"),
    ({"env": {"task": {"curriculum_stage": 9}}}, r"curriculum_stage=9 is invalid"),
])
def test_bad_config_named_before_any_env_starts(over, match):
    with pytest.raises(ConfigError, match=match):
        MujocoLiftFactory().make_train_env(make_cfg(**over))


WITHOUT_ROBOBASE = """
import sys
sys.modules["robobase"] = None  # import robobase now fails, as when it is not installed
import numpy as np
from omegaconf import OmegaConf
from factories import MujocoLiftFactory
cfg = OmegaConf.create({"env": {"task": {"curriculum_stage": 3}}, "pixels": False, "visual_observation_shape": None,
                        "num_train_envs": 1, "frame_stack": 2, "action_sequence": 1, "seed": 7, "demos": 0})
env = MujocoLiftFactory().make_eval_env(cfg)
obs, _ = env.reset(seed=0)
obs, reward, term, trunc, info = env.step(np.zeros((1, 4), np.float32))
env.close()
assert obs["low_dim_state"].shape == (2, 21) and np.isfinite(reward), (obs["low_dim_state"].shape, reward)
assert not any(m.partition(".")[0] == "robobase" for m, mod in sys.modules.items() if mod is not None)
print("ok")
"""


def test_factory_works_without_robobase():
    """The plugin imports and builds a working env with RoboBase absent (whether or not this
    machine has it), and is RoboBase's EnvFactory where RoboBase is installed."""
    import importlib.util
    import os
    import subprocess
    import sys

    from tests._cli import ROOT, child_env

    env = child_env(PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    r = subprocess.run([sys.executable, "-c", WITHOUT_ROBOBASE], cwd=ROOT, env=env, capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout[-2000:] + r.stderr[-3000:]
    if importlib.util.find_spec("robobase") is not None:  # pragma: no cover - RoboBase installed
        from robobase.envs.env import EnvFactory

        assert issubclass(MujocoLiftFactory, EnvFactory)


def test_a_robobase_config_without_our_keys_takes_their_declared_defaults():
    """RoboBase's own config has its shared keys but not ours (num_eval_envs, demo_noise, env.*):
    the factory reads those as runconfig.schema declares them, and still checks what is there."""
    from factories import factory_config
    from runconfig.schema import declared_default

    cfg = make_cfg(pixels=False, visual_observation_shape=None, num_eval_episodes=12)
    fc = factory_config(cfg)
    for key in ("num_eval_envs", "demo_noise", "env.sim_device", "env.renderer", "env.as_torch"):
        assert getattr(fc, key.removeprefix("env.")) == declared_default(key), key
    assert fc.engine is None and fc.seed == 7 and fc.num_eval_episodes == 12
    env = MujocoLiftFactory().make_batched_eval_env(cfg)
    try:
        assert env.num_envs == MujocoLiftFactory.default_eval_envs  # num_eval_envs: null, 12 episodes
    finally:
        env.close()
    with pytest.raises(ConfigError, match=r"demo_noise=2\.0 is invalid: allowed"):
        MujocoLiftFactory().make_expert(make_cfg(demo_noise=2.0), 1)
