"""Predicates, hold count, success and bad actions, on a fake batched backend (no physics)."""
from __future__ import annotations

import pytest
import torch

from envs.backend import PhysState, ResetState
from envs.config import ConfigError, TaskConfig
from envs.kinematics import Kinematics
from envs.task import LiftTask


class FakeBackend:
    """Physics state the test writes directly: exercises the task logic for N envs."""

    device = torch.device("cpu")
    supports = frozenset({"cube_xy", "joint_noise"})

    def __init__(self, n: int) -> None:
        self.num_envs = n
        self.joint_low = torch.full((6,), -3.0)
        self.joint_high = torch.full((6,), 3.0)
        self.state = PhysState(
            qpos=torch.zeros(n, 6), qvel=torch.zeros(n, 6), tcp_pos=torch.tensor([[0.25, 0.0, 0.1]]).repeat(n, 1),
            gripper_quat=torch.tensor([[0.0, 1.0, 0.0, 0.0]]).repeat(n, 1),
            gripper_rot=torch.diag(torch.tensor([1.0, -1.0, -1.0])).repeat(n, 1, 1), moving_jaw_pos=torch.zeros(n, 3),
            cube_pos=torch.tensor([[0.25, 0.0, 0.015]]).repeat(n, 1), cube_quat=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
            contact_fixed=torch.zeros(n, dtype=torch.bool), contact_moving=torch.zeros(n, dtype=torch.bool),
            jac_pos=torch.eye(3, 6).repeat(n, 1, 1), jac_rot=torch.zeros(n, 3, 6))
        self.steps = 0
        self.last_target = None

    def set_state(self, env_ids, s: ResetState) -> None:
        self.state.cube_pos[env_ids] = s.cube_pos

    def set_qpos_kinematic(self, env_ids, qpos) -> None:
        pass

    def kinematics(self, env_ids, qpos) -> Kinematics:
        s = self.state
        return Kinematics(tcp_pos=s.tcp_pos[env_ids], gripper_rot=s.gripper_rot[env_ids],
                          jac_pos=s.jac_pos[env_ids], jac_rot=s.jac_rot[env_ids])

    def step(self, q_target, n_substeps) -> None:
        assert torch.isfinite(q_target).all()
        self.last_target = q_target
        self.steps += 1

    def read(self) -> PhysState:
        return PhysState(**{k: v.clone() for k, v in self.state.__dict__.items()})

    def render(self):
        return torch.zeros(self.num_envs, 8, 8, 3, dtype=torch.uint8)

    def close(self) -> None:
        pass


def make(n=3, **kw):
    be = FakeBackend(n)
    task = LiftTask(be, TaskConfig(pixels=False, **kw), seed=0)
    task.reset()
    return be, task


def grasp(be, envs, z):
    be.state.qpos[envs, 5] = 0.1
    be.state.contact_fixed[envs] = True
    be.state.contact_moving[envs] = True
    be.state.cube_pos[envs, 2] = z


def test_grasp_needs_closed_and_both_contacts():
    be, task = make(4)
    be.state.qpos[:, 5] = torch.tensor([0.1, 0.1, 0.1, 0.5])
    be.state.contact_fixed[:] = torch.tensor([True, True, False, True])
    be.state.contact_moving[:] = torch.tensor([True, False, True, True])
    _, _, _, info = task.step(torch.zeros(4, 4))
    assert info["is_grasping"].tolist() == [True, False, False, False]


def test_hold_count_success_and_termination_per_env():
    be, task = make(3, hold_steps=3)
    grasp(be, [0, 1], 0.09)  # env 0 and 1 lifted; env 2 idle
    for k in range(1, 4):
        be.state.cube_pos[1, 2] = 0.07 if k == 2 else 0.09  # env 1 dips below H at step 2
        _, term, trunc, info = task.step(torch.zeros(3, 4))
    assert info["hold_count"].tolist() == [3, 1, 0]
    assert info["is_success"].tolist() == [True, False, False]
    assert term.tolist() == [True, False, False]
    assert info["task_success"].dtype == torch.float32 and info["task_success"].tolist() == [1.0, 0.0, 0.0]
    assert not trunc.any()


def test_truncation_at_episode_length_and_partial_reset_with_mask():
    be, task = make(2, episode_length=3, hold_steps=1)
    for _ in range(3):
        _, _, trunc, _ = task.step(torch.zeros(2, 4))
    assert trunc.all()
    task.reset(torch.tensor([True, False]))
    assert task.steps.tolist() == [0, 3]
    assert task.reset_info()["steps_left"].tolist() == [3.0, 0.0]  # what v20 pays at success


def test_info_has_every_term_and_they_sum_to_reward():
    be, task = make(2)
    grasp(be, [0], 0.05)
    r, _, _, info = task.step(torch.zeros(2, 4))
    terms = [k for k in info if k.startswith("reward/")]
    assert {t[len("reward/"):] for t in terms} == set(task.reward_fn.terms)
    assert torch.allclose(sum(info[t] for t in terms), r)
    for key in ("cube_pos", "cube_z", "gripper_pos", "moving_finger_pos", "gripper_to_cube", "gripper_state",
                "is_grasping", "is_lifted", "hold_count", "is_success", "task_success"):
        assert info[key].shape[0] == 2, key


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_action_rejected_before_simulator(bad):
    be, task = make(2)
    a = torch.zeros(2, 4)
    a[1, 2] = bad
    with pytest.raises(ValueError, match=r"NaN/inf for env\(s\) \[1\]"):
        task.step(a)
    assert be.steps == 0


def test_wrong_action_shape_rejected():
    be, task = make(2)
    with pytest.raises(ValueError, match=r"expected \(2, 4\)"):
        task.step(torch.zeros(2, 3))
    assert be.steps == 0


def test_out_of_range_actions_are_clipped():
    be, task = make(1)
    _, _, _, info = task.step(torch.tensor([[5.0, -5.0, 0.0, 3.0]]))
    assert info["action"].tolist() == [[1.0, -1.0, 0.0, 1.0]]


def test_sim_fault_truncates_only_that_env_with_zero_reward():
    be, task = make(3)
    be.state.qpos[1, 0] = float("nan")
    r, term, trunc, info = task.step(torch.zeros(3, 4))
    assert info["sim_fault"].tolist() == [False, True, False]
    assert trunc.tolist() == [False, True, False] and r[1] == 0.0
    assert task.fault_count == 1
    assert torch.isfinite(task.low_dim()).all()


def test_unsupported_randomisation_is_refused_by_name():
    with pytest.raises(ConfigError, match="cube_size"):
        LiftTask(FakeBackend(1), TaskConfig(randomization={"cube_size": True}))


def test_each_env_uses_its_own_jacobian():
    """The IK step of env i depends on env i's Jacobian only (task.md: not env 0's)."""
    be, task = make(2, keep_gripper_vertical=False)
    be.state.jac_pos[1] = 2.0 * torch.eye(3, 6)  # env 1 moves twice as far per radian
    task.q_cmd.zero_()
    task.state = be.read()  # the task acts on the state read after the last step
    task.tcp_target[:] = be.state.tcp_pos
    task.step(torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0]]))
    d0, d1 = float(be.last_target[0, 0]), float(be.last_target[1, 0])
    assert d0 == pytest.approx(0.02, rel=0.05)  # 2 cm of TCP motion: 0.02 rad at 1 m/rad
    assert d1 == pytest.approx(0.01, rel=0.05)  # 2 m/rad: half the joint motion


def test_joint_pos_actions_are_absolute_targets_over_each_joints_range():
    """action_mode=joint_pos: -1, 0 and 1 command the low end, the middle and the high end of
    every joint's range (-3..3 rad in the fake), whatever the state; the info reports them."""
    be, task = make(3, action_mode="joint_pos")
    a = torch.tensor([[-1.0] * 6, [0.0] * 6, [1.0, 0.5, -0.5, 0.25, 0.0, -1.0]])
    _, _, _, info = task.step(a)
    want = torch.tensor([[-3.0] * 6, [0.0] * 6, [3.0, 1.5, -1.5, 0.75, 0.0, -3.0]])
    torch.testing.assert_close(be.last_target, want)
    torch.testing.assert_close(info["joint_target"], want)
    assert info["action"].shape == (3, 6)


def test_joint_pos_wants_six_values_and_names_the_mode():
    be, task = make(2, action_mode="joint_pos")
    with pytest.raises(ValueError, match=r"expected \(2, 6\).*action_mode=joint_pos"):
        task.step(torch.zeros(2, 4))
    assert be.steps == 0


def test_joint_pos_non_finite_row_holds_its_command_in_a_batch():
    be, task = make(2, action_mode="joint_pos")
    before = task.reset_info()["joint_target"]
    a = torch.zeros(2, 6)
    a[0, 3] = float("nan")
    _, _, trunc, info = task.step(a, isolate_invalid=True)
    assert info["invalid_action"].tolist() == [True, False] and trunc.tolist() == [True, False]
    torch.testing.assert_close(be.last_target[0], before[0])
    torch.testing.assert_close(be.last_target[1], torch.zeros(6))


def test_an_unknown_action_mode_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"action_mode='joint_vel' is invalid: allowed one of ee_delta, joint_pos"):
        TaskConfig(action_mode="joint_vel")


def test_from_ee_delta_gives_the_joint_targets_an_ee_delta_step_sends():
    """The same ee_delta action, stepped directly in one task and converted with `from_ee_delta`
    in a joint_pos twin, sends the same joint targets."""
    be_e, ee = make(2, keep_gripper_vertical=False)
    be_j, jp = make(2, keep_gripper_vertical=False, action_mode="joint_pos")
    a = torch.tensor([[0.5, -0.2, 0.1, 1.0], [-1.0, 0.3, 0.0, -1.0]])
    ee.step(a)
    jp.step(jp.from_ee_delta(a))
    torch.testing.assert_close(be_j.last_target, be_e.last_target, atol=1e-5, rtol=0)
