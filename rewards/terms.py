"""Reward term functions: each maps the per-env info dict to an unweighted (N,) tensor.

Terms read only info keys that both backends fill (see ``envs/task.py``), so one
implementation serves MuJoCo (a batch of one) and Genesis (a batch of N). Thresholds are
parameters `p` on the term (`Term(fn, weight, params)`) or the task's (`lift_height`,
`gripper_closed_below`); heights that are geometry are measured from where each env's cube
rests, `cube_half_size` (N,), so they hold when the cube size is randomised.
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


def _clearance(info: Info) -> torch.Tensor:
    """(N,) height of the cube's bottom face above the table: 0 at rest, whatever its size."""
    return info["cube_z"] - info["cube_half_size"]


def push_down(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """How far the cube is pressed more than p['sink'] below its rest height (weight is negative)."""
    return torch.clamp(-p["sink"] - _clearance(info), min=0.0)


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
    height without completing the hold (docs/notebook.md). Paying the forgone steps at
    success makes finishing worth at least as much as staying.
    """
    return _f(info["is_success"]) * _f(info["steps_left"])


def grasp(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """1 while grasping (closed, both jaws touch the cube)."""
    return _f(info["is_grasping"])


def lift_progress(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """Share of the way from rest to the lift height H, while grasping (0 below rest)."""
    prog = torch.clamp(_clearance(info), min=0.0) / (p["lift_height"] - info["cube_half_size"])
    return prog * _f(info["is_grasping"])


def binary_lift(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """v11: 1 when the cube is more than p['clearance'] off the table, grasp not needed
    (lets a pushed/tossed cube score)."""
    return _f(_clearance(info) > p["clearance"])


def binary_lift_grasped(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """v19: 1 when the cube is more than p['clearance'] off the table AND grasped."""
    return _f((_clearance(info) > p["clearance"]) & info["is_grasping"].bool())


def threshold_ramp(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """min(1, (z - z0) / (H - z0)) while grasping and z > z0 = p['from_z'] (cube centre height)."""
    h, z0 = p["lift_height"], p["from_z"]
    z = info["cube_z"]
    ramp = torch.clamp((z - z0) / (h - z0), max=1.0)
    return ramp * _f(info["is_grasping"].bool() & (z > z0))


def hold(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """hold_count when z > H."""
    return _f(info["hold_count"]) * _f(info["cube_z"] > p["lift_height"])


def _action_delta_sq(info: Info) -> torch.Tensor:
    return ((info["action"] - info["prev_action"]) ** 2).sum(-1)  # (N,)


def action_rate_above(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """v11: ||a - a_prev||^2 when the cube centre is above p['above_z']."""
    return _action_delta_sq(info) * _f(info["cube_z"] > p["above_z"])


def action_rate_holding(info: Info, p: Mapping[str, float]) -> torch.Tensor:
    """v19: ||a - a_prev||^2 when z > H and hold_count > 0."""
    return _action_delta_sq(info) * _f((info["cube_z"] > p["lift_height"]) & (info["hold_count"] > 0))
