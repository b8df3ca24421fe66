"""Batched rotation helpers and kinematic facts of the jaws (torch, batch-first)."""
from __future__ import annotations

import functools

import numpy as np
import torch


def _quadratic_forms(rows: list[tuple[float, dict[str, float]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(bias (K,), coefficients (16, K)) of K quadratic forms in a unit quaternion wxyz: form k is
    bias_k + sum of coef * q_i q_j over the products named like 'xy'. With `torch.addmm` on the
    flattened outer product q q^T a rotation takes a handful of torch ops instead of ~35 (124 ATen
    calls -> 24): on a CPU, at a few microseconds each, they were a visible part of every env step."""
    idx = {c: i for i, c in enumerate("wxyz")}
    bias = torch.tensor([b for b, _ in rows])
    coef = torch.zeros(16, len(rows))
    for k, (_, terms) in enumerate(rows):
        for pair, c in terms.items():
            coef[4 * idx[pair[0]] + idx[pair[1]], k] = c
    return bias, coef


# Row-major rotation matrix of a unit quaternion: 1 - 2(y^2 + z^2), 2(xy - zw), ...
_MAT = _quadratic_forms([
    (1.0, {"yy": -2, "zz": -2}), (0.0, {"xy": 2, "wz": -2}), (0.0, {"xz": 2, "wy": 2}),
    (0.0, {"xy": 2, "wz": 2}), (1.0, {"xx": -2, "zz": -2}), (0.0, {"yz": 2, "wx": -2}),
    (0.0, {"xz": 2, "wy": -2}), (0.0, {"yz": 2, "wx": 2}), (1.0, {"xx": -2, "yy": -2})])
# Arguments of roll = atan2(a_r, b_r), yaw = atan2(a_y, b_y), pitch = asin(s), in that column order.
_EULER = _quadratic_forms([
    (0.0, {"wx": 2, "yz": 2}), (0.0, {"wz": 2, "xy": 2}),
    (1.0, {"xx": -2, "yy": -2}), (1.0, {"yy": -2, "zz": -2}), (0.0, {"wy": 2, "xz": -2})])


def _forms(q: torch.Tensor, forms: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(M, K) quadratic forms of the (M, 4) quaternions, normalised first."""
    q = torch.nn.functional.normalize(q, dim=-1, eps=1e-9)
    bias, coef = forms
    if bias.device != q.device or bias.dtype != q.dtype:
        bias, coef = bias.to(q.device, q.dtype), coef.to(q.device, q.dtype)
    return torch.addmm(bias, (q.unsqueeze(-1) * q.unsqueeze(-2)).reshape(-1, 16), coef)


def quat_to_mat(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) wxyz -> (..., 3, 3)."""
    return _forms(q.reshape(-1, 4), _MAT).reshape(q.shape[:-1] + (3, 3))


def quat_to_euler(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) wxyz -> (N, 3) roll, pitch, yaw (extrinsic xyz)."""
    v = _forms(q, _EULER)  # (N, 5)
    roll_yaw = torch.atan2(v[:, 0:2], v[:, 2:4])  # (N, 2)
    pitch = torch.asin(v[:, 4:5].clamp(-1.0, 1.0))  # (N, 1)
    return torch.cat([roll_yaw[:, :1], pitch, roll_yaw[:, 1:]], 1)


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
