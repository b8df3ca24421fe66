"""What an action means in each `task.action_mode` (envs.config.ACTION_MODES), batch-first.

ee_delta: (N, 4) TCP motion and gripper command, turned into joint targets by the task's IK
controller (envs.task). joint_pos: (N, 6) absolute joint targets, -1 .. +1 spanning each joint's
range low .. high, linearly (docs/task.md).
"""
from __future__ import annotations

import torch

ACTION_MEANING = {"ee_delta": "[dx, dy, dz, gripper]", "joint_pos": "6 joint targets"}


def joint_targets(a: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """joint_pos actions (..., 6) in [-1, 1] -> joint targets (..., 6) in rad."""
    return low + (a + 1.0) * 0.5 * (high - low)


def joint_action(q: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Joint targets (..., 6) in rad -> the joint_pos action (..., 6) in [-1, 1] that commands them."""
    return ((q - low) / (high - low) * 2.0 - 1.0).clamp(-1.0, 1.0)
