"""Torch forward kinematics (envs/kinematics.py) against MuJoCo's, on the shared MJCF."""
from __future__ import annotations

import mujoco
import numpy as np
import torch

import envs  # noqa: F401  (headless GL before mujoco)
from envs.kinematics import ArmKinematics
from envs.robot import GRIPPER_BODY, JOINT_NAMES, robot_model


def test_torch_kinematics_match_mujoco_over_the_joint_ranges():
    m = robot_model()  # read only; the MjData below is this test's own
    d = mujoco.MjData(m)
    lo = torch.tensor([m.joint(n).range[0] for n in JOINT_NAMES], dtype=torch.float32)
    hi = torch.tensor([m.joint(n).range[1] for n in JOINT_NAMES], dtype=torch.float32)
    q = lo + (hi - lo) * torch.rand(40, 6, generator=torch.Generator().manual_seed(0))  # (40, 6)
    k = ArmKinematics()(q)
    qadr = [m.joint(n).qposadr[0] for n in JOINT_NAMES]
    dadr = [m.joint(n).dofadr[0] for n in JOINT_NAMES]
    site, body = m.site("tcp").id, m.body(GRIPPER_BODY).id
    jp, jr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
    for i in range(len(q)):
        d.qpos[qadr] = q[i].numpy()
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_jac(m, d, jp, jr, d.site_xpos[site], body)
        np.testing.assert_allclose(k.tcp_pos[i], d.site_xpos[site], atol=2e-6)
        np.testing.assert_allclose(k.gripper_rot[i], d.xmat[body].reshape(3, 3), atol=2e-6)
        np.testing.assert_allclose(k.jac_pos[i], jp[:, dadr], atol=2e-6)
        np.testing.assert_allclose(k.jac_rot[i], jr[:, dadr], atol=2e-6)
    assert k.tcp_pos.std(0).min() > 0.01  # the samples really span the workspace
