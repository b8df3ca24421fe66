"""Forward kinematics of the SO-101 arm in torch, batch-first, from the shared MJCF.

Why: reset-time IK needs 60 forward-kinematics evaluations per reset. In Genesis each one
is a `set_dofs_position` plus a state read (about 2.5 ms on CPU, so ~150 ms per reset, as
much as ~40 physics steps); here the same chain costs a few dozen batched torch ops. The
chain is read from the very MJCF both simulators load (body offsets, hinge axes at the body
origins), so the results agree with either simulator to float precision (tests/envs/test_kinematics.py).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from envs.geometry import quat_to_mat, skew
from envs.robot import GRIPPER_BODY, JOINT_NAMES, robot_model


@dataclass
class Kinematics:
    """What the IK needs about the gripper for a batch of arm configurations."""

    tcp_pos: torch.Tensor  # (k, 3) world
    gripper_rot: torch.Tensor  # (k, 3, 3) gripper body orientation
    jac_pos: torch.Tensor  # (k, 3, 6) d tcp / d q
    jac_rot: torch.Tensor  # (k, 3, 6) angular Jacobian of the gripper body


@functools.lru_cache(maxsize=1)
def _chain() -> dict[str, np.ndarray]:
    """Body offsets and hinge axes from the base to the gripper body (MJCF, float64)."""
    import mujoco

    m = robot_model()
    body = m.body(GRIPPER_BODY).id
    bodies = []
    while body != 0:
        bodies.append(body)
        body = m.body_parentid[body]
    bodies.reverse()  # base ... gripper
    joint_of = {int(m.jnt_bodyid[j]): j for j in range(m.njnt)}
    names = [m.joint(joint_of[b]).name if b in joint_of else None for b in bodies]
    for b in bodies:
        if b in joint_of:
            j = joint_of[b]
            if m.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE or np.any(m.jnt_pos[j] != 0):
                raise ValueError(f"joint {m.joint(j).name}: expected a hinge at its body origin")
    return {"pos": m.body_pos[bodies].copy(), "quat": m.body_quat[bodies].copy(),
            "axis": np.array([m.jnt_axis[joint_of[b]] if b in joint_of else np.zeros(3) for b in bodies]),
            "dof": np.array([JOINT_NAMES.index(n) if n else -1 for n in names]),
            "tcp": m.site("tcp").pos.copy()}


class ArmKinematics:
    """TCP pose and Jacobians of a batch of joint configurations, no simulator involved."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        c = _chain()
        t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
        self.pos = t(c["pos"])  # (B, 3) body offsets in the parent frame
        self.rot = quat_to_mat(t(c["quat"]))  # (B, 3, 3)
        self.axis = t(c["axis"])  # (B, 3) hinge axis in the body frame (zero: no joint)
        self.dof = [int(d) for d in c["dof"]]
        self.tcp = t(c["tcp"])  # (3,) in the gripper frame
        # Rodrigues: rotation about a by angle t = I + sin(t) K + (1 - cos(t)) K^2, K = [a]x.
        self.K = skew(self.axis)  # (B, 3, 3)
        self.K2 = self.K @ self.K  # (B, 3, 3)
        self.eye = torch.eye(3, device=device)

    def __call__(self, q: torch.Tensor) -> Kinematics:
        """q: (k, 6) joint positions in JOINT_NAMES order."""
        k = q.shape[0]
        R = self.eye.expand(k, 3, 3)  # (k, 3, 3) world <- body
        p = torch.zeros(k, 3, device=q.device)  # (k, 3)
        anchors, axes, dofs = [], [], []
        for b, dof in enumerate(self.dof):
            p = p + R @ self.pos[b]
            R = R @ self.rot[b]
            if dof >= 0:
                a = self.axis[b]
                anchors.append(p)
                axes.append(R @ a)  # (k, 3) world axis
                dofs.append(dof)
                sin, cos = torch.sin(q[:, dof])[:, None, None], torch.cos(q[:, dof])[:, None, None]
                R = R @ (self.eye + sin * self.K[b] + (1 - cos) * self.K2[b])
        tcp = p + R @ self.tcp  # (k, 3)
        w = torch.stack(axes, 2)  # (k, 3, J)
        v = torch.linalg.cross(w, (tcp.unsqueeze(2) - torch.stack(anchors, 2)), dim=1)  # (k, 3, J)
        jac_pos = torch.zeros(k, 3, 6, device=q.device)
        jac_rot = torch.zeros(k, 3, 6, device=q.device)
        jac_pos[:, :, dofs], jac_rot[:, :, dofs] = v, w
        return Kinematics(tcp_pos=tcp, gripper_rot=R, jac_pos=jac_pos, jac_rot=jac_rot)

