"""Single-env gymnasium API over the batched task (a batch of one)."""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from envs.backend import Backend
from envs.config import PRIVILEGED_KEY, TaskConfig, make_task_config
from envs.task import LiftTask


def observation_space(cfg: TaskConfig) -> spaces.Dict:
    """Per-env observation space (no frame stack): shared by every env and wrapper."""
    d = 18 if cfg.pixels else 21
    s = {"low_dim_state": spaces.Box(-np.inf, np.inf, (d,), np.float32)}
    if cfg.pixels:
        for cam in cfg.cameras:
            s[f"rgb_{cam}"] = spaces.Box(0, 255, (3, cfg.image_size, cfg.image_size), np.uint8)
    if cfg.privileged_state:
        s[PRIVILEGED_KEY] = spaces.Box(-np.inf, np.inf, (7,), np.float32)
    return spaces.Dict(s)


def info_to_numpy(info: dict[str, torch.Tensor], i: int = 0) -> dict[str, Any]:
    """Env i's slice of a batched info dict, as NumPy scalars/arrays."""
    out: dict[str, Any] = {}
    for k, v in info.items():
        x = v[i].detach().cpu().numpy()
        out[k] = x.item() if x.ndim == 0 else x
    return out


class LiftCubeEnv(gym.Env):
    """The lift task as one gymnasium env; `backend_fn(cfg)` builds its physics."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, backend_fn: Callable[[TaskConfig], Backend], render_mode: str | None = "rgb_array",
                 **task_kwargs: Any) -> None:
        self.cfg = make_task_config(**task_kwargs)  # validated before any simulator starts
        self.render_mode = render_mode
        self.backend = backend_fn(self.cfg)
        self.task = LiftTask(self.backend, self.cfg)
        self.observation_space = observation_space(self.cfg)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._last_frame: np.ndarray | None = None

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: v[0].cpu().numpy() for k, v in self.task.observe().items()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.task.seed(seed)
        elif not hasattr(self, "_seeded"):
            self.task.seed(int(self.np_random.integers(2**62)))
        self._seeded = True
        self.task.reset()
        return self._obs(), info_to_numpy(self.task.reset_info())

    def step(self, action):
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (4,):
            raise ValueError(f"action has shape {a.shape}: expected (4,) = [dx, dy, dz, gripper] in [-1, 1]")
        self.task.check_not_ended()
        r, term, trunc, info = self.task.step(torch.from_numpy(a).unsqueeze(0))
        return (self._obs(), float(r[0]), bool(term[0]), bool(trunc[0]), info_to_numpy(info))

    def render(self) -> np.ndarray:
        """A third-person HxWx3 uint8 frame for videos."""
        return self.backend.render_scene(0)

    def close(self) -> None:
        self.backend.close()


def make_mujoco_backend(cfg: TaskConfig, num_envs: int = 1) -> Backend:
    """One MjData (a batch of one), or N of them stepped in turn as one batch."""
    from envs.mujoco_backend import MujocoBackend, MujocoBatchBackend

    def one() -> MujocoBackend:
        return MujocoBackend(cfg.cube_half_size, cfg.cube_mass, cfg.cube_friction, cfg.physics_dt, cfg.image_size)

    return one() if num_envs == 1 else MujocoBatchBackend([one() for _ in range(num_envs)])


class LiftCubeMujocoEnv(LiftCubeEnv):
    """`LiftCube-MuJoCo-v0`: MuJoCo physics, one env."""

    def __init__(self, render_mode: str | None = "rgb_array", **task_kwargs: Any) -> None:
        super().__init__(make_mujoco_backend, render_mode, **task_kwargs)
