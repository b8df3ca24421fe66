"""`LiftCube-Genesis-v0`: the lift task on the Genesis backend, one env (a batch of one)."""
from __future__ import annotations

from typing import Any

from envs.config import TaskConfig
from envs.lift_env import LiftCubeEnv


def make_genesis_backend(cfg: TaskConfig, num_envs: int = 1, device: str = "cpu", renderer: str = "auto"):
    from envs.genesis_backend import GenesisBackend

    return GenesisBackend(cfg, num_envs=num_envs, device=device, renderer=renderer)


class LiftCubeGenesisEnv(LiftCubeEnv):
    """Genesis physics, one env; the vector form is factories.WrappedGenesisVectorEnv."""

    def __init__(self, render_mode: str | None = "rgb_array", sim_device: str = "cpu", **task_kwargs: Any) -> None:
        super().__init__(lambda cfg: make_genesis_backend(cfg, 1, sim_device), render_mode, **task_kwargs)
