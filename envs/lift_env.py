"""Single-env gymnasium API over the batched task (a batch of one)."""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from envs.actions import ACTION_MEANING
from envs.backend import Backend
from envs.batched import BatchedLiftEnv, observation_space, rescale_from_tanh  # noqa: F401 (observation_space: API)
from envs.config import TaskConfig, check_backend, make_task_config
from envs.task import LiftTask


def info_to_numpy(info: dict[str, torch.Tensor], i: int = 0) -> dict[str, Any]:
    """Env i's slice of a batched info dict, as a single env gives it: Python scalars, NumPy arrays.

    The arrays are copies (a few small vectors): a CPU tensor's `.numpy()` would share memory with
    the batch, so a caller writing into its info could change the task's, and the other way round.
    """
    out: dict[str, Any] = {}
    for k, v in info.items():
        x = v[i].detach()
        out[k] = x.item() if x.ndim == 0 else x.to("cpu", copy=True).numpy()
    return out


class LiftCubeEnv(gym.Env):
    """The lift task as one gymnasium env: the batched env (envs.batched) with a batch of one.

    Plain, as `gym.make` gives it: observations (...) and (4,) actions. With `frame_stack` and
    `action_sequence` it is what RoboBase's wrapper chain (RescaleFromTanh -> FrameStack ->
    ActionSequence -> AppendDemoInfo) makes of the plain env: (F, ...) observations, (T, 4)
    actions, `demo` and (steps only) `action_sequence_mask` in info. The factories give that form
    to RoboBase as its eval env and vectorise it for MuJoCo; tests/factories/test_vector_env.py checks it
    against the batched Genesis env. `backend_fn(cfg)` builds the physics; `seed` seeds the task
    (else the first reset draws a seed from the env's np_random).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, backend_fn: Callable[[TaskConfig], Backend], render_mode: str | None = "rgb_array",
                 frame_stack: int | None = None, action_sequence: int | None = None, seed: int | None = None,
                 **task_kwargs: Any) -> None:
        self.cfg = make_task_config(**task_kwargs)  # validated before any simulator starts
        self.render_mode = render_mode
        self.chain = frame_stack is not None
        self.action_sequence = action_sequence or 1
        self.env = BatchedLiftEnv(LiftTask(backend_fn(self.cfg), self.cfg, seed), frame_stack or 1,
                                  isolate_invalid=False)
        self.task, self.backend = self.env.task, self.env.task.backend
        self._seeded = seed is not None
        if self.chain:
            self.observation_space = self.env.single_observation_space
            self.action_space = spaces.Box(-1.0, 1.0, (self.action_sequence, self.cfg.action_dim), np.float32)
        else:
            self.observation_space = observation_space(self.cfg)
            self.action_space = spaces.Box(-1.0, 1.0, (self.cfg.action_dim,), np.float32)

    def _obs(self, obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {k: (v[0] if self.chain else v[0, -1]).cpu().numpy() for k, v in obs.items()}

    def _info(self, info: dict[str, torch.Tensor], step: bool) -> dict[str, Any]:
        out = info_to_numpy(info)
        if self.chain:  # AppendDemoInfo, and ActionSequence on steps (int64, as RoboBase's)
            out["demo"] = 0
            if step:
                out["action_sequence_mask"] = np.ones(self.action_sequence, dtype=np.int64)
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None and not self._seeded:
            seed = int(self.np_random.integers(2**62))
        self._seeded = True
        obs, info = self.env.reset(seed)
        return self._obs(obs), self._info(info, step=False)

    def step(self, action):
        a = np.asarray(action, dtype=np.float32)
        if a.shape != self.action_space.shape:
            meaning = ACTION_MEANING[self.cfg.action_mode]
            what = f"(action sequence, {meaning})" if self.chain else meaning
            raise ValueError(f"action has shape {a.shape}: expected {self.action_space.shape} = {what} in [-1, 1]")
        self.task.check_not_ended()
        a_t = torch.from_numpy(a).reshape(-1, self.cfg.action_dim)[:1]  # (1, A): the first action of a sequence
        s = self.env.step(rescale_from_tanh(a_t) if self.chain else a_t)
        return (self._obs(s.obs), float(s.reward[0]), bool(s.terminated[0]), bool(s.truncated[0]),
                self._info(s.info, step=True))

    def render(self) -> np.ndarray:
        """A third-person HxWx3 uint8 frame for videos."""
        return self.env.render()

    def close(self) -> None:
        self.env.close()


def make_mujoco_backend(cfg: TaskConfig, num_envs: int = 1) -> Backend:
    """N MjData (one for a single env), stepped in turn as one batch."""
    from envs.mujoco_backend import MujocoBackend

    check_backend(cfg, "MuJoCo")
    return MujocoBackend(cfg.cube_half_size, cfg.cube_mass, cfg.cube_friction, cfg.physics_dt, cfg.image_size,
                         num_envs=num_envs)


class LiftCubeMujocoEnv(LiftCubeEnv):
    """`LiftCube-MuJoCo-v0`: MuJoCo physics, one env."""

    def __init__(self, render_mode: str | None = "rgb_array", **task_kwargs: Any) -> None:
        super().__init__(make_mujoco_backend, render_mode, **task_kwargs)
