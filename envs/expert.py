"""Scripted expert: reach, grasp, lift and hold using privileged state (cube pose).

It proves that the physics and the success test are right, and feeds demonstrations.
Batch-first like the task: one call acts for all N envs; its phase is per env.
"""
from __future__ import annotations

from typing import Mapping

import torch

APPROACH, DESCEND, CLOSE, LIFT = 0, 1, 2, 3


class ScriptedExpert:
    """A P-controller on the env's TCP target with a four-phase state machine per env."""

    def __init__(self, num_envs: int, action_scale: float = 0.02, lift_height: float = 0.08,
                 closed_below: float = 0.25, close_steps: int = 12, open_cmd: float = 0.3) -> None:
        self.n, self.scale, self.lift_height = num_envs, action_scale, lift_height
        self.closed_below, self.close_steps, self.open_cmd = closed_below, close_steps, open_cmd
        self.hover = 0.07  # approach height above the cube centre
        self.phase = torch.zeros(num_envs, dtype=torch.long)
        self.timer = torch.zeros(num_envs, dtype=torch.long)

    def reset(self, info: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> None:
        """Start envs in `mask` from their reset info: already grasped -> lift, else approach."""
        mask = torch.ones(self.n, dtype=torch.bool) if mask is None else mask.cpu()
        near = (info["cube_pos"] - info["gripper_pos"]).norm(dim=-1).cpu() < 0.01
        grasped = info["is_grasping"].cpu().bool() | (info["is_closed"].cpu().bool() & near)
        self.phase[mask] = torch.where(grasped, LIFT, APPROACH)[mask]
        self.timer[mask] = 0

    def act(self, info: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(N, 4) actions in [-1, 1] from the latest info dict."""
        cube = info["cube_pos"].cpu().float()  # (N, 3)
        tcp = info["gripper_pos"].cpu().float()  # (N, 3)
        target = info["tcp_target"].cpu().float()  # (N, 3) the env's commanded TCP point
        grasping = info["is_grasping"].cpu().bool()
        err = cube - tcp
        xy_err = err[:, :2].norm(dim=1)
        ph = self.phase
        # transitions
        ph = torch.where((ph == APPROACH) & (xy_err < 0.004) & ((tcp[:, 2] - cube[:, 2] - self.hover).abs() < 0.015),
                         torch.full_like(ph, DESCEND), ph)
        ph = torch.where((ph == DESCEND) & (xy_err < 0.005) & (err[:, 2].abs() < 0.004), torch.full_like(ph, CLOSE), ph)
        # Drifted off the cube while descending (a jaw would land on its top): rise, realign.
        ph = torch.where((ph == DESCEND) & (xy_err > 0.008), torch.full_like(ph, APPROACH), ph)
        self.timer = torch.where(ph == CLOSE, self.timer + 1, torch.zeros_like(self.timer))
        closed = (ph == CLOSE) & ((grasping & (self.timer >= 2)) | (self.timer >= self.close_steps))
        ph = torch.where(closed, torch.full_like(ph, LIFT), ph)
        lost = (ph == LIFT) & ~grasping & (cube[:, 2] < 0.03)
        ph = torch.where(lost, torch.full_like(ph, APPROACH), ph)
        self.phase = ph
        # goals per phase
        goal = cube.clone()
        goal[:, 2] = torch.where(ph == APPROACH, cube[:, 2] + self.hover, goal[:, 2])
        hold = ph == CLOSE
        goal[hold] = target[hold]
        lift = ph == LIFT
        goal[lift, 2] = self.lift_height + 0.04
        goal[lift, :2] = target[lift, :2]
        # Rise before moving sideways when low, so the jaws never sweep into the cube.
        low = (ph == APPROACH) & (xy_err > 0.01) & (tcp[:, 2] < cube[:, 2] + 0.035)
        goal[low, :2] = target[low, :2]
        # Near the cube: act on the measured TCP error (the env integrates it into its target,
        # which removes steady IK offsets); while closing and lifting, on the target.
        delta = (goal - target) + 0.3 * (goal - tcp)
        delta[hold | lift] = (goal - target)[hold | lift]
        act = torch.zeros(self.n, 4)
        act[:, :3] = (delta / self.scale).clamp(-1.0, 1.0)
        slow = ph == DESCEND
        act[slow, :3] = act[slow, :3].clamp(-0.25, 0.25)
        # Open only to ~0.6 rad (5 cm gap): the jaw then closes in ~4 steps instead of 9.
        act[:, 3] = torch.where((ph == APPROACH) | (ph == DESCEND), self.open_cmd, -1.0)
        return act
