"""MuJoCo backend: N envs in this process as one batch (N = 1 for a single env), torch on the CPU.

MuJoCo has no batched data: each env is its own `MjData` (and its own `MjModel`, since cube size,
colour, friction, light and camera are randomised by editing the model), stepped in a Python loop
that makes only the MuJoCo calls. State moves between the envs and the task's (N, ...) tensors in
whole batches: `read` copies every env's fields with one `np.concatenate` over views of the
`MjData` arrays (made once: MuJoCo never moves them) into one preallocated float64 buffer and
converts it to float32 once; each field is a contiguous (N, k) block of that array, which torch
takes without a copy. Targets and reset states go in as one NumPy view of each tensor.
Env i is the same as a single env seeded with seed + i (the task seeds per env).
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from envs._headless import setup_headless_gl

setup_headless_gl()

import mujoco  # noqa: E402

from envs.backend import PhysState, ResetState  # noqa: E402
from envs.config import BACKEND_RANDOMISATIONS  # noqa: E402
from envs.geometry import quat_to_mat  # noqa: E402
from envs.kinematics import Kinematics  # noqa: E402
from envs.robot import GRIPPER_BODY, JOINT_NAMES, robot_asset  # noqa: E402
from envs.scene import (CUBE_RGBA, CUBE_SPAWN_XY, FLOOR_RGB, FRONT_CAM_FOVY, FRONT_CAM_LOOKAT,  # noqa: E402
                        FRONT_CAM_POS, SCENE_CAM_FOVY, SCENE_CAM_LOOKAT, SCENE_CAM_POS)

FIXED_JAW_GEOMS = ("fixed_jaw_pad",)
MOVING_JAW_GEOMS = ("moving_jaw_pad",)


def lookat_quat(pos, target) -> list[float]:
    """wxyz quaternion of a camera at `pos` looking at `target` with world z up."""
    z = np.asarray(pos, float) - np.asarray(target, float)
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.stack([x, y, z], 1).reshape(9))
    return q.tolist()


def build_model(cube_half_size: float, cube_mass: float, cube_friction: float,
                physics_dt: float) -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_file(str(robot_asset().mjcf))
    spec.option.timestep = physics_dt
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.visual.global_.offwidth = 640
    spec.visual.global_.offheight = 480
    wb = spec.worldbody
    wb.add_light(name="sun", pos=[0.3, 0.0, 1.5], dir=[0.0, 0.0, -1.0], diffuse=[0.8, 0.8, 0.8],
                 castshadow=False)
    wb.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1.0, 1.0, 0.05],
                rgba=[*FLOOR_RGB, 1.0], friction=[1.0, 0.05, 0.001])
    cube = wb.add_body(name="cube", pos=[*CUBE_SPAWN_XY, cube_half_size])
    cube.add_freejoint(name="cube_joint")
    cube.add_geom(name="cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[cube_half_size] * 3,
                  mass=cube_mass, rgba=list(CUBE_RGBA), condim=4,
                  friction=[cube_friction, 0.05, 0.001], solref=[0.01, 1.0])
    wb.add_camera(name="front_cam", pos=list(FRONT_CAM_POS), quat=lookat_quat(FRONT_CAM_POS, FRONT_CAM_LOOKAT),
                  fovy=FRONT_CAM_FOVY)
    wb.add_camera(name="scene_cam", pos=list(SCENE_CAM_POS), quat=lookat_quat(SCENE_CAM_POS, SCENE_CAM_LOOKAT),
                  fovy=SCENE_CAM_FOVY)
    return spec.compile()


def _span(idx: np.ndarray | list[int], what: str) -> slice:
    """The slice of the consecutive indices `idx`: batched copies read slices of the MjData arrays
    (views, made once), which fancy indices would not give."""
    idx = np.asarray(idx)
    start = int(idx[0])
    if not np.array_equal(idx, np.arange(start, start + len(idx))):
        raise ValueError(f"the {what} {idx.tolist()} are not consecutive in the model")
    return slice(start, start + len(idx))


class MujocoBackend:
    """N MuJoCo envs (`num_envs`, 1 for a single env) moved in and out of the task's tensors as one batch."""

    device = torch.device("cpu")
    name = "MuJoCo"
    supports = BACKEND_RANDOMISATIONS["MuJoCo"]

    def __init__(self, cube_half_size: float = 0.015, cube_mass: float = 0.03,
                 cube_friction: float = 0.5, physics_dt: float = 0.002, image_size: int = 84,
                 render_size: tuple[int, int] = (240, 320), num_envs: int = 1) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} is invalid: allowed an integer >= 1")
        m = build_model(cube_half_size, cube_mass, cube_friction, physics_dt)
        self.models = [m] + [copy.copy(m) for _ in range(num_envs - 1)]  # copies: edited per env at reset
        self.datas = [mujoco.MjData(model) for model in self.models]
        self.num_envs = n = num_envs
        jnt = [m.joint(name).id for name in JOINT_NAMES]
        self._q_arm = _span(m.jnt_qposadr[jnt], "arm joints' qpos addresses")
        self._v_arm = _span(m.jnt_dofadr[jnt], "arm joints' dof addresses")
        act = _span([m.actuator(name).id for name in JOINT_NAMES], "arm actuators")
        cq = int(m.jnt_qposadr[m.joint("cube_joint").id])
        self._cube_geom = m.geom("cube").id
        self._grip_body = m.body(GRIPPER_BODY).id
        tcp, pad = m.site("tcp").id, m.geom("moving_jaw_pad").id
        # Geom pair -> bit 0: the cube and a fixed-jaw geom, bit 1: the cube and a moving-jaw geom.
        self._pair_kind = np.zeros((m.ngeom, m.ngeom), np.uint8)  # (ngeom, ngeom), symmetric
        for bit, names in ((1, FIXED_JAW_GEOMS), (2, MOVING_JAW_GEOMS)):
            for g in names:
                self._pair_kind[self._cube_geom, m.geom(g).id] |= bit
                self._pair_kind[m.geom(g).id, self._cube_geom] |= bit
        self._env_ids = np.arange(n)
        self._cam = m.camera("wrist_cam").id
        self._cam_pos0 = m.cam_pos[self._cam].copy()
        self._cam_quat0 = m.cam_quat[self._cam].copy()
        self._light = m.light("sun").id
        self.joint_low = torch.tensor(m.jnt_range[jnt, 0], dtype=torch.float32)
        self.joint_high = torch.tensor(m.jnt_range[jnt, 1], dtype=torch.float32)
        self.image_size = image_size
        self.render_size = render_size
        self._renderers: list[mujoco.Renderer | None] = [None] * n
        self._scene_renderers: list[mujoco.Renderer | None] = [None] * n
        # Per env, views of its MjData arrays (MuJoCo allocates them once; mj_resetData keeps them).
        self._arm_q = [d.qpos[self._q_arm] for d in self.datas]  # (6,) each
        self._ctrl = [d.ctrl[act] for d in self.datas]  # (6,) each
        self._cube_q = [d.qpos[cq:cq + 7] for d in self.datas]  # (7,) each: position, wxyz
        self._tcp = [d.site_xpos[tcp] for d in self.datas]  # (3,) each
        self._grip_quat = [d.xquat[self._grip_body] for d in self.datas]  # (4,) each
        ds = self.datas
        fields = {  # PhysState field -> per env, a view of its MjData array
            "qpos": self._arm_q, "qvel": [d.qvel[self._v_arm] for d in ds], "tcp_pos": self._tcp,
            "gripper_quat": self._grip_quat, "moving_jaw_pos": [d.geom_xpos[pad] for d in ds],
            "cube_pos": [d.qpos[cq:cq + 3] for d in ds], "cube_quat": [d.qpos[cq + 3:cq + 7] for d in ds]}
        # Field-major: read() copies every view into one (sum of N * width,) float64 buffer in one call,
        # so that each field's rows (N, width) are one contiguous block of it.
        self._views = [v for views in fields.values() for v in views]
        self._blocks: dict[str, tuple[int, int, int]] = {}  # field -> (start, stop, width) in the buffer
        start = 0
        for name, views in fields.items():
            width = len(views[0])
            self._blocks[name] = (start, start + n * width, width)
            start += n * width
        self._gathered = np.empty(start)  # float64, refilled by every read()
        self._jac = np.zeros((2, n, 3, m.nv))  # positional, rotational Jacobians, written by mj_jac
        self._jac_out = [(self._jac[0, i], self._jac[1, i]) for i in range(n)]  # (3, nv) views per env
        for model, d in zip(self.models, self.datas):
            mujoco.mj_forward(model, d)

    @property
    def model(self) -> mujoco.MjModel:
        """Env 0's model (the single env's)."""
        return self.models[0]

    @property
    def data(self) -> mujoco.MjData:
        """Env 0's data (the single env's)."""
        return self.datas[0]

    # -- state in -------------------------------------------------------------------------
    def set_state(self, env_ids: torch.Tensor, s: ResetState) -> None:
        ids = env_ids.tolist()
        if not ids:
            return
        half, friction = s.cube_half_size.numpy(), s.cube_friction.numpy()  # (k,) each
        rgba = s.cube_rgba.numpy()  # (k, 4)
        offset = s.camera_offset.numpy().astype(np.float64)  # (k, 6)
        light_dir, intensity = s.light_dir.numpy(), s.light_intensity.numpy()  # (k, 3), (k,)
        qpos, cube_pos, cube_quat = s.qpos.numpy(), s.cube_pos.numpy(), s.cube_quat.numpy()  # (k, 6), (k, 3), (k, 4)
        cg, cam = self._cube_geom, self._cam
        for j, i in enumerate(ids):
            m, d = self.models[i], self.datas[i]
            h = float(half[j])
            m.geom_size[cg] = h
            m.geom_rbound[cg] = h * np.sqrt(3.0)
            m.geom_friction[cg, 0] = float(friction[j])
            m.geom_rgba[cg] = rgba[j]
            off = offset[j]
            m.cam_pos[cam] = self._cam_pos0 + off[:3]
            dq = np.zeros(4)
            mujoco.mju_axisAngle2Quat(dq, off[3:] / (np.linalg.norm(off[3:]) + 1e-12), np.linalg.norm(off[3:]))
            q = np.zeros(4)
            mujoco.mju_mulQuat(q, self._cam_quat0, dq)
            m.cam_quat[cam] = q
            m.light_dir[self._light] = light_dir[j]
            m.light_diffuse[self._light] = float(intensity[j])
            mujoco.mj_resetData(m, d)
            self._arm_q[i][:] = qpos[j]
            self._cube_q[i][:3] = cube_pos[j]
            self._cube_q[i][3:] = cube_quat[j]
            self._ctrl[i][:] = qpos[j]
            mujoco.mj_forward(m, d)

    def set_qpos_kinematic(self, env_ids: torch.Tensor, qpos: torch.Tensor) -> None:
        q = qpos.numpy()  # (k, 6)
        for j, i in enumerate(env_ids.tolist()):
            m, d = self.models[i], self.datas[i]
            self._arm_q[i][:] = q[j]
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)

    def kinematics(self, env_ids: torch.Tensor, qpos: torch.Tensor) -> Kinematics:
        # MuJoCo's own kinematics are microseconds per env: use them.
        self.set_qpos_kinematic(env_ids, qpos)
        ids = env_ids.tolist()
        for i in ids:
            self._jacobian(i)
        k = len(ids)
        tcp = np.array([self._tcp[i] for i in ids], np.float32).reshape(k, 3)
        quat = np.array([self._grip_quat[i] for i in ids], np.float32).reshape(k, 4)
        jac = torch.from_numpy(self._jac[:, ids, :, self._v_arm].astype(np.float32))  # (2, k, 3, 6)
        return Kinematics(tcp_pos=torch.from_numpy(tcp), gripper_rot=quat_to_mat(torch.from_numpy(quat)),
                          jac_pos=jac[0], jac_rot=jac[1])

    def step(self, q_target: torch.Tensor, n_substeps: int) -> None:
        # The targets stay constant over the substeps: one mj_step call per env does them all.
        for m, d, ctrl, q in zip(self.models, self.datas, self._ctrl, q_target.numpy()):
            ctrl[:] = q
            mujoco.mj_step(m, d, nstep=n_substeps)

    # -- state out ------------------------------------------------------------------------
    def _jacobian(self, i: int) -> None:
        """Env i's Jacobians of the TCP (a point on the gripper body) into row i of `_jac`."""
        jacp, jacr = self._jac_out[i]
        mujoco.mj_jac(self.models[i], self.datas[i], jacp, jacr, self._tcp[i], self._grip_body)

    def _contacts(self) -> torch.Tensor:
        """(2, N) bool: the cube touches the fixed jaw (row 0), the moving jaw (row 1), in each env's contacts."""
        pairs = [d.contact.geom for d in self.datas]  # (ncon_i, 2) geom ids per env
        touching = np.zeros((2, self.num_envs), bool)
        geom = np.concatenate(pairs)  # (C, 2)
        kind = self._pair_kind[geom[:, 0], geom[:, 1]]  # (C,)
        if kind.any():
            env = np.repeat(self._env_ids, [len(p) for p in pairs])  # (C,) the env of each contact
            touching[0, env[(kind & 1) > 0]] = True
            touching[1, env[(kind & 2) > 0]] = True
        return torch.from_numpy(touching)

    def read(self) -> PhysState:
        """Every env's state, each field one (N, ...) tensor of a new array (earlier reads stay as they were)."""
        for i in range(self.num_envs):
            self._jacobian(i)
        np.concatenate(self._views, out=self._gathered)
        flat = self._gathered.astype(np.float32)  # (sum of N * width,), new per read
        f = {name: torch.from_numpy(flat[a:b].reshape(-1, w)) for name, (a, b, w) in self._blocks.items()}  # (N, w)
        jac = torch.from_numpy(self._jac[..., self._v_arm].astype(np.float32))  # (2, N, 3, 6)
        contact = self._contacts()  # (2, N)
        return PhysState(
            qpos=f["qpos"], qvel=f["qvel"], tcp_pos=f["tcp_pos"], gripper_quat=f["gripper_quat"],
            gripper_rot=quat_to_mat(f["gripper_quat"]),  # from the float32 quat, as Genesis
            moving_jaw_pos=f["moving_jaw_pos"], cube_pos=f["cube_pos"], cube_quat=f["cube_quat"],
            contact_fixed=contact[0], contact_moving=contact[1], jac_pos=jac[0], jac_rot=jac[1])

    def render(self, camera: str = "wrist") -> torch.Tensor:
        cam = self._cam if camera == "wrist" else f"{camera}_cam"
        size = self.image_size
        out = np.empty((self.num_envs, size, size, 3), np.uint8)  # a new array per call: observations stay
        for i, d in enumerate(self.datas):
            if self._renderers[i] is None:
                self._renderers[i] = self._make_renderer(i, size, size)
            self._renderers[i].update_scene(d, camera=cam)
            self._renderers[i].render(out=out[i])
        return torch.from_numpy(out)  # (N, H, W, 3)

    def render_scene(self, env: int = 0) -> np.ndarray:
        if self._scene_renderers[env] is None:
            self._scene_renderers[env] = self._make_renderer(env, *self.render_size)
        self._scene_renderers[env].update_scene(self.datas[env], camera="scene_cam")
        return self._scene_renderers[env].render().copy()

    def _make_renderer(self, env: int, h: int, w: int) -> mujoco.Renderer:
        """A renderer of env `env`'s model (its randomised cube, light and camera)."""
        r = mujoco.Renderer(self.models[env], h, w)
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return r

    def close(self) -> None:
        for r in (*self._renderers, *self._scene_renderers):
            if r is not None:
                r.close()
        self._renderers = [None] * self.num_envs
        self._scene_renderers = [None] * self.num_envs
