"""Where an episode starts, per curriculum stage: the cube, the domain parameters and the TCP goal the
arm's reset IK aims at (docs/task.md). Batch-first over the k envs being reset; every random number
comes from `draw(k, lo, hi, *shape)`, which hands row j the draw of the j-th env's own generator."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from envs.backend import ResetState
from envs.config import STAGE0_HOME, TaskConfig
from envs.geometry import gripper_angle_for_gap, yaw_quat
from envs.scene import CUBE_RGBA

GRIPPER_OPEN = 1.0  # rad, target for action +1
HOME_TCP = (0.20, 0.0, 0.16)
SEED_Q = (0.0, -0.4, 0.6, 1.3, 0.0, GRIPPER_OPEN)  # IK seed: elbow up, jaws down

Draw = Callable[..., torch.Tensor]  # draw(k, lo, hi, *shape) -> (k, *shape) uniform draws


def _above(cube: torch.Tensor) -> torch.Tensor:
    """(k, 3) stage 3's TCP start: 3.5 cm above the cube (k, 3)."""
    return cube + torch.tensor([0.0, 0.0, 0.035], device=cube.device)


def _near(cfg: TaskConfig, draw: Draw, k: int, cube: torch.Tensor) -> torch.Tensor:
    """(k, 3) stage 4's TCP start: 8-12 cm from the cube (k, 3) in a random direction, lift height + 2 cm."""
    ang = draw(k, -math.pi, math.pi)
    dist = draw(k, 0.08, 0.12)
    return torch.stack([cube[:, 0] + dist * torch.cos(ang), cube[:, 1] + dist * torch.sin(ang),
                        torch.full((k,), cfg.lift_height + 0.02, device=cube.device)], 1)


def _mixed_start(cfg: TaskConfig, draw: Draw, k: int, home: torch.Tensor, cube: torch.Tensor) -> torch.Tensor:
    """(k, 3) TCP starts drawn per env by `stage0_starts`: home, above the cube (stage 3), near it (stage 4)."""
    w = torch.tensor(cfg.stage0_starts, device=cube.device)
    edges = torch.cumsum(w, 0) / w.sum()  # (3,)
    kind = torch.searchsorted(edges, draw(k, 0.0, 1.0).contiguous(), right=True).clamp(max=2)  # (k,)
    starts = torch.stack([home, _above(cube), _near(cfg, draw, k, cube)], 1)  # (k, 3 kinds, 3)
    return starts[torch.arange(k, device=cube.device), kind]


def sample_reset(cfg: TaskConfig, draw: Draw, k: int, dev: torch.device, ws_low: torch.Tensor,
                 ws_high: torch.Tensor) -> tuple[ResetState, torch.Tensor, torch.Tensor]:
    """Sample the cube and domain parameters of k envs being reset; returns their state, the TCP goal
    (k, 3) the arm's IK starts at, and the gripper angle (k,). Draws come from `draw` in a fixed order."""
    c, rnd = cfg, cfg.randomization
    stage = c.curriculum_stage
    half = (draw(k, *rnd.cube_size_range) / 2 if rnd.cube_size
            else torch.full((k,), c.cube_half_size, device=dev))
    centre, r = (c.cube_xy_stage0, rnd.cube_xy_range_stage0) if stage == 0 else (c.cube_xy, rnd.cube_xy_range)
    xy = torch.tensor(centre, device=dev).expand(k, 2).clone()
    if rnd.cube_xy:
        xy = xy + draw(k, -r, r, 2)
    cube = torch.cat([xy, half[:, None]], 1)  # (k, 3) resting on the table
    grip_q = torch.full((k,), GRIPPER_OPEN, device=dev)
    if stage == 0:
        goal = torch.tensor(HOME_TCP, device=dev).expand(k, 3).clone()
        if c.stage0_starts != STAGE0_HOME:
            goal = _mixed_start(c, draw, k, goal, cube)
    elif stage in (1, 2):
        if stage == 1:  # held at lift height; stage 2: at table level
            cube[:, 2] = c.lift_height + 0.005
        goal = cube.clone()
        grip_q = gripper_angle_for_gap(2 * half) - 0.02  # pads pressed 1 mm into the cube
    elif stage == 3:
        goal = _above(cube)
    else:
        goal = _near(c, draw, k, cube)
    goal = torch.maximum(torch.minimum(goal, ws_high), ws_low)
    friction = (draw(k, *rnd.cube_friction_range) if rnd.cube_friction
                else torch.full((k,), c.cube_friction, device=dev))
    rgba = torch.tensor(CUBE_RGBA, device=dev).expand(k, 4).clone()
    if rnd.cube_color:
        rgba[:, :3] = torch.clamp(rgba[:, :3] + draw(k, -0.15, 0.15, 3), 0, 1)
    cam = torch.zeros(k, 6, device=dev)
    if rnd.camera_jitter:
        cam[:, :3] = draw(k, -rnd.camera_pos_range, rnd.camera_pos_range, 3)
        cam[:, 3:] = draw(k, -rnd.camera_rot_range, rnd.camera_rot_range, 3)
    light_dir = torch.tensor([0.0, 0.0, -1.0], device=dev).expand(k, 3).clone()
    intensity = torch.full((k,), 0.8, device=dev)
    if rnd.light:
        light_dir = light_dir + draw(k, -0.3, 0.3, 3) * torch.tensor([1.0, 1.0, 0.0], device=dev)
        light_dir = light_dir / light_dir.norm(dim=1, keepdim=True)
        intensity = draw(k, 0.5, 1.0)
    state = ResetState(
        qpos=torch.tensor(SEED_Q, device=dev).expand(k, 6).clone(), cube_pos=cube,
        cube_quat=yaw_quat(torch.zeros(k, device=dev)), cube_half_size=half,
        cube_friction=friction, cube_rgba=rgba, camera_offset=cam, light_dir=light_dir,
        light_intensity=intensity)
    return state, goal, grip_q
