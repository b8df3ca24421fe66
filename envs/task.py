"""The lift task, defined once: resets, control, predicates, info and reward, batch-first.

Backends (``envs/mujoco_backend.py``, ``envs/genesis_backend.py``) only move physics state
in and out; everything the task *means* is computed here in torch on (N, ...) tensors, so
MuJoCo (a batch of one) and Genesis (a batch of N) share it unchanged. Partial resets take
a boolean mask; nothing on the step path loops over envs in Python.
"""
from __future__ import annotations

import logging

import torch
from gymnasium.error import ResetNeeded

import rewards
from envs.actions import ACTION_MEANING, joint_action, joint_targets
from envs.backend import Backend, PhysState
from envs.config import PRIVILEGED_KEY, TaskConfig, check_compile, check_randomization
from envs.geometry import approach_axis, quat_to_euler, yaw_quat
from envs.kinematics import Kinematics
from envs.starts import GRIPPER_OPEN, sample_reset

ARM = 4  # IK drives joints 0..3, or 0..4 with the wrist roll unlocked (the gripper, 5, separately)


class LiftTask:
    """Batched lift task on top of a physics backend."""

    def __init__(self, backend: Backend, cfg: TaskConfig, seed: int | None = None) -> None:
        self.backend, self.cfg = backend, cfg
        rnd = cfg.randomization
        check_randomization(rnd, type(backend).__name__, backend.supports)
        self.n = backend.num_envs
        self.device = backend.device
        self.reward_fn = rewards.get(cfg.reward_version, cfg.lift_height, cfg.gripper_closed_below)
        # One generator per env: env i of a batch samples exactly what a single env seeded
        # with seed + i samples, so N-env runs are reproducible env by env.
        self.gens = [torch.Generator(device="cpu") for _ in range(backend.num_envs)]
        self._ids: list[int] = []  # envs being reset (for the sampling helpers)
        self.seed(seed)
        n, dev = self.n, self.device
        self.hold_count = torch.zeros(n, dtype=torch.long, device=dev)
        self.prev_grasp = torch.zeros(n, dtype=torch.bool, device=dev)
        self.action_dim = cfg.action_dim  # 4 (ee_delta) or 6 (joint_pos)
        self.prev_action = torch.zeros(n, self.action_dim, device=dev)
        self.tcp_target = torch.zeros(n, 3, device=dev)
        self.roll_ref = torch.zeros(n, device=dev)
        self.q_cmd = torch.zeros(n, 6, device=dev)  # last joint position targets
        self.steps = torch.zeros(n, dtype=torch.long, device=dev)
        self.cube_half = torch.full((n,), float(cfg.cube_half_size), device=dev)  # (N,) per env's cube
        self.ended = torch.ones(n, dtype=torch.bool, device=dev)  # terminated or truncated, not reset since
        self._faults = torch.zeros((), dtype=torch.long, device=dev)  # env steps that faulted (no host sync per step)
        self._invalid_actions = torch.zeros((), dtype=torch.long, device=dev)  # env steps with a non-finite action
        # Per-episode sums of each weighted term and of the return: columns of one (N, T+1) tensor.
        self.sum_names = [*self.reward_fn.terms, "return"]
        self._reward_keys = [f"reward/{name}" for name in self.reward_fn.terms]  # info keys, made once
        self._episode_keys = [f"episode/{name}" for name in self.sum_names]
        self.episode_sums = torch.zeros(n, len(self.sum_names), device=dev)
        self.joint_low = backend.joint_low.to(dev)  # (6,)
        self.joint_high = backend.joint_high.to(dev)  # (6,)
        self.ws_low = torch.tensor(cfg.workspace_low, device=dev)
        self.ws_high = torch.tensor(cfg.workspace_high, device=dev)
        self.state: PhysState | None = None
        self._damping_eye: dict[int, torch.Tensor] = {}  # rows -> (R, R) lambda^2 I
        if cfg.compile:
            self.compile()

    def seed(self, seed: int | None) -> None:
        base = int(seed) if seed is not None else int(torch.seed() % (2**62))
        for i, g in enumerate(self.gens):
            g.manual_seed(base + i)

    def compile(self) -> None:
        """Hand `step` and `observe` to torch.compile (task.compile=true).

        A step is a few hundred small torch calls (read-out, IK, predicates, rewards, observation)
        around the physics; fused, they cost less (docs/benchmarks.md). The physics and camera
        calls stay eager (Genesis runs its own kernels), so each compiled step is the code before
        the physics call and the code after it. The first step compiles (cached on disk for later
        processes). Fused float arithmetic rounds differently from eager in the last bit,
        and the physics amplifies that over an episode: a compiled run is deterministic, but its
        trajectories are not the eager run's.
        """
        check_compile(True, self.backend.name)
        # On a CPU, Inductor's C++ wrapper replaces each compiled region's Python wrapper (which
        # allocates the outputs and checks input strides per call); on CUDA the default wrapper is kept.
        options = {"cpp_wrapper": True} if self.device.type == "cpu" else None
        inductor_log = logging.getLogger("torch._inductor.ir")
        if options and _no_c_shim_warning not in inductor_log.filters:
            inductor_log.addFilter(_no_c_shim_warning)  # the IK's linalg.solve has no C shim; the fallback is correct
        self._physics = torch.compiler.disable(self._physics)
        self._render = torch.compiler.disable(self._render)
        self.step = torch.compile(self.step, dynamic=False, options=options)
        self.observe = torch.compile(self.observe, dynamic=False, options=options)

    def _physics(self, q: torch.Tensor) -> None:
        self.backend.step(q, self.cfg.n_substeps)

    def _render(self, camera: str) -> torch.Tensor:
        return self.backend.render(camera)

    # ------------------------------------------------------------------ sampling helpers
    def _uniform(self, k: int, lo: float, hi: float, *shape: int) -> torch.Tensor:
        """(k, *shape) uniform draws, row j from the generator of the j-th env being reset."""
        assert k == len(self._ids)
        u = torch.stack([torch.rand(shape, generator=self.gens[i]) for i in self._ids]) if k else torch.zeros(0, *shape)
        return (lo + (hi - lo) * u).to(self.device)

    # ------------------------------------------------------------------ IK
    def _damping(self, rows: int) -> torch.Tensor:
        """(R, R) lambda^2 I of the damped least squares, made once per row count."""
        if rows not in self._damping_eye:
            self._damping_eye[rows] = self.cfg.ik_damping ** 2 * torch.eye(rows, device=self.device)
        return self._damping_eye[rows]

    def _ik_delta(self, s: PhysState | Kinematics, err: torch.Tensor, joints: int,
                  dq_ahead: torch.Tensor | None = None) -> torch.Tensor:
        """Damped-least-squares step (N, J) of the first J = `joints` joints for TCP error err (N, 3).

        Each env uses its own Jacobian.
        With keep_gripper_vertical, a second task row turns the approach axis downwards.
        `dq_ahead` (N, 6): how far the commanded joints are ahead of the measured ones; the
        errors are then taken at the commanded configuration (linearised), which keeps the
        command smooth while the servos lag and stops it winding up in contact.
        """
        jp = s.jac_pos[:, :, :joints]  # (N, 3, J)
        jr = s.jac_rot[:, :, :joints]  # (N, 3, J)
        if dq_ahead is not None:
            err = err - (s.jac_pos @ dq_ahead.unsqueeze(-1)).squeeze(-1)
        rows, e = [jp], [err]
        if self.cfg.keep_gripper_vertical:
            approach = -s.gripper_rot[:, :, 2]  # (N, 3) gripper -z
            if dq_ahead is not None:
                omega = (s.jac_rot @ dq_ahead.unsqueeze(-1)).squeeze(-1)  # (N, 3)
                approach = approach + torch.linalg.cross(omega, approach)
            down = approach_axis(s.tcp_pos)
            w = 0.1  # metres per radian: trades TCP position against orientation
            rows.append(w * jr)
            e.append(w * torch.linalg.cross(approach, down))
        jac = torch.cat(rows, 1)  # (N, R, J)
        ev = torch.cat(e, 1).unsqueeze(-1)  # (N, R, 1)
        jjt = torch.baddbmm(self._damping(jac.shape[1]), jac, jac.transpose(1, 2))  # J J^T + lambda^2 I
        return (jac.transpose(1, 2) @ torch.linalg.solve(jjt, ev)).squeeze(-1)  # (N, J)

    def _reset_ik(self, ids: torch.Tensor, q: torch.Tensor, goal: torch.Tensor, iters: int = 60) -> torch.Tensor:
        """Kinematic IK for the envs `ids` (no physics is stepped, other envs untouched)."""
        lo, hi = self.joint_low, self.joint_high
        for _ in range(iters):
            kin = self.backend.kinematics(ids, q)
            q = q.clone()
            q[:, :ARM] += self._ik_delta(kin, goal - kin.tcp_pos, ARM)
            q = torch.maximum(torch.minimum(q, hi), lo)
        return q

    # ------------------------------------------------------------------ reset / step
    def reset(self, mask: torch.Tensor | None = None) -> PhysState:
        """Reset the envs where mask (N,) is True (all if None)."""
        mask = torch.ones(self.n, dtype=torch.bool, device=self.device) if mask is None else mask.to(self.device)
        ids = torch.nonzero(mask).squeeze(1)
        k = len(ids)
        self._ids = ids.tolist()
        if k == 0:
            return self.state if self.state is not None else self.backend.read()
        st, goal, grip_q = sample_reset(self.cfg, self._uniform, k, self.device, self.ws_low, self.ws_high)
        self.backend.set_state(ids, st)
        q = self._reset_ik(ids, st.qpos, goal)
        q[:, 5] = grip_q
        if self.cfg.randomization.joint_noise and self.cfg.curriculum_stage not in (1, 2):
            r = self.cfg.randomization.joint_noise_range
            q[:, :5] += self._uniform(k, -r, r, 5)
        st.qpos = q
        if self.cfg.curriculum_stage in (1, 2):
            # Put the cube exactly between the pads, faces parallel to them.
            self.backend.set_qpos_kinematic(ids, q)
            s = self.backend.read()
            rot = s.gripper_rot[ids]  # (k, 3, 3)
            jaw_x = rot[:, :, 0]  # closing direction
            # jaw_x points from the fixed to the moving jaw; the fixed pad's face is 15 mm
            # from the TCP. 0.5 mm of overlap makes both contacts active from the first step.
            st.cube_pos = s.tcp_pos[ids] + jaw_x * (st.cube_half_size - 0.015 - 0.0005)[:, None]
            if self.cfg.curriculum_stage == 1:  # in the air: faces parallel to the pads
                st.cube_quat = s.gripper_quat[ids].clone()
            else:  # on the table: flat, turned to the jaws
                st.cube_quat = yaw_quat(torch.atan2(jaw_x[:, 1], jaw_x[:, 0]))
        self.backend.set_state(ids, st)
        s = self.backend.read()
        self.cube_half[ids] = st.cube_half_size.to(self.device, torch.float32)
        self.tcp_target[ids] = s.tcp_pos[ids]
        self.roll_ref[ids] = q[:, 4]
        self.q_cmd[ids] = q
        self.hold_count[ids] = 0
        self.steps[ids] = 0
        self.ended[ids] = False
        if self.cfg.action_mode == "joint_pos":  # holding still: the reset pose's own targets
            self.prev_action[ids] = joint_action(q, self.joint_low, self.joint_high)
        else:
            self.prev_action[ids] = 0.0
            self.prev_action[ids, 3] = -1.0 if self.cfg.curriculum_stage in (1, 2) else 1.0
        closed = s.qpos[ids, 5] < self.cfg.gripper_closed_below
        self.prev_grasp[ids] = closed & s.contact_fixed[ids] & s.contact_moving[ids]
        self.episode_sums = self.episode_sums.index_fill(0, ids, 0.0)  # out of place: info holds views
        self.state = s
        return s

    @property
    def invalid_action_count(self) -> int:
        """Env steps whose action was non-finite (isolated, see `step`), since the task was built."""
        return int(self._invalid_actions)

    @property
    def fault_count(self) -> int:
        """Env steps whose physics went non-finite (or whose action did), since the task was built."""
        return int(self._faults)

    def check_not_ended(self) -> None:
        """For single-env APIs: gymnasium's ResetNeeded when an ended episode is stepped again."""
        if bool(self.ended.any()):
            raise ResetNeeded(f"env(s) {torch.nonzero(self.ended).flatten().tolist()} ended (terminated or "
                              "truncated) and were not reset: call reset() before step()")

    def check_action(self, action: torch.Tensor) -> torch.Tensor:
        """Validate (N, A) actions; NaN/inf never reach the simulator."""
        if action.shape != (self.n, self.action_dim):
            raise ValueError(f"action has shape {tuple(action.shape)}: expected ({self.n}, {self.action_dim}) "
                             f"= (envs, {ACTION_MEANING[self.cfg.action_mode]}) in [-1, 1] "
                             f"(action_mode={self.cfg.action_mode})")
        bad = ~torch.isfinite(action).all(1)
        if bad.any():
            raise ValueError(f"action contains NaN/inf for env(s) {torch.nonzero(bad).flatten().tolist()}: "
                             f"{action[bad].tolist()}; allowed: finite values in [-1, 1]")
        return action.to(self.device, torch.float32).clamp(-1.0, 1.0)

    # ------------------------------------------------------------------ actions
    def _ik_targets(self, a: torch.Tensor) -> torch.Tensor:
        """ee_delta actions (N, 4) in [-1, 1] -> joint targets (N, 6) in rad, by the IK controller.

        Moves the commanded TCP point (`tcp_target`) by the action and solves from the current
        state and the previous command; what the ee_delta mode sends to the physics.
        """
        c = self.cfg
        s = self.state if self.state is not None else self.backend.read()
        self.tcp_target = torch.clamp(self.tcp_target + c.action_scale * a[:, :3], self.ws_low, self.ws_high)
        joints = ARM if c.lock_wrist_roll else ARM + 1
        # Resolved-rate IK on the commanded configuration (see _ik_delta).
        ahead = torch.nan_to_num(self.q_cmd - s.qpos)
        ahead[:, 5] = 0.0
        dq = self._ik_delta(s, self.tcp_target - s.tcp_pos, joints, ahead).clamp(-0.25, 0.25)
        q = self.q_cmd.clone()
        q[:, :joints] += dq
        q[:, :5] = torch.clamp(q[:, :5], s.qpos[:, :5] - 0.3, s.qpos[:, :5] + 0.3)
        if c.lock_wrist_roll:
            q[:, 4] = self.roll_ref
        lo, hi = self.joint_low, self.joint_high
        q[:, 5] = lo[5] + (GRIPPER_OPEN - lo[5]) * (a[:, 3] + 1.0) / 2.0
        return torch.clamp(q, lo, hi)

    def from_ee_delta(self, a: torch.Tensor) -> torch.Tensor:
        """The action in this task's action_mode that does what the ee_delta action `a` (N, 4) does
        now: `a` itself (ee_delta), or the IK controller's joint targets as a joint_pos action
        (N, 6). Call it once right before `step` (it moves the commanded TCP point, as an ee_delta
        step does), e.g. to let the scripted expert drive a joint_pos task."""
        if self.cfg.action_mode == "ee_delta":
            return a
        a = a.to(self.device, torch.float32).clamp(-1.0, 1.0)
        return joint_action(self._ik_targets(a), self.joint_low, self.joint_high)

    def step(self, action: torch.Tensor, isolate_invalid: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Apply (N, A) actions for one 20 ms control step: A = 4 in ee_delta mode (TCP motion
        through the IK controller), 6 in joint_pos mode (absolute joint targets, envs.actions).

        Returns reward (N,), terminated (N,), truncated (N,), info {key: (N, ...)}. Envs whose
        physics went non-finite are truncated with zero reward and flagged `sim_fault`. With
        `isolate_invalid` (a batch that must not stop for one env), a non-finite action row is
        treated the same way (that env holds still, is truncated and flagged `invalid_action`)
        instead of refusing the whole step. `ended` (N,) says which envs finished an episode and
        were not reset since: a batch may step on past them, a single env refuses
        (`check_not_ended`).
        """
        if isolate_invalid and action.shape == (self.n, self.action_dim):
            invalid = ~torch.isfinite(action).all(1).to(self.device)  # (N,)
            action = action.masked_fill(invalid[:, None].to(action.device), 0.0)
            self._invalid_actions = self._invalid_actions + invalid.sum()  # no host sync per step
            a = action.to(self.device, torch.float32).clamp(-1.0, 1.0)  # finite now: check_action's clamp
        else:
            invalid = torch.zeros(self.n, dtype=torch.bool, device=self.device)
            a = self.check_action(action)
        c = self.cfg
        if c.action_mode == "joint_pos":
            q = joint_targets(a, self.joint_low, self.joint_high)
            q = torch.where(invalid[:, None], self.q_cmd, q)  # an invalid row holds its last command
        else:
            q = self._ik_targets(a)
        self.q_cmd = q
        self._physics(q)
        s = self.backend.read()
        fault = ~torch.isfinite(torch.cat([s.qpos, s.cube_pos, s.qvel], 1)).all(1) | invalid  # (N,)
        self.state = s
        self.steps += 1
        info = self.evaluate(s, a)
        terms = self.reward_fn.weighted(info)  # (N, T) weighted terms
        step_vals = torch.where(fault[:, None], 0.0, torch.cat([terms, terms.sum(1, keepdim=True)], 1))  # (N, T+1)
        reward = step_vals[:, -1]
        # A new tensor each step: the per-term info columns below are views nobody mutates later.
        self.episode_sums = self.episode_sums + step_vals
        n_terms = terms.shape[1]
        info.update(zip(self._reward_keys, step_vals[:, :n_terms].unbind(1)))
        info.update(zip(self._episode_keys, self.episode_sums.unbind(1)))
        info["sim_fault"] = fault
        info["invalid_action"] = invalid
        self._faults = self._faults + fault.sum()
        terminated = info["is_success"] & ~fault
        truncated = (self.steps >= c.episode_length) | fault
        self.prev_grasp = info["is_grasping"] & ~fault
        self.prev_action = a
        self.ended = terminated | truncated
        return reward, terminated, truncated, info

    def evaluate(self, s: PhysState, action: torch.Tensor, update_hold: bool = True) -> dict[str, torch.Tensor]:
        """Predicates and the info dict (ManiSkill's evaluate()): every value is (N, ...).

        No value shares memory with task state that a later step or reset writes in place
        (`prev_action`, `hold_count`, `tcp_target`, ...): those are cloned, so an info handed
        out (a final_info, a logged step) keeps this step's values. The state read-outs
        (`s.cube_pos`, ...) are fresh tensors of this step's `backend.read()`.
        """
        c = self.cfg
        grip = s.qpos[:, 5]  # (N,)
        closed = grip < c.gripper_closed_below
        grasping = closed & s.contact_fixed & s.contact_moving
        cube_z = s.cube_pos[:, 2]
        lifted = grasping & (cube_z > c.lift_height)
        if update_hold:
            self.hold_count = torch.where(lifted, self.hold_count + 1, torch.zeros_like(self.hold_count))
        success = self.hold_count >= c.hold_steps
        return {
            "cube_pos": s.cube_pos, "cube_z": cube_z, "cube_half_size": self.cube_half.clone(),
            "gripper_pos": s.tcp_pos,
            "moving_finger_pos": s.moving_jaw_pos, "gripper_to_cube": s.cube_pos - s.tcp_pos,
            "gripper_state": grip, "is_closed": closed, "is_grasping": grasping,
            "prev_is_grasping": self.prev_grasp.clone(), "is_lifted": lifted,
            "hold_count": self.hold_count.clone(), "is_success": success,
            "task_success": success.to(torch.float32), "action": action.clone(),  # step() keeps it as prev_action
            "prev_action": self.prev_action.clone(), "tcp_target": self.tcp_target.clone(),
            "joint_target": self.q_cmd.clone(),  # (N, 6) rad, the joint targets this step sent
            "steps_left": (c.episode_length - self.steps).to(torch.float32),  # steps until truncation
        }

    def reset_info(self) -> dict[str, torch.Tensor]:
        """The info dict of the current state without advancing any counter (for reset())."""
        return self.evaluate(self.state, self.prev_action, update_hold=False)

    def low_dim(self, s: PhysState | None = None) -> torch.Tensor:
        """(N, 18) proprioception, or (N, 21) with the cube position in state-only mode."""
        s = s or self.state
        parts = [s.qpos, s.qvel, s.tcp_pos, quat_to_euler(s.gripper_quat)]
        if not self.cfg.pixels:
            parts.append(s.cube_pos)
        return _finite_cat(parts)

    def privileged(self, s: PhysState | None = None) -> torch.Tensor:
        """(N, 7) what a camera-free policy cannot know: cube position, cube minus TCP position and
        the cube's half size. Only critics and auxiliary losses read it; a deployed policy cannot."""
        s = s or self.state
        return _finite_cat([s.cube_pos, s.cube_pos - s.tcp_pos, self.cube_half[:, None]])

    def observe(self) -> dict[str, torch.Tensor]:
        """{'low_dim_state': (N, D) float32, 'rgb_<camera>': (N, 3, H, W) uint8 per camera if pixels
        (all zeros with blank_images), 'privileged_state': (N, 7) float32 if privileged_state}."""
        obs = {"low_dim_state": self.low_dim()}
        if self.cfg.privileged_state:
            obs[PRIVILEGED_KEY] = self.privileged()
        if self.cfg.pixels:
            size = self.cfg.image_size
            for cam in self.cfg.cameras:
                obs[f"rgb_{cam}"] = (torch.zeros(self.n, 3, size, size, dtype=torch.uint8, device=self.device)
                                     if self.cfg.blank_images else self._render(cam).permute(0, 3, 1, 2).contiguous())
        return obs


def _no_c_shim_warning(record: logging.LogRecord) -> bool:
    return "missing a c-shim implementation" not in record.getMessage()


def _finite_cat(parts: list[torch.Tensor]) -> torch.Tensor:
    """(N, sum D) float32 observation of (N, D_i) parts; a faulted sim's NaN/inf become 0."""
    return torch.nan_to_num(torch.cat(parts, 1).to(torch.float32), nan=0.0, posinf=0.0, neginf=0.0)
