"""Batched rotation helpers and kinematic facts of the jaws (torch, batch-first)."""
from __future__ import annotations

import functools

import numpy as np
import torch


def quat_to_mat(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) wxyz -> (N, 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], -1).reshape(q.shape[:-1] + (3, 3))


def quat_to_euler(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) wxyz -> (N, 3) roll, pitch, yaw (extrinsic xyz)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    w, x, y, z = q.unbind(-1)
    roll = torch.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = torch.asin(torch.clamp(2 * (w * y - z * x), -1.0, 1.0))
    yaw = torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return torch.stack([roll, pitch, yaw], -1)


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) vectors -> (..., 3, 3) cross-product matrices: skew(a) @ b == a x b."""
    K = torch.zeros(*v.shape[:-1], 3, 3, dtype=v.dtype, device=v.device)
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    return K - K.transpose(-1, -2)


def rotvec_to_mat(v: torch.Tensor) -> torch.Tensor:
    """(k, 3) rotation vectors (axis * angle) -> (k, 3, 3) rotations (Rodrigues)."""
    angle = v.norm(dim=-1, keepdim=True)  # (k, 1)
    K = skew(v / angle.clamp_min(1e-12))
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    return torch.eye(3, dtype=v.dtype, device=v.device) + s * K + (1 - c) * (K @ K)


def yaw_quat(yaw: torch.Tensor) -> torch.Tensor:
    """(k,) yaw angles -> (k, 4) wxyz rotations about world z."""
    h = 0.5 * yaw
    zero = torch.zeros_like(h)
    return torch.stack([torch.cos(h), zero, zero, torch.sin(h)], -1)


@functools.lru_cache(maxsize=1)
def _gap_table() -> tuple[np.ndarray, np.ndarray]:
    """Gap between the jaw pads' inner faces as a function of the gripper angle.

    Both backends load the same MJCF, so pure kinematics of that file (in MuJoCo, no
    simulation) gives the angle at which the jaws just touch a cube of a given size.
    """
    from envs._headless import setup_headless_gl

    setup_headless_gl()
    import mujoco

    from envs.robot import robot_model

    m = robot_model()
    d = mujoco.MjData(m)
    g = m.joint("gripper").qposadr[0]
    fixed, moving = m.geom("fixed_jaw_pad").id, m.geom("moving_jaw_pad").id
    angles = np.linspace(-0.17, 1.2, 300)
    gaps = []
    for a in angles:
        d.qpos[g] = a
        mujoco.mj_kinematics(m, d)
        rf = d.geom_xmat[fixed].reshape(3, 3)
        # distance of the moving pad's inner corner points from the fixed pad's inner face
        x_axis = rf[:, 0]
        face = d.geom_xpos[fixed] + x_axis * m.geom_size[fixed][0]
        rm = d.geom_xmat[moving].reshape(3, 3)
        corners = [d.geom_xpos[moving] - rm[:, 0] * m.geom_size[moving][0] + rm[:, 2] * s * m.geom_size[moving][2]
                   for s in (-1.0, 1.0)]
        gaps.append(min(float(np.dot(c - face, x_axis)) for c in corners))
    return angles, np.asarray(gaps)


def gripper_angle_for_gap(gap: torch.Tensor) -> torch.Tensor:
    """(k,) jaw gap in metres -> (k,) gripper angle at which the pads just touch."""
    angles, gaps = _gap_table()
    order = np.argsort(gaps)
    out = np.interp(gap.detach().cpu().numpy(), gaps[order], angles[order])
    return torch.as_tensor(out, dtype=torch.float32, device=gap.device)


def approach_axis(tcp: torch.Tensor) -> torch.Tensor:
    """Desired approach axis (N, 3) of the jaws at TCP position `tcp` (N, 3): straight down near
    the base, tilted outwards with reach.

    Beyond ~0.27 m from the base the SO-101 cannot point its jaws straight down (the wrist
    hits its limit), so the goal tilts in the arm's plane, up to 0.6 rad at 0.47 m.
    """
    r = tcp[:, :2].norm(dim=1).clamp_min(1e-6)  # (N,)
    radial = tcp[:, :2] / r[:, None]  # (N, 2)
    tilt = ((r - 0.27) * 3.0).clamp(0.0, 0.6)
    return torch.cat([radial * torch.sin(tilt)[:, None], -torch.cos(tilt)[:, None]], 1)
