"""Genesis backend: N envs in one scene (`scene.build(n_envs=N)`), batch-first torch.

Only moves physics state in and out; the task (envs/task.py) does the rest. Facts this
relies on (docs/backends.md): `gs.init` once per process; elliptic friction cone and
torsional friction to hold the cube; per-env camera images need `split_envs=True`; link ids in
contacts are global; MJCF sites and cameras are not imported, so the TCP, the moving pad and
the wrist camera are re-created from the same offsets the MuJoCo model uses.
"""
from __future__ import annotations

import functools
import importlib.util
import warnings

import numpy as np
import torch

from envs._headless import setup_headless_gl
from envs.backend import PhysState, ResetState
from envs.config import (
    BACKEND_RANDOMISATIONS,
    RENDERERS,
    SIM_DEVICES,
    ConfigError,
    TaskConfig,
    check_backend,
)
from envs.geometry import quat_to_mat, rotvec_to_mat
from envs.kinematics import ArmKinematics, Kinematics
from envs.robot import (
    GRIPPER_BODY,
    JOINT_NAMES,
    MOVING_JAW_BODY,
    robot_asset,
    robot_model,
)
from envs.scene import (
    CUBE_RGBA,
    CUBE_SPAWN_XY,
    FLOOR_RGB,
    SCENE_CAM_FOVY,
    SCENE_CAM_LOOKAT,
    SCENE_CAM_POS,
)

setup_headless_gl()

_INITIALISED: str | None = None


def init_genesis(device: str = "cpu") -> str:
    """`gs.init` once per process; returns the backend actually used ("cpu" or "gpu")."""
    global _INITIALISED
    if device not in SIM_DEVICES:
        raise ConfigError(f"sim_device={device!r} is invalid: allowed {', '.join(SIM_DEVICES)}")
    want = "gpu" if device == "gpu" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    if want == "gpu" and not torch.cuda.is_available():
        raise ConfigError("sim_device='gpu' is invalid here: CUDA is not available (allowed: cpu, auto)")
    # setuptools before Genesis: once Genesis is imported, `import setuptools` fails its own check that
    # its distutils replaced the interpreter's, and torch.compile's C++ builder (task.compile=true)
    # imports setuptools. Without setuptools (Python >= 3.12) there is no stdlib distutils to clash with.
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pass
    import genesis as gs

    if _INITIALISED is None:
        gs.init(backend=gs.gpu if want == "gpu" else gs.cpu, logging_level="warning")
        _INITIALISED = want
    elif _INITIALISED != want:
        raise ConfigError(f"Genesis is already initialised on {_INITIALISED} in this process; "
                          f"sim_device={device!r} cannot switch it")
    return _INITIALISED


def _has_madrona() -> bool:
    return importlib.util.find_spec("gs_madrona") is not None


@functools.lru_cache(maxsize=1)
def _model_offsets() -> dict[str, np.ndarray]:
    """Offsets of the pads, TCP and camera in their link frames, read from the shared MJCF."""
    import mujoco

    m = robot_model()
    cam = m.camera("wrist_cam")
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, cam.quat)
    return {"tcp": m.site("tcp").pos.copy(), "moving_pad": m.geom("moving_jaw_pad").pos.copy(),
            "cam_pos": cam.pos.copy(), "cam_rot": rot.reshape(3, 3), "cam_fovy": float(m.cam_fovy[cam.id])}


class GenesisBackend:
    """N envs of the lift scene in one Genesis scene."""

    name = "Genesis"
    supports = BACKEND_RANDOMISATIONS["Genesis"]

    def __init__(self, cfg: TaskConfig, num_envs: int = 1, device: str = "cpu",
                 render_size: tuple[int, int] = (240, 320), renderer: str = "auto") -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ConfigError(f"num_envs={num_envs!r} is invalid: allowed an integer >= 1")
        if renderer not in RENDERERS:
            raise ConfigError(f"renderer={renderer!r} is invalid: allowed {', '.join(RENDERERS)}")
        check_backend(cfg, "Genesis")
        used = init_genesis(device)
        if renderer == "batch" and used != "gpu":
            raise ConfigError("renderer='batch' is invalid here: Genesis' BatchRenderer needs the CUDA backend "
                              "(sim_device=gpu); allowed on CPU: auto, rasterizer")
        import genesis as gs

        self.gs = gs
        self.num_envs = num_envs
        self.device = torch.device("cuda") if used == "gpu" else torch.device("cpu")
        self.cfg = cfg
        off = _model_offsets()
        scene_kw = dict(
            sim_options=gs.options.SimOptions(dt=cfg.frame_skip_dt, substeps=cfg.n_substeps),
            rigid_options=gs.options.RigidOptions(
                friction_cone=gs.friction_cone.elliptic, enable_torsional_friction=True),
            vis_options=gs.options.VisOptions(split_envs=True, shadow=False, plane_reflection=False),
            show_viewer=False,
        )
        self.renderer = "rasterizer"
        scene = None
        if cfg.pixels and used == "gpu" and renderer in ("auto", "batch") and _has_madrona():
            # All N wrist images in one batched GPU pass; cameras keep the same API.
            try:
                scene = gs.Scene(renderer=gs.renderers.BatchRenderer(use_rasterizer=True), **scene_kw)
                self.renderer = "batch"
                render_size = (cfg.image_size, cfg.image_size)  # batch cameras share one resolution
            except Exception as e:  # noqa: BLE001  fall back, loudly
                if renderer == "batch":
                    raise
                warnings.warn(f"Genesis BatchRenderer unavailable ({e}); using the rasterizer")
        if scene is None:
            scene = gs.Scene(**scene_kw)
        scene.add_entity(gs.morphs.Plane(), surface=gs.surfaces.Default(color=FLOOR_RGB))
        self.robot = scene.add_entity(gs.morphs.MJCF(file=str(robot_asset().mjcf)))
        h = cfg.cube_half_size
        self.cube = scene.add_entity(
            gs.morphs.Box(size=(2 * h, 2 * h, 2 * h), pos=(*CUBE_SPAWN_XY, h)),
            material=gs.materials.Rigid(friction=cfg.cube_friction, rho=cfg.cube_mass / (2 * h) ** 3),
            surface=gs.surfaces.Default(color=CUBE_RGBA[:3]))
        self.cam = None
        if cfg.pixels:
            # near=0.01: Genesis' default 0.1 m clips the jaws and the held cube away.
            self.cam = scene.add_camera(res=(cfg.image_size, cfg.image_size), fov=off["cam_fovy"], near=0.01,
                                        GUI=False)
        self.scene_cam = scene.add_camera(res=(render_size[1], render_size[0]), pos=SCENE_CAM_POS,
                                          lookat=SCENE_CAM_LOOKAT, fov=SCENE_CAM_FOVY, GUI=False)
        scene.build(n_envs=num_envs)
        self.scene = scene
        self.dofs = [self.robot.get_joint(n).dofs_idx_local[0] for n in JOINT_NAMES]
        # The arm's dofs among the solver's (JOINT_NAMES order): a slice when they lie in order.
        cols = [self.robot.dof_start + d for d in self.dofs]
        self._dof_cols = slice(cols[0], cols[0] + 6) if cols == list(range(cols[0], cols[0] + 6)) else cols
        self.grip = self.robot.get_link(GRIPPER_BODY)
        self.jaw = self.robot.get_link(MOVING_JAW_BODY)
        # Global link ids: gripper, moving jaw, cube (solver-level getters take global ids).
        self._pose_links = [self.grip.idx, self.jaw.idx, self.cube.base_link.idx]
        self._cube_link = self.cube.base_link.idx
        self._state = _StateFields(scene.rigid_solver, self)
        if self.cam is not None:
            # The camera's pose in the gripper link, one per env: (N, 4, 4). Genesis composes
            # link pose @ offset with NumPy broadcasting, so per-env offsets give per-env jitter.
            cam_T = np.eye(4)
            cam_T[:3, :3], cam_T[:3, 3] = off["cam_rot"], off["cam_pos"]
            self._cam_offsets = np.repeat(cam_T[None], num_envs, 0)
            # One shared offset unless jitter is on (the BatchRenderer path is untested with per-env offsets).
            self.cam.attach(self.grip, self._cam_offsets if cfg.randomization.camera_jitter else cam_T)
        dev = self.device
        self._tcp_off = torch.tensor(off["tcp"], dtype=torch.float32, device=dev)
        self._jaw_links = torch.tensor([self.grip.idx, self.jaw.idx], device=dev)  # (2,) global ids
        self._pad_off = torch.tensor(off["moving_pad"], dtype=torch.float32, device=dev)
        lim = self.robot.get_dofs_limit(self.dofs)
        self.joint_low = lim[0].to(dev, torch.float32).reshape(-1)[:6]
        self.joint_high = lim[1].to(dev, torch.float32).reshape(-1)[:6]
        self._base_friction = cfg.cube_friction
        self._model_cam_pos, self._model_cam_rot = off["cam_pos"], off["cam_rot"]
        self._kin = ArmKinematics(dev)
        self._q_target = torch.zeros(num_envs, 6, device=dev)
        self._n_substeps = cfg.n_substeps

    # -- state in -------------------------------------------------------------------------
    def set_state(self, env_ids: torch.Tensor, s: ResetState) -> None:
        if len(env_ids) == 0:
            return
        ids = env_ids.to(self.device)
        self.robot.set_dofs_position(s.qpos.to(self.device), self.dofs, envs_idx=ids, zero_velocity=True)
        self.robot.control_dofs_position(s.qpos.to(self.device), self.dofs, envs_idx=ids)
        self._q_target[ids] = s.qpos.to(self.device)
        self.cube.set_pos(s.cube_pos.to(self.device), envs_idx=ids, zero_velocity=True)
        self.cube.set_quat(s.cube_quat.to(self.device), envs_idx=ids, zero_velocity=True)
        if self.cfg.randomization.cube_friction:
            ratio = (s.cube_friction / self._base_friction).to(self.device).reshape(-1, 1)
            self.cube.set_friction_ratio(ratio, [0], envs_idx=ids)
        self._visuals_moved()
        self._detect_contacts()
        if self.cfg.randomization.camera_jitter and self.cam is not None:
            # As MuJoCo does it: position offset in the link frame, rotation applied in the camera frame.
            off = s.camera_offset.detach().cpu().to(torch.float64)  # (k, 6)
            rows = env_ids.cpu().numpy()
            self._cam_offsets[rows, :3, 3] = self._model_cam_pos + off[:, :3].numpy()
            self._cam_offsets[rows, :3, :3] = self._model_cam_rot @ rotvec_to_mat(off[:, 3:]).numpy()
            self.cam.attach(self.grip, self._cam_offsets)

    def set_qpos_kinematic(self, env_ids: torch.Tensor, qpos: torch.Tensor) -> None:
        if len(env_ids) == 0:
            return
        self.robot.set_dofs_position(qpos.to(self.device), self.dofs, envs_idx=env_ids.to(self.device),
                                     zero_velocity=True)
        self._visuals_moved()

    def _visuals_moved(self) -> None:
        """State was teleported: make the next render show it.

        Genesis refreshes the visual geometry and attached cameras once per scene step, so
        without this the first image after a reset showed the end of the previous episode
        (and FrameStack refilled the new episode's stack with it).
        """
        self.scene.visualizer.update(force=True)

    def _detect_contacts(self) -> None:
        """State was teleported: make the contacts read next those of the new poses.

        Genesis detects contacts inside `scene.step` only, so after a reset the collider still held
        the previous step's: a stage-1/2 start with the cube between the pads read as not grasped
        until the first step (MuJoCo's reset reports the grasp), and the scripted expert, told so,
        opened the jaws to grasp again. Detection runs for every env (it cannot take a subset),
        which leaves the next physics step bitwise the same: each substep detects afresh.
        """
        collider = self.scene.rigid_solver.collider
        collider.clear()
        collider.detection()

    def kinematics(self, env_ids: torch.Tensor, qpos: torch.Tensor) -> Kinematics:
        # Torch forward kinematics of the same MJCF: a Genesis set_dofs_position + read per
        # IK iteration would cost ~2.5 ms (envs/kinematics.py).
        return self._kin(qpos.to(self.device, torch.float32))

    def step(self, q_target: torch.Tensor, n_substeps: int) -> None:
        # One scene step = one 20 ms control step; Genesis runs the n_substeps physics
        # substeps (and the PD servo) inside, without a Python loop.
        self.robot.control_dofs_position(q_target.to(self.device), self.dofs)
        self.scene.step(update_visualizer=False)

    # -- state out ------------------------------------------------------------------------
    def read(self) -> PhysState:
        """All the task needs, read from Genesis' state fields (see `_StateFields`)."""
        f = self._state
        qpos = f.get("dof_pos")[:, self._dof_cols].clone(memory_format=torch.contiguous_format)  # (N, 6)
        qvel = f.get("dof_vel")[:, self._dof_cols].clone(memory_format=torch.contiguous_format)  # (N, 6)
        lpos = f.get("link_pos").index_select(1, f.pose_links)  # (N, 3 links, 3) gripper, moving jaw, cube
        lquat = f.get("link_quat").index_select(1, f.pose_links)  # (N, 3 links, 4) wxyz
        rot = quat_to_mat(lquat[:, :2])  # (N, 2, 3, 3) gripper, moving jaw
        tcp = lpos[:, 0] + rot[:, 0] @ self._tcp_off  # (N, 3)
        pad = lpos[:, 1] + rot[:, 1] @ self._pad_off  # (N, 3)
        # The TCP Jacobian from the arm's joint frames: column i is a_i x (tcp - p_i) (position) and
        # a_i (rotation) for the five joints that carry the gripper; the jaw joint's column is zero.
        axis = f.get("joint_axis").index_select(1, f.arm_joints)  # (N, 5, 3) world-frame joint axes
        anchor = f.get("joint_anchor").index_select(1, f.arm_joints)  # (N, 5, 3) world-frame joint origins
        jac_pos = f.pad_jaw(torch.linalg.cross(axis, tcp.unsqueeze(1) - anchor, dim=2))  # (N, 3, 6)
        jac_rot = f.pad_jaw(axis)  # (N, 3, 6)
        touch = self._jaw_contacts()  # (N, 2)
        return PhysState(
            qpos=qpos, qvel=qvel, tcp_pos=tcp, gripper_quat=lquat[:, 0], gripper_rot=rot[:, 0], moving_jaw_pos=pad,
            cube_pos=lpos[:, 2], cube_quat=lquat[:, 2], contact_fixed=touch[:, 0], contact_moving=touch[:, 1],
            jac_pos=jac_pos, jac_rot=jac_rot)

    def _jaw_contacts(self) -> torch.Tensor:
        """(N, 2) bool: the cube touches the fixed jaw, the moving jaw (this step's contacts only).

        Contact slots past each env's live contact count hold stale contacts from earlier steps,
        which must not count as touching.
        """
        la, lb, live = self._state.contacts()  # (N, C) link ids of each contact's two sides, (N, C) live
        cube = self._cube_link
        other = torch.where(lb == cube, la, torch.where(la == cube, lb, -1))  # (N, C) link touching the cube
        other = torch.where(live, other, -1)
        return (other.unsqueeze(-1) == self._jaw_links).any(1)  # (N, 2)

    def render(self, camera: str = "wrist") -> torch.Tensor:
        if self.cam is None:
            raise RuntimeError("pixels=False: this backend was built without a wrist camera")
        rgb = self.cam.render(rgb=True, depth=False, segmentation=False, normal=False)[0]
        rgb = torch.as_tensor(np.ascontiguousarray(rgb) if isinstance(rgb, np.ndarray) else rgb, device=self.device)
        return rgb.reshape(self.num_envs, *rgb.shape[-3:]).to(torch.uint8)  # (N, H, W, 3)

    def render_scene(self, env: int = 0) -> np.ndarray:
        rgb = self.scene_cam.render(rgb=True, depth=False, segmentation=False, normal=False)[0]
        rgb = np.asarray(rgb.cpu() if isinstance(rgb, torch.Tensor) else rgb)
        return rgb[env] if rgb.ndim == 4 else rgb

    def close(self) -> None:
        """Free the cameras' GL resources now, while the scene is whole. Left to the garbage
        collector, which finalizes a dead scene's objects in no set order, Genesis' rasterizer can
        find its offscreen renderer deleted first and raise from __del__. Idempotent; the scene is
        not stepped or rendered after."""
        visualizer = getattr(getattr(self, "scene", None), "visualizer", None)
        if visualizer is not None:
            visualizer.destroy()


class _StateFields:
    """Genesis' rigid-solver state as (N, ...) torch tensors, read once per step.

    Where Genesis can share its field memory with torch (`gs.use_zerocopy`: the CPU and CUDA
    backends), the tensors are views made once at build, so a step's read-out is a handful of
    index ops. Genesis' own getters copy each whole field and then index it, the Jacobian
    getter runs a kernel into a scratch field and copies that, and `get_contacts` gathers all
    eight contact fields to give the two the task reads. Every read copies out of the
    views (index_select / clone / gather), so what the task keeps never changes under it when
    the simulation steps on. The test against the public getters is in tests/envs/test_genesis_task.py.
    """

    def __init__(self, solver, be: "GenesisBackend") -> None:
        import genesis as gs
        from genesis.utils.misc import qd_to_torch

        st, col = solver.dyn_state, solver.collider.collider_state
        self._fields = {"dof_pos": st.dofs.pos, "dof_vel": st.dofs.vel, "link_pos": st.links.pos,
                        "link_quat": st.links.quat, "joint_anchor": st.joints.xanchor, "joint_axis": st.joints.xaxis,
                        "link_a": col.contact_data.link_a, "link_b": col.contact_data.link_b,
                        "sort": col.contact_sort_idx}
        self._to_torch = qd_to_torch
        self._views = ({k: qd_to_torch(v, transpose=True, copy=False) for k, v in self._fields.items()}
                       if gs.use_zerocopy else None)
        self._n_contacts = col.n_contacts
        dev, n = be.device, be.num_envs
        self.pose_links = torch.tensor(be._pose_links, device=dev)
        # The joints from the base to the gripper link, in JOINT_NAMES order (the sixth drives the jaw).
        self.arm_joints = torch.tensor([be.robot.get_joint(name).idx for name in JOINT_NAMES[:5]], device=dev)
        self._jaw_col = torch.zeros(n, 3, 1, device=dev)  # (N, 3, 1)
        self._slots: torch.Tensor | None = None  # (C,) contact slot numbers

    def get(self, key: str) -> torch.Tensor:
        """(N, ...) field `key`: the shared view, or a fresh copy where Genesis cannot share."""
        if self._views is not None:
            return self._views[key]
        return self._to_torch(self._fields[key], transpose=True)

    def pad_jaw(self, cols: torch.Tensor) -> torch.Tensor:
        """(N, 5, 3) per-joint vectors -> (N, 3, 6) Jacobian with a zero jaw column."""
        return torch.cat([cols.transpose(1, 2), self._jaw_col], 2)

    def contacts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Link ids of both sides of every contact slot in the collider's order, (N, C) each, and
        which slots are live this step, (N, C) bool (slot j < that env's contact count)."""
        order = self.get("sort").long()  # (N, C) slot of the j-th contact; stale (clamped) past the live ones
        order = order.clamp(0, order.shape[1] - 1)
        la = self.get("link_a").gather(1, order)  # (N, C)
        lb = self.get("link_b").gather(1, order)  # (N, C)
        n = self._to_torch(self._n_contacts, copy=False if self._views is not None else None)  # (N,)
        if self._slots is None:
            self._slots = torch.arange(la.shape[1], device=la.device)
        return la, lb, self._slots < n.reshape(-1, 1)
