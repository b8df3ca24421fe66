"""Reward term functions: each maps the per-env info dict to an unweighted (N,) tensor.

Terms read only info keys that both backends fill (see ``envs/task.py``), so one
implementation serves MuJoCo (a batch of one) and Genesis (a batch of N).
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch

Info = Mapping[str, torch.Tensor]
TermFn = Callable[[Info, Mapping[str, float]], torch.Tensor]


def _f(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32)


def reach(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """1 - tanh(10 d), d = fingertip-to-cube distance."""
    d = torch.linalg.norm(info["gripper_to_cube"], dim=-1)  # (N,)
    return 1.0 - torch.tanh(10.0 * d)


def reach_with_moving_jaw(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """v19: once the TCP reach is >= 0.7, average it with the moving-jaw reach.

    The moving-jaw reach is 1 when the gripper is closed, so closing on the cube is not
    punished for moving the jaw away from it.
    """
    r = reach(info, p)
    d_moving = torch.linalg.norm(info["moving_finger_pos"] - info["cube_pos"], dim=-1)  # (N,)
    closed = info["gripper_state"] < p["gripper_closed_below"]
    r_moving = torch.where(closed, torch.ones_like(r), 1.0 - torch.tanh(10.0 * d_moving))
    return torch.where(r >= 0.7, 0.5 * (r + r_moving), r)


def push_down(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """(0.01 - z) when the cube is pushed below 1 cm (weight is negative)."""
    return torch.clamp(0.01 - info["cube_z"], min=0.0)


def drop(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """1 on the step the grasp is lost."""
    return _f(info["prev_is_grasping"].bool() & ~info["is_grasping"].bool())


def target_height(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """1 when z > H (lift height)."""
    return _f(info["cube_z"] > p["lift_height"])


def success(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """1 on the step the hold count reaches hold_steps."""
    return _f(info["is_success"])


def success_rest_of_episode(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """v20: on the success step, the number of steps the episode would still have run.

    Success ends the episode, so under v19 an agent can earn more by hovering around the lift
    height without completing the hold (docs/learning.md). Paying the forgone steps at
    success makes finishing worth at least as much as staying.
    """
    return _f(info["is_success"]) * _f(info["steps_left"])


def grasp(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """1 while grasping (closed, both jaws touch the cube)."""
    return _f(info["is_grasping"])


def lift_progress(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """max(0, z - 0.015) / (H - 0.015) while grasping."""
    h = p["lift_height"]
    prog = torch.clamp(info["cube_z"] - 0.015, min=0.0) / (h - 0.015)
    return prog * _f(info["is_grasping"])


def binary_lift(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """v11: 1 when z > 0.02, grasp not needed (lets a pushed/tossed cube score)."""
    return _f(info["cube_z"] > 0.02)


def binary_lift_grasped(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """v19: 1 when z > 0.02 AND grasping."""
    return _f((info["cube_z"] > 0.02) & info["is_grasping"].bool())


def threshold_ramp(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """min(1, (z - 0.04) / (H - 0.04)) while grasping and z > 0.04."""
    h = p["lift_height"]
    z = info["cube_z"]
    ramp = torch.clamp((z - 0.04) / (h - 0.04), max=1.0)
    return ramp * _f(info["is_grasping"].bool() & (z > 0.04))


def hold(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """hold_count when z > H."""
    return _f(info["hold_count"]) * _f(info["cube_z"] > p["lift_height"])


def _action_delta_sq(info: Info) -> torch.Tensor:
    return ((info["action"] - info["prev_action"]) ** 2).sum(-1)  # (N,)


def action_rate_above_6cm(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """v11: ||a - a_prev||^2 when z > 0.06."""
    return _action_delta_sq(info) * _f(info["cube_z"] > 0.06)


def action_rate_holding(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """v19: ||a - a_prev||^2 when z > H and hold_count > 0."""
    return _action_delta_sq(info) * _f((info["cube_z"] > p["lift_height"]) & (info["hold_count"] > 0))
