"""Fake envs that follow the engine's env contract exactly (`envs.batched`: torch tensors, next-step
auto-reset), used by the tests under tests/learning/, plus checks that the fakes themselves honour it.

Frame contents are informative so replay tests can check stacking: the image of env i at step t
of episode e is filled with (7 t + 31 i + 3 e) % 256, and low_dim_state starts [i, e, t].
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch
from gymnasium import spaces

from envs.batched import Step
from runconfig.compose import default_config

TERMS = ("reach", "lift")


def frame_value(env: np.ndarray, ep: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (7 * t + 31 * env + 3 * ep) % 256


class FakeBatchedEnv:
    """N envs with frame stack F, random episode ends (truncation at a random length, termination
    on random 'success', optional sim faults). An ended env is reset on the next step, which
    ignores its action and returns its first observation with `reset` set."""

    action_dim = 4
    device = torch.device("cpu")

    def __init__(self, num_envs: int = 2, pixels: bool = True, frame_stack: int = 3, image_size: int = 16,
                 seed: int = 0, ep_len: tuple[int, int] = (4, 12), term_prob: float = 0.05,
                 fault_prob: float = 0.0, step_hook: Callable[[int], None] | None = None) -> None:
        self.num_envs, self.pixels, self.F, self.size, self.D = num_envs, pixels, frame_stack, image_size, \
            18 if pixels else 21
        self.ep_len, self.term_prob, self.fault_prob = ep_len, term_prob, fault_prob
        self.step_hook, self.steps = step_hook, 0
        obs = {"low_dim_state": spaces.Box(-np.inf, np.inf, (frame_stack, self.D), np.float32)}
        if pixels:
            obs["rgb_wrist"] = spaces.Box(0, 255, (frame_stack, 3, image_size, image_size), np.uint8)
        self.single_observation_space = spaces.Dict(obs)
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

    def _obs(self) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v.copy()) for k, v in self.stack.items()}

    # -- the contract
    def reset(self, seed: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        n = self.num_envs
        self.t, self.ep, self.limit = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
        self.sums = np.zeros((n, 1 + len(TERMS)))
        self.pending = np.zeros(n, bool)
        self.stack = {"low_dim_state": np.zeros((n, self.F, self.D), np.float32)}
        if self.pixels:
            self.stack["rgb_wrist"] = np.zeros((n, self.F, 3, self.size, self.size), np.uint8)
        self._start(self.ids)
        return self._obs(), {"task_success": torch.zeros(n), "sim_fault": torch.zeros(n, dtype=torch.bool)}

    def from_ee_delta(self, action: torch.Tensor) -> torch.Tensor:
        """An ee_delta task: the expert's action as it is (envs.batched.BatchedLiftEnv.from_ee_delta)."""
        return action

    def step(self, action: torch.Tensor) -> Step:
        assert isinstance(action, torch.Tensor) and action.shape == (self.num_envs, 4), action.shape
        n, pending = self.num_envs, self.pending
        a = np.where(pending[:, None], 0.0, action.numpy()).astype(np.float32)  # a reset row's action is ignored
        assert action.dtype == torch.float32 and np.all(np.abs(a) <= 1.0 + 1e-6)
        self.steps += 1
        if self.step_hook is not None:
            self.step_hook(self.steps)
        self.t += 1
        terms = np.stack([-np.abs(a[:, 0]), 0.5 * (a[:, 2] + 1.0)], axis=1)   # (N, 2)
        reward = terms.sum(1).astype(np.float32)
        fault = (self.rng.random(n) < self.fault_prob) & ~pending
        success = (self.rng.random(n) < self.term_prob) & ~pending
        terminated = success & ~fault
        truncated = ((self.t >= self.limit) | fault) & ~pending
        self.sums += np.concatenate([reward[:, None], terms], axis=1)
        frame = self._frame(self.ids)
        if fault.any():
            frame["low_dim_state"][fault] = np.nan
            reward[fault] = np.nan
        for k, v in frame.items():
            self.stack[k] = np.concatenate([self.stack[k][:, 1:], v[:, None]], axis=1)
        if pending.any():  # last step's ended envs start over; their action was ignored
            idx = np.flatnonzero(pending)
            self.ep[idx] += 1
            self._start(idx)
            reward[idx], terms[idx] = 0.0, 0.0
        info = {f"reward/{t}": torch.as_tensor(terms[:, j], dtype=torch.float32) for j, t in enumerate(TERMS)}
        info["task_success"] = torch.as_tensor(success, dtype=torch.float32)
        info["sim_fault"] = torch.as_tensor(fault)
        info["episode/return"] = torch.as_tensor(self.sums[:, 0], dtype=torch.float32)
        info.update({f"episode/{t}": torch.as_tensor(self.sums[:, 1 + j], dtype=torch.float32)
                     for j, t in enumerate(TERMS)})
        self.pending = terminated | truncated
        return Step(self._obs(), torch.as_tensor(reward), torch.as_tensor(terminated), torch.as_tensor(truncated),
                    torch.as_tensor(pending.copy()), torch.as_tensor(fault), info)

    def close(self) -> None:
        pass


class FakeEvalEnv(FakeBatchedEnv):
    """The eval env contract: FakeBatchedEnv with fixed-length episodes, the info the episode loop reads
    (`cube_z` rises with the actions' z, `is_grasping` above 3 cm, `task_success` above 5 cm),
    per-env seeds (`seed_envs`, recorded in `seeds`) and `render(i)`, HxWx3 uint8 frames."""

    def __init__(self, num_envs: int = 1, pixels: bool = True, frame_stack: int = 3, image_size: int = 16,
                 ep_len: int = 6) -> None:
        super().__init__(num_envs, pixels, frame_stack, image_size, ep_len=(ep_len, ep_len), term_prob=0.0)
        self.seeds: dict[int, int] = {}
        self.z = np.zeros(num_envs)

    def _info(self) -> dict[str, torch.Tensor]:
        return {"cube_z": torch.as_tensor(self.z, dtype=torch.float32),
                "is_grasping": torch.as_tensor(self.z > 0.03), "task_success": torch.as_tensor(self.z > 0.05).float()}

    def seed_envs(self, ids, seeds) -> None:
        self.seeds.update(zip((int(i) for i in ids), (int(s) for s in seeds)))

    def reset(self, seed: Any = None):
        if isinstance(seed, (list, tuple)):
            self.seed_envs(range(self.num_envs), seed)
            seed = seed[0]
        obs, info = super().reset(seed)
        self.z = np.full(self.num_envs, 0.015)
        return obs, {**info, **self._info()}

    def step(self, action: torch.Tensor) -> Step:
        pending = self.pending.copy()
        s = super().step(action)
        self.z = np.where(pending, 0.015, self.z + 0.01 * action[:, 2].numpy())
        s.info.update(self._info())
        return s

    def render(self, env: int = 0) -> np.ndarray:
        return np.full((32, 32, 3), int(self.t[env] * 20) % 256, dtype=np.uint8)


class FakeFactory:
    """make_batched_env(cfg) / make_batched_eval_env(cfg) like the project's env factories."""

    def __init__(self, **train_kwargs: Any) -> None:
        self.train_kwargs = train_kwargs

    def make_batched_env(self, cfg) -> FakeBatchedEnv:
        return FakeBatchedEnv(cfg.num_train_envs, cfg.pixels, cfg.frame_stack, seed=cfg.seed, **self.train_kwargs)

    def make_batched_eval_env(self, cfg) -> FakeEvalEnv:
        return FakeEvalEnv(min(cfg.num_eval_envs or 2, cfg.num_eval_episodes), cfg.pixels, cfg.frame_stack)


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
def check_batched_contract(env: Any, steps: int, action: Callable[[int], torch.Tensor] | None = None) -> int:
    """What the engine relies on, for any env of the batched contract; returns the episodes that ended.

    Tensors with the env axis first; an ending step shows the episode's final obs and its
    sums; the next step resets that env (`reset`, reward 0, no end) and shows F copies of its
    first frame; nothing else is reset.
    """
    n = env.num_envs
    obs, info = env.reset(seed=0)
    shapes = {k: (n, *s.shape) for k, s in env.single_observation_space.spaces.items()}
    assert {k: tuple(v.shape) for k, v in obs.items()} == shapes
    ended, was_done = 0, torch.zeros(n, dtype=torch.bool)
    for t in range(steps):
        a = action(t) if action is not None else torch.zeros(n, env.action_dim)
        s = env.step(a)
        assert {k: tuple(v.shape) for k, v in s.obs.items()} == shapes
        assert s.reward.shape == s.terminated.shape == s.truncated.shape == s.reset.shape == s.fault.shape == (n,)
        assert s.reward.dtype == torch.float32 and s.reset.dtype == torch.bool
        assert torch.equal(s.reset, was_done)                              # reset exactly the envs that ended
        assert not bool((s.done & s.reset).any()) and bool((s.reward[s.reset] == 0).all())
        assert not bool((s.fault & ~s.truncated).any())                    # a fault ends the episode
        for k, v in s.obs.items():                                         # a reset row: F copies of one frame
            if bool(s.reset.any()):
                first = v[s.reset][:, :1]
                assert torch.equal(v[s.reset], first.expand_as(v[s.reset])), k
        if bool(s.done.any()):
            assert {"task_success", "episode/return"} <= set(s.info)
        ended += int(s.done.sum())
        was_done = s.done.clone()
        obs = s.obs
    return ended


@pytest.mark.parametrize("pixels", [True, False])
def test_fake_batched_env_follows_contract(pixels: bool) -> None:
    env = FakeBatchedEnv(num_envs=3, pixels=pixels, frame_stack=3, ep_len=(2, 3), term_prob=0.2, fault_prob=0.05)
    assert check_batched_contract(env, 30) > 5
    obs, _ = env.reset(seed=0)
    if pixels:
        assert obs["rgb_wrist"].dtype == torch.uint8 and obs["rgb_wrist"].shape == (3, 3, 3, 16, 16)
    s = env.step(torch.zeros(3, 4))
    assert s.info["reward/reach"].shape == (3,) and s.info["sim_fault"].shape == (3,)


def test_fake_eval_env_follows_contract() -> None:
    env = FakeEvalEnv(num_envs=2, pixels=True, ep_len=3)
    assert check_batched_contract(env, 12) == 6
    obs, info = env.reset(seed=[5, 6])
    assert obs["rgb_wrist"].shape == (2, 3, 3, 16, 16) and env.seeds == {0: 5, 1: 6}
    s = env.step(torch.zeros(2, 4))
    assert {"task_success", "cube_z", "is_grasping"} <= set(s.info) and s.info["cube_z"].shape == (2,)
    assert env.render(1).shape[2] == 3 and env.render(1).dtype == np.uint8
