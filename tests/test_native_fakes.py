"""Fake envs that follow the engine's env contract exactly (RoboBase conventions, gymnasium 0.29),
used by the test_native_* tests, plus checks that the fakes themselves honour the contract.

Frame contents are informative so replay tests can check stacking: the image of env i at step t
of episode e is filled with (7 t + 31 i + 3 e) % 256, and low_dim_state starts [i, e, t].
"""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from engines.config import default_config

TERMS = ("reach", "lift")


def frame_value(env: np.ndarray, ep: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (7 * t + 31 * env + 3 * ep) % 256


class FakeVectorEnv(gym.vector.VectorEnv):
    """N envs with frame stack F, random episode ends (truncation at a random length, termination
    on random 'success', optional sim faults), gymnasium-0.29 same-step auto-reset."""

    def __init__(self, num_envs: int = 2, pixels: bool = True, frame_stack: int = 3, image_size: int = 16,
                 seed: int = 0, ep_len: tuple[int, int] = (4, 12), term_prob: float = 0.05,
                 fault_prob: float = 0.0, torch_device: str | None = None,
                 step_hook: Callable[[int], None] | None = None) -> None:
        self.pixels, self.F, self.size, self.D = pixels, frame_stack, image_size, 18 if pixels else 21
        self.ep_len, self.term_prob, self.fault_prob = ep_len, term_prob, fault_prob
        self.torch_device, self.step_hook, self.steps = torch_device, step_hook, 0
        obs = {"low_dim_state": spaces.Box(-np.inf, np.inf, (frame_stack, self.D), np.float32)}
        if pixels:
            obs["rgb_wrist"] = spaces.Box(0, 255, (frame_stack, 3, image_size, image_size), np.uint8)
        single_obs = spaces.Dict(obs)
        single_act = spaces.Box(-1.0, 1.0, (1, 4), np.float32)
        super().__init__(num_envs, single_obs, single_act)
        self.single_observation_space, self.single_action_space = single_obs, single_act
        self.rng = np.random.default_rng(seed)
        self.ids = np.arange(num_envs)

    # -- helpers
    def _frame(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        t, ep = self.t[idx], self.ep[idx]
        low = self.rng.normal(size=(len(idx), self.D)).astype(np.float32)
        low[:, 0], low[:, 1], low[:, 2] = idx, ep, t
        out = {"low_dim_state": low}
        if self.pixels:
            v = frame_value(idx, ep, t).astype(np.uint8)
            out["rgb_wrist"] = np.broadcast_to(v[:, None, None, None], (len(idx), 3, self.size, self.size)).copy()
        return out

    def _start(self, idx: np.ndarray) -> None:
        self.t[idx] = 0
        self.limit[idx] = self.rng.integers(self.ep_len[0], self.ep_len[1] + 1, len(idx))
        self.sums[idx] = 0.0
        first = self._frame(idx)
        for k, v in first.items():
            self.stack[k][idx] = v[:, None]  # FrameStack reset refill: F copies of the first frame

    def _out(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        if self.torch_device is None:
            return {k: v.copy() for k, v in obs.items()}
        return {k: torch.as_tensor(v, device=self.torch_device) for k, v in obs.items()}

    # -- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        n = self.num_envs
        self.t, self.ep, self.limit = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
        self.sums = np.zeros((n, 1 + len(TERMS)))
        self.stack = {"low_dim_state": np.zeros((n, self.F, self.D), np.float32)}
        if self.pixels:
            self.stack["rgb_wrist"] = np.zeros((n, self.F, 3, self.size, self.size), np.uint8)
        self._start(self.ids)
        info = {"task_success": np.zeros(n), "sim_fault": np.zeros(n, bool)}
        return self._out(self.stack), info

    def step(self, actions):
        a = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        assert a.shape == (self.num_envs, 1, 4), a.shape
        assert a.dtype == np.float32 and np.all(np.abs(a) <= 1.0 + 1e-6)
        self.steps += 1
        if self.step_hook is not None:
            self.step_hook(self.steps)
        n = self.num_envs
        self.t += 1
        terms = np.stack([-np.abs(a[:, 0, 0]), 0.5 * (a[:, 0, 2] + 1.0)], axis=1)   # (N, 2)
        reward = terms.sum(1).astype(np.float32)
        fault = self.rng.random(n) < self.fault_prob
        success = self.rng.random(n) < self.term_prob
        terminated = success & ~fault
        truncated = (self.t >= self.limit) | fault
        self.sums += np.concatenate([reward[:, None], terms], axis=1)
        frame = self._frame(self.ids)
        if fault.any():
            frame["low_dim_state"][fault] = np.nan
            reward[fault] = np.nan
        for k, v in frame.items():
            self.stack[k] = np.concatenate([self.stack[k][:, 1:], v[:, None]], axis=1)
        info: dict[str, Any] = {f"reward/{t}": terms[:, j].astype(np.float32) for j, t in enumerate(TERMS)}
        info["task_success"] = success.astype(np.float32)
        info["sim_fault"] = fault
        done = terminated | truncated
        if done.any():
            idx = np.flatnonzero(done)
            final_obs = np.full(n, None, dtype=object)
            final_info = np.full(n, None, dtype=object)
            for i in idx:
                final_obs[i] = {k: v[i].copy() for k, v in self.stack.items()}
                final_info[i] = {"task_success": float(success[i]), "sim_fault": bool(fault[i]),
                                 "episode/return": float(self.sums[i, 0]),
                                 **{f"episode/{t}": float(self.sums[i, 1 + j]) for j, t in enumerate(TERMS)}}
            info.update({"final_observation": final_obs, "_final_observation": done.copy(),
                         "final_info": final_info, "_final_info": done.copy()})
            self.ep[idx] += 1
            self._start(idx)
        return self._out(self.stack), reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        pass


class FakeEvalEnv(gym.Env):
    """One unbatched env: obs dict of (F, ...) arrays, action (1, 4), render() HxWx3 uint8."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(self, pixels: bool = True, frame_stack: int = 3, image_size: int = 16, ep_len: int = 6) -> None:
        self.inner = FakeVectorEnv(1, pixels, frame_stack, image_size, ep_len=(ep_len, ep_len), term_prob=0.0)
        self.observation_space = self.inner.single_observation_space
        self.action_space = self.inner.single_action_space
        self.z = 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, _ = self.inner.reset(seed=seed)
        self.z = 0.015
        return {k: v[0] for k, v in obs.items()}, {"task_success": 0.0, "cube_z": self.z, "is_grasping": False}

    def step(self, action):
        a = np.asarray(action, dtype=np.float32)
        assert a.shape == (1, 4), a.shape
        obs, r, term, trunc, info = self.inner.step(a[None])
        self.z += 0.01 * float(a[0, 2])
        done_info = info.get("final_info", [None])[0]
        if done_info is not None:  # report the finished episode's last obs, like a plain env
            obs = info["final_observation"][0]
        else:
            obs = {k: v[0] for k, v in obs.items()}
        out = {"task_success": float(self.z > 0.05), "cube_z": self.z, "is_grasping": self.z > 0.03}
        return obs, float(r[0]), bool(term[0]), bool(trunc[0]), out

    def render(self) -> np.ndarray:
        return np.full((32, 32, 3), int(self.inner.t[0] * 20) % 256, dtype=np.uint8)


class FakeFactory:
    """make_train_env(cfg) / make_eval_env(cfg) like the project's env factories."""

    def __init__(self, **train_kwargs: Any) -> None:
        self.train_kwargs = train_kwargs

    def make_train_env(self, cfg) -> FakeVectorEnv:
        return FakeVectorEnv(cfg.num_train_envs, cfg.pixels, cfg.frame_stack, seed=cfg.seed, **self.train_kwargs)

    def make_eval_env(self, cfg) -> FakeEvalEnv:
        return FakeEvalEnv(cfg.pixels, cfg.frame_stack)


def tiny_cfg(**overrides: Any):
    """A config small enough for CPU tests (seconds), with dotted-key overrides."""
    base = {"num_train_envs": 4, "num_train_frames": 120, "num_explore_steps": 40, "replay_size_before_train": 40,
            "batch_size": 8, "update_every_steps": 4, "eval_every_steps": 0, "num_eval_episodes": 1, "snapshot_every_n": 60,
            "log_every": 40, "log_eval_video": False, "device": "cpu", "tb.use": False,
            "replay.size": 2000, "agent.hidden_dim": 32, "agent.feature_dim": 16,
            "agent.stddev_schedule": "linear(1.0,0.1,1000)"}
    base.update(overrides)
    return default_config(**base)


# ---------------------------------------------------------------------- contract checks
@pytest.mark.parametrize("pixels", [True, False])
def test_fake_vector_env_follows_contract(pixels: bool) -> None:
    env = FakeVectorEnv(num_envs=3, pixels=pixels, frame_stack=3, ep_len=(2, 3), term_prob=0.2)
    obs, _ = env.reset(seed=0)
    assert obs["low_dim_state"].shape == (3, 3, 18 if pixels else 21)
    assert ("rgb_wrist" in obs) == pixels
    if pixels:
        assert obs["rgb_wrist"].dtype == np.uint8 and obs["rgb_wrist"].shape == (3, 3, 3, 16, 16)
    saw_end = False
    for _ in range(6):
        obs, r, term, trunc, info = env.step(np.zeros((3, 1, 4), np.float32))
        assert r.shape == term.shape == trunc.shape == (3,)
        assert info["reward/reach"].shape == (3,) and info["sim_fault"].shape == (3,)
        for i in np.flatnonzero(term | trunc):
            saw_end = True
            assert info["_final_observation"][i]
            fin, fi = info["final_observation"][i], info["final_info"][i]
            assert fin["low_dim_state"].shape == (3, 18 if pixels else 21)
            assert {"task_success", "sim_fault", "episode/return", "episode/reach"} <= set(fi)
            # the returned obs is already the next episode's first obs: F copies of one frame
            low = obs["low_dim_state"][i]
            assert low[0, 2] == 0 and np.all(low[:, 1] == fin["low_dim_state"][-1, 1] + 1)
    assert saw_end


def test_fake_eval_env_follows_contract() -> None:
    env = FakeEvalEnv(pixels=True)
    obs, info = env.reset(seed=1)
    assert obs["rgb_wrist"].shape == (3, 3, 16, 16) and env.action_space.shape == (1, 4)
    obs, r, term, trunc, info = env.step(np.zeros((1, 4), np.float32))
    assert {"task_success", "cube_z", "is_grasping"} <= set(info)
    assert env.render().shape[2] == 3 and env.render().dtype == np.uint8
