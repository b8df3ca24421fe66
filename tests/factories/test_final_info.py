"""Info, observations and auto-reset's `final_info` / `final_observation` keep the values of the step
that made them: later steps and resets must not change what was handed out.

Short episodes (3 steps), state only. The last step of an episode sends a distinctive action, which
`final_info[i]["action"]` must report (rescaled by RescaleFromTanh, as info reports the action).
"""
from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

import envs  # noqa: F401  (registers LiftCube-MuJoCo-v0)
from envs.batched import rescale_from_tanh
from factories import MujocoLiftFactory
from factories.vector_env import WrappedGenesisVectorEnv

EP = 3  # steps per episode
TASK = {"curriculum_stage": 3, "episode_length": EP, "hold_steps": EP}
LAST = np.array([[0.3, -0.7, 0.5, -0.9], [-0.2, 0.6, -0.4, 0.8]], np.float32)  # (2, 4): env i's last action
OTHER = np.array([[-0.5, 0.1, 0.9, 0.4], [0.7, -0.3, 0.2, -0.6]], np.float32)  # (2, 4): any other step's


def reported(action: np.ndarray) -> np.ndarray:
    """The action as info reports it: after RoboBase's RescaleFromTanh."""
    return rescale_from_tanh(torch.from_numpy(action)).numpy()


def keep(kept: list, want: list, value: Any) -> Any:
    """Keeps what an env handed out, and a deep copy of it taken now, to compare with later."""
    kept.append(value)
    want.append(copy.deepcopy(value))
    return value


def assert_same(got: Any, want: Any, where: str = "") -> None:
    """`got` equals `want` (a deep copy taken earlier) value for value: lists, tuples, dicts, object
    arrays, arrays, tensors and scalars, recursively."""
    if isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, dict):
        assert set(got) == set(want), where
        for k in want:
            assert_same(got[k], want[k], f"{where}/{k}")
    elif isinstance(want, np.ndarray) and want.dtype == object:
        assert got.shape == want.shape, where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, (np.ndarray, torch.Tensor)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=where)
    else:
        assert got == want, where


# ---------------------------------------------------------------------------------------------- MuJoCo
def cfg(num_envs: int) -> DictConfig:
    """The run config of the MuJoCo factory: state only, 3-step episodes, `num_envs` envs."""
    return OmegaConf.create({"env": {"task": TASK}, "pixels": False, "num_train_envs": num_envs, "frame_stack": 1,
                             "action_sequence": 1, "seed": 0, "demos": 0})


def test_mujoco_vector_env_final_info_holds_the_last_steps_action():
    """MujocoLiftFactory's train env (gymnasium's vector env over single envs, as RoboBase gets it)."""
    env = MujocoLiftFactory().make_train_env(cfg(1))
    try:
        env.reset(seed=0)
        for _ in range(EP - 1):
            *_, info = env.step(OTHER[:1, None])
            assert "final_info" not in info
        *_, trunc, info = env.step(LAST[:1, None])
        assert trunc.tolist() == [True] and info["_final_info"].tolist() == [True]
        np.testing.assert_array_equal(info["final_info"][0]["action"], reported(LAST[0]))
        np.testing.assert_array_equal(info["final_info"][0]["prev_action"], reported(OTHER[0]))
    finally:
        env.close()


def test_mujoco_env_info_is_not_changed_by_later_steps_or_resets():
    """The single gymnasium env: obs and info of a reset and of an episode's steps, each compared with a
    copy taken when it was handed out, after later resets and a step."""
    env = gym.make("LiftCube-MuJoCo-v0", pixels=False, **TASK)
    try:
        kept, want = [], []
        keep(kept, want, env.reset(seed=0))
        for t in range(EP):
            *_, trunc, info = keep(kept, want, env.step(LAST[0] if t == EP - 1 else OTHER[0]))
        assert trunc is True
        np.testing.assert_array_equal(info["action"], LAST[0])
        env.reset(seed=1)
        env.step(OTHER[1])
        env.reset(seed=2)
        assert_same(kept, want)
    finally:
        env.close()


def test_batched_env_info_is_not_changed_by_later_steps_or_resets():
    """The native engine's batched env (torch out): obs and info of a reset and of every step through
    the next-step reset, each compared with a copy taken when it was handed out, after a full reset."""
    env = MujocoLiftFactory().make_batched_env(cfg(2))
    try:
        kept, want = [], []
        keep(kept, want, env.reset(seed=0))
        for t in range(EP + 2):  # the episode, the step that resets both envs, one more
            s = env.step(torch.from_numpy(LAST if t == EP - 1 else OTHER))
            keep(kept, want, (s.obs, s.info))
        torch.testing.assert_close(kept[EP][1]["action"], torch.from_numpy(LAST), rtol=0, atol=0)
        env.reset(seed=1)
        assert_same(kept, want)
    finally:
        env.close()


# --------------------------------------------------------------------------------------------- Genesis
@pytest.fixture(scope="module")
def genesis_vec():
    env = WrappedGenesisVectorEnv({**TASK, "pixels": False}, num_envs=2, frame_stack=2, action_sequence=1,
                                  sim_device="cpu", seed=0, as_torch=False)
    yield env
    env.close()


@pytest.mark.slow
def test_genesis_vector_env_final_info_holds_the_last_steps_action(genesis_vec):
    genesis_vec.reset(seed=0)
    for _ in range(EP - 1):
        genesis_vec.step(OTHER[:, None])
    *_, trunc, info = genesis_vec.step(LAST[:, None])
    assert trunc.tolist() == [True, True] and info["_final_info"].tolist() == [True, True]
    for i in range(2):
        np.testing.assert_array_equal(info["final_info"][i]["action"], reported(LAST[i]))
        np.testing.assert_array_equal(info["final_info"][i]["prev_action"], reported(OTHER[i]))


@pytest.mark.slow
def test_genesis_vector_env_info_is_not_changed_by_later_steps_or_resets(genesis_vec):
    """Obs and info (final_observation and final_info included) of a reset and of every step of an
    episode (the last one auto-resets) and one more, each compared with a copy taken when it was
    handed out, after a reset and a step."""
    kept, want = [], []
    keep(kept, want, genesis_vec.reset(seed=3))
    for t in range(EP + 1):
        keep(kept, want, genesis_vec.step((LAST if t == EP - 1 else OTHER)[:, None]))
    assert kept[EP][-1]["_final_info"].all()
    genesis_vec.reset(seed=4)
    genesis_vec.step(OTHER[:, None])
    assert_same(kept, want)
