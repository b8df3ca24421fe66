"""Scripted expert: reach, grasp, lift and hold using privileged state (cube pose).

It proves that the physics and the success test are right, and feeds demonstrations.
Batch-first like the task: one call acts for all N envs; its phase is per env.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from envs.geometry import approach_axis

APPROACH, DESCEND, CLOSE, LIFT = 0, 1, 2, 3


def batch_info(info: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """One env's NumPy info dict -> the batch-of-one torch dict the expert reads (nested
    dicts, such as final_info, are dropped)."""
    return {k: torch.as_tensor(np.asarray(v))[None] for k, v in info.items() if not isinstance(v, dict)}


class ScriptedExpert:
    """A P-controller on the env's TCP target with a four-phase state machine per env."""

    def __init__(self, num_envs: int, action_scale: float = 0.02, lift_height: float = 0.08,
                 closed_below: float = 0.25, close_steps: int = 12, open_cmd: float = 0.3,
                 noise: float = 0.0, seed: int = 0) -> None:
        self.n, self.scale, self.lift_height = num_envs, action_scale, lift_height
        # Gaussian noise (std, in action units) on the motion commands, as in DART (Laskey et al.
        # 2017): the expert then corrects its own perturbations, so its demos show the recoveries
        # a learner needs once its own errors take it off the expert's path.
        self.noise = float(noise)
        self.gen = torch.Generator().manual_seed(int(seed))
        self.closed_below, self.close_steps, self.open_cmd = closed_below, close_steps, open_cmd
        self.hover = 0.07  # approach height above the cube centre
        self.ki = 0.3  # integral gain: removes the IK's steady TCP offset at long reach
        self.bias_max = 0.03  # metres, bound on that correction
        # Grasp point shift towards the base (see grasp_point): at least back0, so the fixed
        # (inner) jaw clears the cube's inner face; `back` metres at 0.6 rad of tilt far out.
        self.back0, self.back = 0.006, 0.04
        self.drop = -0.005  # metres at 0.6 rad of tilt: aim a bit lower (the moving jaw rides high)
        self.descend_steps = 25  # a pad on the table stops the descent: close after this long
        self.z_tol = 0.004  # height tolerance for 'at the grasp point'
        self.phase = torch.zeros(num_envs, dtype=torch.long)
        self.timer = torch.zeros(num_envs, dtype=torch.long)
        self.bias = torch.zeros(num_envs, 3)

    def reset(self, info: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> None:
        """Start envs in `mask` from their reset info: already grasped -> lift, else approach."""
        mask = torch.ones(self.n, dtype=torch.bool) if mask is None else mask.cpu()
        near = (info["cube_pos"] - info["gripper_pos"]).norm(dim=-1).cpu() < 0.01
        grasped = info["is_grasping"].cpu().bool() | (info["is_closed"].cpu().bool() & near)
        self.phase[mask] = torch.where(grasped, LIFT, APPROACH)[mask]
        self.timer[mask] = 0
        self.bias[mask] = 0.0

    def grasp_point(self, cube: torch.Tensor) -> torch.Tensor:
        """(N, 3) TCP goal for the grasp: the cube centre, shifted for the gripper's tilt there.

        Far out the jaws tilt outwards (see envs.geometry.approach_axis) and the moving (outer) jaw
        rides high, so aim short of the cube: closing, the moving jaw drags the cube inwards
        against the fixed jaw. If it slips out, the cube has still come 1-3 cm nearer the base;
        `lost` sends the env back to APPROACH and the next try is at a smaller tilt.
        """
        ax = approach_axis(cube)  # (N, 3) approach axis the IK aims for
        tilt = torch.asin(ax[:, :2].norm(dim=1).clamp(max=1.0))  # (N,)
        r = cube[:, :2].norm(dim=1, keepdim=True).clamp_min(1e-6)
        g = cube.clone()
        g[:, :2] -= cube[:, :2] / r * torch.clamp(self.back * tilt / 0.6, min=self.back0)[:, None]
        g[:, 2] += self.drop * tilt / 0.6
        return g

    def act(self, info: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(N, 4) actions in [-1, 1] from the latest info dict."""
        cube = info["cube_pos"].cpu().float()  # (N, 3)
        tcp = info["gripper_pos"].cpu().float()  # (N, 3)
        target = info["tcp_target"].cpu().float()  # (N, 3) the env's commanded TCP point
        grasping = info["is_grasping"].cpu().bool()
        grasp = self.grasp_point(cube)
        err = grasp - tcp
        xy_err = err[:, :2].norm(dim=1)
        ph = self.phase
        self.timer = self.timer + 1
        # transitions
        to_desc = (ph == APPROACH) & (xy_err < 0.004) & ((err[:, 2] + self.hover).abs() < 0.015)
        ph = torch.where(to_desc, torch.full_like(ph, DESCEND), ph)
        self.timer[to_desc] = 0
        at_cube = (xy_err < 0.005) & (err[:, 2].abs() < self.z_tol)
        stalled = (self.timer > self.descend_steps)
        to_close = (ph == DESCEND) & (at_cube | stalled)
        ph = torch.where(to_close, torch.full_like(ph, CLOSE), ph)
        self.timer[to_close] = 0
        # Drifted off the cube while descending (a jaw would land on its top): rise, realign.
        ph = torch.where((ph == DESCEND) & (xy_err > 0.012), torch.full_like(ph, APPROACH), ph)
        closed = (ph == CLOSE) & ((grasping & (self.timer >= 2)) | (self.timer >= self.close_steps))
        ph = torch.where(closed, torch.full_like(ph, LIFT), ph)
        lost = (ph == LIFT) & ~grasping & (cube[:, 2] < 0.03)
        ph = torch.where(lost, torch.full_like(ph, APPROACH), ph)
        self.bias[lost] = 0.0
        self.phase = ph
        # goals per phase
        goal = grasp.clone()
        goal[:, 2] = torch.where(ph == APPROACH, grasp[:, 2] + self.hover, goal[:, 2])
        hold = ph == CLOSE
        goal[hold] = target[hold]
        lift = ph == LIFT
        goal[lift, 2] = self.lift_height + 0.04
        goal[lift, :2] = target[lift, :2]
        # Rise before moving sideways when low, so the jaws never sweep into the cube.
        low = (ph == APPROACH) & (xy_err > 0.01) & (tcp[:, 2] < grasp[:, 2] + 0.035)
        goal[low, :2] = target[low, :2]
        # Integral action near the goal: the target settles wherever the TCP lands on the goal.
        free = (ph == APPROACH) | (ph == DESCEND)
        settle = free & ((goal - tcp).norm(dim=1) < 0.02) & ((goal + self.bias - target).norm(dim=1) < 0.004)
        self.bias = torch.where(settle[:, None], self.bias + self.ki * (goal - tcp), self.bias)
        self.bias = self.bias.clamp(-self.bias_max, self.bias_max)
        delta = goal + self.bias - target
        delta[hold | lift] = (goal - target)[hold | lift]
        act = torch.zeros(self.n, 4)
        act[:, :3] = (delta / self.scale).clamp(-1.0, 1.0)
        # Travel at half speed: fast swings make the arm dip far below its target.
        act[free, :3] = act[free, :3].clamp(-0.5, 0.5)
        slow = ph == DESCEND
        act[slow, :3] = act[slow, :3].clamp(-0.25, 0.25)
        # Open only to ~0.6 rad (5 cm gap): the jaw then closes in ~4 steps instead of 9.
        act[:, 3] = torch.where(free, self.open_cmd, -1.0)
        if self.noise > 0:  # the gripper stays clean: a noisy close would drop the cube
            act[:, :3] = (act[:, :3] + self.noise * torch.randn(self.n, 3, generator=self.gen)).clamp(-1.0, 1.0)
        return act
