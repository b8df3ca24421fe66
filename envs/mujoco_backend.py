"""MuJoCo backend: one env, exposed as a batch of one (torch, CPU)."""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import numpy as np
import torch

from envs._headless import setup_headless_gl

setup_headless_gl()

import mujoco  # noqa: E402

from envs.backend import PhysState, ResetState  # noqa: E402
from envs.config import BACKEND_RANDOMISATIONS  # noqa: E402
from envs.kinematics import Kinematics  # noqa: E402
from envs.geometry import quat_to_mat  # noqa: E402
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


class MujocoBackend:
    """Moves physics state between one MjData and the task's batched tensors."""

    num_envs = 1
    device = torch.device("cpu")
    name = "MuJoCo"
    supports = BACKEND_RANDOMISATIONS["MuJoCo"]

    def __init__(self, cube_half_size: float = 0.015, cube_mass: float = 0.03,
                 cube_friction: float = 0.5, physics_dt: float = 0.002, image_size: int = 84,
                 render_size: tuple[int, int] = (240, 320)) -> None:
        self.model = build_model(cube_half_size, cube_mass, cube_friction, physics_dt)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._jnt = [m.joint(n).id for n in JOINT_NAMES]
        self._qadr = np.array([m.jnt_qposadr[j] for j in self._jnt])
        self._dadr = np.array([m.jnt_dofadr[j] for j in self._jnt])
        self._act = [m.actuator(n).id for n in JOINT_NAMES]
        cj = m.joint("cube_joint").id
        self._cube_q = int(m.jnt_qposadr[cj])
        self._cube_d = int(m.jnt_dofadr[cj])
        self._cube_geom = m.geom("cube").id
        self._cube_body = m.body("cube").id
        self._grip_body = m.body(GRIPPER_BODY).id
        self._tcp = m.site("tcp").id
        self._mpad = m.geom("moving_jaw_pad").id
        self._fixed = {m.geom(g).id for g in FIXED_JAW_GEOMS}
        self._moving = {m.geom(g).id for g in MOVING_JAW_GEOMS}
        self._cam = m.camera("wrist_cam").id
        self._cam_pos0 = m.cam_pos[self._cam].copy()
        self._cam_quat0 = m.cam_quat[self._cam].copy()
        self._light = m.light("sun").id
        self.joint_low = torch.tensor(m.jnt_range[self._jnt, 0], dtype=torch.float32)
        self.joint_high = torch.tensor(m.jnt_range[self._jnt, 1], dtype=torch.float32)
        self.image_size = image_size
        self.render_size = render_size
        self._renderer: mujoco.Renderer | None = None
        self._scene_renderer: mujoco.Renderer | None = None
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        mujoco.mj_forward(m, self.data)

    # -- state in -------------------------------------------------------------------------
    def set_state(self, env_ids: torch.Tensor, s: ResetState) -> None:
        if len(env_ids) == 0:
            return
        m, d = self.model, self.data
        h = float(s.cube_half_size[0])
        m.geom_size[self._cube_geom] = h
        m.geom_rbound[self._cube_geom] = h * np.sqrt(3.0)
        m.geom_friction[self._cube_geom, 0] = float(s.cube_friction[0])
        m.geom_rgba[self._cube_geom] = s.cube_rgba[0].numpy()
        off = s.camera_offset[0].numpy().astype(np.float64)
        m.cam_pos[self._cam] = self._cam_pos0 + off[:3]
        dq = np.zeros(4)
        mujoco.mju_axisAngle2Quat(dq, off[3:] / (np.linalg.norm(off[3:]) + 1e-12), np.linalg.norm(off[3:]))
        q = np.zeros(4)
        mujoco.mju_mulQuat(q, self._cam_quat0, dq)
        m.cam_quat[self._cam] = q
        m.light_dir[self._light] = s.light_dir[0].numpy()
        m.light_diffuse[self._light] = float(s.light_intensity[0])
        mujoco.mj_resetData(m, d)
        d.qpos[self._qadr] = s.qpos[0].numpy()
        d.qpos[self._cube_q:self._cube_q + 3] = s.cube_pos[0].numpy()
        d.qpos[self._cube_q + 3:self._cube_q + 7] = s.cube_quat[0].numpy()
        d.ctrl[self._act] = s.qpos[0].numpy()
        mujoco.mj_forward(m, d)

    def set_qpos_kinematic(self, env_ids: torch.Tensor, qpos: torch.Tensor) -> None:
        if len(env_ids) == 0:
            return
        self.data.qpos[self._qadr] = qpos[0].numpy()
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def kinematics(self, env_ids: torch.Tensor, qpos: torch.Tensor) -> Kinematics:
        # MuJoCo's own kinematics are microseconds: use them (a batch of one).
        self.set_qpos_kinematic(env_ids, qpos)
        s = self.read()
        return Kinematics(tcp_pos=s.tcp_pos, gripper_rot=s.gripper_rot, jac_pos=s.jac_pos, jac_rot=s.jac_rot)

    def step(self, q_target: torch.Tensor, n_substeps: int) -> None:
        self.data.ctrl[self._act] = q_target[0].numpy()
        mujoco.mj_step(self.model, self.data, nstep=n_substeps)

    # -- state out ------------------------------------------------------------------------
    def _contacts(self) -> tuple[bool, bool]:
        d = self.data
        fixed = moving = False
        cg = self._cube_geom
        for i in range(d.ncon):
            c = d.contact[i]
            g1, g2 = int(c.geom1), int(c.geom2)
            if cg not in (g1, g2):
                continue
            other = g2 if g1 == cg else g1
            fixed |= other in self._fixed
            moving |= other in self._moving
        return fixed, moving

    def read(self) -> PhysState:
        m, d = self.model, self.data
        mujoco.mj_jac(m, d, self._jacp, self._jacr, d.site_xpos[self._tcp], self._grip_body)
        fixed, moving = self._contacts()
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32)).unsqueeze(0)  # noqa: E731
        return PhysState(
            qpos=t(d.qpos[self._qadr]),
            qvel=t(d.qvel[self._dadr]),
            tcp_pos=t(d.site_xpos[self._tcp]),
            gripper_quat=t(d.xquat[self._grip_body]),
            gripper_rot=quat_to_mat(t(d.xquat[self._grip_body])),  # from the float32 quat, as Genesis
            moving_jaw_pos=t(d.geom_xpos[self._mpad]),
            cube_pos=t(d.qpos[self._cube_q:self._cube_q + 3]),
            cube_quat=t(d.qpos[self._cube_q + 3:self._cube_q + 7]),
            contact_fixed=torch.tensor([fixed]),
            contact_moving=torch.tensor([moving]),
            jac_pos=t(self._jacp[:, self._dadr]),
            jac_rot=t(self._jacr[:, self._dadr]),
        )

    def render(self, camera: str = "wrist") -> torch.Tensor:
        if self._renderer is None:
            self._renderer = self._make_renderer(self.image_size, self.image_size)
        self._renderer.update_scene(self.data, camera=self._cam if camera == "wrist" else f"{camera}_cam")
        return torch.from_numpy(self._renderer.render().copy()).unsqueeze(0)  # (1, H, W, 3)

    def render_scene(self, env: int = 0) -> np.ndarray:
        if self._scene_renderer is None:
            self._scene_renderer = self._make_renderer(*self.render_size)
        self._scene_renderer.update_scene(self.data, camera="scene_cam")
        return self._scene_renderer.render().copy()

    def _make_renderer(self, h: int, w: int) -> mujoco.Renderer:
        r = mujoco.Renderer(self.model, h, w)
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return r

    def close(self) -> None:
        for r in (self._renderer, self._scene_renderer):
            if r is not None:
                r.close()
        self._renderer = self._scene_renderer = None


def _rows(state: Any, j: int) -> Any:
    """Row j of a batch-first dataclass (ResetState), as a batch of one."""
    return replace(state, **{f.name: getattr(state, f.name)[j:j + 1] for f in fields(state)})


def _cat(parts: list[Any]) -> Any:
    """Batch-of-one dataclasses (PhysState, Kinematics) -> one batch, field by field."""
    return replace(parts[0], **{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(parts[0])})


class MujocoBatchBackend:
    """N MuJoCo envs in this process as one batch: what the native engine trains on.

    MuJoCo steps one MjData at a time, so this loops over the envs; each keeps its own model,
    since cube size, colour, friction, light and camera are randomised by editing the model.
    Env i is the same as a single env seeded with seed + i (the task seeds per env).
    """

    device = torch.device("cpu")
    name = "MuJoCo"
    supports = BACKEND_RANDOMISATIONS["MuJoCo"]

    def __init__(self, envs: list[MujocoBackend]) -> None:
        self.envs = envs
        self.num_envs = len(envs)
        self.joint_low, self.joint_high = envs[0].joint_low, envs[0].joint_high
        self._one = torch.zeros(1, dtype=torch.long)

    def set_state(self, env_ids: torch.Tensor, s: ResetState) -> None:
        for j, i in enumerate(env_ids.tolist()):
            self.envs[i].set_state(self._one, _rows(s, j))

    def set_qpos_kinematic(self, env_ids: torch.Tensor, qpos: torch.Tensor) -> None:
        for j, i in enumerate(env_ids.tolist()):
            self.envs[i].set_qpos_kinematic(self._one, qpos[j:j + 1])

    def kinematics(self, env_ids: torch.Tensor, qpos: torch.Tensor) -> Kinematics:
        return _cat([self.envs[i].kinematics(self._one, qpos[j:j + 1]) for j, i in enumerate(env_ids.tolist())])

    def step(self, q_target: torch.Tensor, n_substeps: int) -> None:
        for i, env in enumerate(self.envs):
            env.step(q_target[i:i + 1], n_substeps)

    def read(self) -> PhysState:
        return _cat([env.read() for env in self.envs])

    def render(self, camera: str = "wrist") -> torch.Tensor:
        return torch.cat([env.render(camera) for env in self.envs])  # (N, H, W, 3)

    def render_scene(self, env: int = 0) -> np.ndarray:
        return self.envs[env].render_scene()

    def close(self) -> None:
        for env in self.envs:
            env.close()
