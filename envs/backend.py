"""What a physics backend must provide to the task: physics state in and out, batched.

Backends know nothing of rewards, predicates or curricula: those live once in
``envs/task.py``. MuJoCo is N `MjData` stepped in turn (N = 1 for a single env); Genesis a batch of N
in one scene.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from envs.kinematics import Kinematics


@dataclass
class PhysState:
    """Physics state of all envs, torch, batch-first."""

    qpos: torch.Tensor  # (N, 6) joint positions, JOINT_NAMES order
    qvel: torch.Tensor  # (N, 6)
    tcp_pos: torch.Tensor  # (N, 3) tool-centre point between the jaws
    gripper_quat: torch.Tensor  # (N, 4) wxyz, gripper body orientation
    gripper_rot: torch.Tensor  # (N, 3, 3) the same orientation as a matrix (backends have it anyway)
    moving_jaw_pos: torch.Tensor  # (N, 3) moving jaw pad centre
    cube_pos: torch.Tensor  # (N, 3)
    cube_quat: torch.Tensor  # (N, 4) wxyz
    contact_fixed: torch.Tensor  # (N,) bool, cube touches the fixed jaw
    contact_moving: torch.Tensor  # (N,) bool, cube touches the moving jaw
    jac_pos: torch.Tensor  # (N, 3, 6) d tcp / d q (world frame)
    jac_rot: torch.Tensor  # (N, 3, 6) angular Jacobian of the gripper body


@dataclass
class ResetState:
    """Initial state for the envs being reset (k of them)."""

    qpos: torch.Tensor  # (k, 6)
    cube_pos: torch.Tensor  # (k, 3)
    cube_quat: torch.Tensor  # (k, 4) wxyz
    cube_half_size: torch.Tensor  # (k,)
    cube_friction: torch.Tensor  # (k,)
    cube_rgba: torch.Tensor  # (k, 4)
    camera_offset: torch.Tensor  # (k, 6) position (3) and rotation-vector (3) jitter
    light_dir: torch.Tensor  # (k, 3) unit vector
    light_intensity: torch.Tensor  # (k,)


class Backend(Protocol):
    name: str  # "Genesis" or "MuJoCo", as configs and errors name the backend
    num_envs: int
    device: torch.device
    joint_low: torch.Tensor  # (6,)
    joint_high: torch.Tensor  # (6,)
    supports: frozenset[str]  # randomisations this backend can apply per env

    def set_state(self, env_ids: torch.Tensor, state: ResetState) -> None:
        """Teleport envs `env_ids` (k,) to `state`, velocities zero, targets = qpos."""

    def set_qpos_kinematic(self, env_ids: torch.Tensor, qpos: torch.Tensor) -> None:
        """Set arm joints (k, 6) and update kinematics only (no physics step)."""

    def kinematics(self, env_ids: torch.Tensor, qpos: torch.Tensor) -> "Kinematics":
        """TCP pose and Jacobians of envs `env_ids` (k,) at joints `qpos` (k, 6), for reset-time IK."""

    def step(self, q_target: torch.Tensor, n_substeps: int) -> None:
        """Hold joint position targets (N, 6) for `n_substeps` physics steps."""

    def read(self) -> PhysState: ...

    def render(self, camera: str = "wrist") -> torch.Tensor:
        """One camera's images of all envs (envs.config.CAMERAS), (N, H, W, 3) uint8."""

    def render_scene(self, env: int = 0) -> "object":
        """A third-person HxWx3 uint8 NumPy frame of one env, for videos."""

    def close(self) -> None: ...
