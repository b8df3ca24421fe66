"""Genesis backend: the scripted expert succeeds in a batch, and both backends agree."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from envs.backend import ResetState
from envs.batched import BatchedLiftEnv
from envs.config import make_task_config
from envs.expert import ScriptedExpert, batch_info
from envs.genesis_env import make_genesis_backend
from envs.scene import CUBE_RGBA
from envs.task import LiftTask

pytestmark = pytest.mark.slow
EPISODES = 20


def batched_expert(stage: int, n: int = EPISODES, seed: int = 100, compile: bool = False) -> torch.Tensor:
    """Run n expert episodes at once, one per env of a single Genesis scene; (n,) success."""
    cfg = make_task_config(curriculum_stage=stage, pixels=False, compile=compile)
    task = LiftTask(make_genesis_backend(cfg, n, "cpu"), cfg, seed)
    task.reset()
    expert = ScriptedExpert(n, cfg.action_scale, cfg.lift_height, cfg.gripper_closed_below)
    info = task.reset_info()
    expert.reset(info)
    done = torch.zeros(n, dtype=torch.bool)
    success = torch.zeros(n, dtype=torch.bool)
    for _ in range(cfg.episode_length):
        _, term, trunc, info = task.step(expert.act(info).to(task.device))
        success |= (term & ~done).cpu()
        done |= (term | trunc).cpu()
        if done.all():
            break
    return success


@pytest.mark.parametrize("stage", [0, 2, 3, 4])
def test_expert_succeeds_in_a_genesis_batch(stage):
    success = batched_expert(stage)
    assert success.float().mean() >= 0.9, success.tolist()


def test_a_compiled_task_steps_as_the_eager_one():
    """task.compile=true: from the same reset and actions, the same observations, rewards and flags
    as the eager task on the first steps (to float rounding: the physics amplifies it later), a
    non-finite action isolated in its env as eagerly, and the scripted expert still lifts."""
    def env(compile: bool) -> BatchedLiftEnv:
        cfg = make_task_config(curriculum_stage=3, pixels=False, compile=compile)
        return BatchedLiftEnv(LiftTask(make_genesis_backend(cfg, 4, "cpu"), cfg, 0), frame_stack=2)

    eager, compiled = env(False), env(True)
    actions = torch.rand(4, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (T, N, 4)
    actions[3, 1] = float("nan")
    for e in (eager, compiled):
        e.reset(seed=5)
    for t, a in enumerate(actions):
        se, sc = eager.step(a), compiled.step(a)
        torch.testing.assert_close(sc.obs["low_dim_state"], se.obs["low_dim_state"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(sc.reward, se.reward, atol=1e-4, rtol=1e-4)
        for flag in ("terminated", "truncated", "fault"):
            assert torch.equal(getattr(sc, flag), getattr(se, flag)), (t, flag)
        assert torch.equal(sc.info["is_grasping"], se.info["is_grasping"]), t
    assert sc.truncated.tolist() == [False, True, False, False] and sc.info["invalid_action"][1]
    assert compiled.task.invalid_action_count == eager.task.invalid_action_count == 1
    assert batched_expert(3, n=8, compile=True).float().mean() >= 0.85


@pytest.mark.parametrize("stage", [1, 2])
def test_a_grasped_start_reports_the_grasp_at_reset_on_both_backends(stage):
    """Stages 1 and 2 start with the cube between the pads: the reset info says it is grasped
    (on Genesis the contacts are detected at the reset pose, not left from the last step), and
    holding the jaws closed keeps it so."""
    for env_id in ("LiftCube-MuJoCo-v0", "LiftCube-Genesis-v0"):
        env = gym.make(env_id, curriculum_stage=stage, pixels=False)
        for seed in range(2):
            _, info = env.reset(seed=seed)
            assert bool(info["is_grasping"]), (env_id, seed)
            _, _, _, _, info = env.step(np.array([0.0, 0.0, 0.0, -1.0], np.float32))
            assert bool(info["is_grasping"]), (env_id, seed)
        env.close()


def test_backends_agree_on_predicates_for_the_same_start_and_actions():
    """Replay the MuJoCo expert's actions open-loop in Genesis from the same initial state."""
    mj = gym.make("LiftCube-MuJoCo-v0", curriculum_stage=3, pixels=False)
    gn = gym.make("LiftCube-Genesis-v0", curriculum_stage=3, pixels=False)
    agree, total, both_success = 0, 0, 0
    for seed in range(3):
        _, im = mj.reset(seed=seed)
        _, ig = gn.reset(seed=seed)
        np.testing.assert_allclose(im["gripper_pos"], ig["gripper_pos"], atol=1e-4)
        np.testing.assert_allclose(im["cube_pos"], ig["cube_pos"], atol=1e-4)
        expert = ScriptedExpert(1)
        expert.reset(batch_info(im))
        dm = dg = False
        for _ in range(200):
            a = expert.act(batch_info(im))[0].numpy()  # open loop for Genesis: MuJoCo's expert acts
            if not dm:
                _, _, tm, trm, im = mj.step(a)
                dm = tm or trm
            if not dg:
                _, _, tg, trg, ig = gn.step(a)
                dg = tg or trg
            if not (dm or dg):
                for key in ("is_grasping", "is_lifted"):
                    agree += int(bool(im[key]) == bool(ig[key]))
                    total += 1
            if dm and dg:
                break
        both_success += int(bool(im["is_success"]) and bool(ig["is_success"]))
    assert agree / total >= 0.9, agree / total
    assert both_success >= 2


def _assert_read_matches_getters(be) -> None:
    """`read()` (views on Genesis' state fields) against Genesis' public getters."""
    s, n = be.read(), be.num_envs
    assert torch.equal(s.qpos, be.robot.get_dofs_position(be.dofs).reshape(n, 6))
    assert torch.equal(s.qvel, be.robot.get_dofs_velocity(be.dofs).reshape(n, 6))
    assert torch.equal(s.cube_pos, be.cube.get_pos().reshape(n, 3))
    assert torch.equal(s.cube_quat, be.cube.get_quat().reshape(n, 4))
    assert torch.equal(s.gripper_quat, be.grip.get_quat().reshape(n, 4))
    jac = be.robot.get_jacobian(be.grip, local_point=None).reshape(n, 6, -1)[:, :, :6]  # (N, 6, 6) at the link origin
    r = (s.tcp_pos - be.grip.get_pos().reshape(n, 3)).unsqueeze(-1).expand(-1, 3, 6)  # origin -> TCP
    torch.testing.assert_close(s.jac_rot, jac[:, 3:], atol=1e-6, rtol=0)
    torch.testing.assert_close(s.jac_pos, jac[:, :3] + torch.linalg.cross(jac[:, 3:], r, dim=1), atol=1e-6, rtol=0)


def test_fast_contact_and_kinematics_reads_match_genesis_own_queries():
    """The backend's shortcuts (state read from views on Genesis' fields, padded contact buffers,
    torch FK for reset IK) against the public Genesis queries they replace, in a batch where envs
    grasp at different times."""
    n = 4
    cfg = make_task_config(curriculum_stage=3, pixels=False)
    task = LiftTask(make_genesis_backend(cfg, n, "cpu"), cfg, 7)
    be = task.backend
    task.reset()
    expert = ScriptedExpert(n, cfg.action_scale, cfg.lift_height, cfg.gripper_closed_below)
    info = task.reset_info()
    expert.reset(info)
    seen = torch.zeros(n, 2, dtype=torch.bool)
    differ = 0
    gen = torch.Generator().manual_seed(0)
    for t in range(160):
        a = expert.act(info)
        late = torch.arange(n) * 12 > t  # env i wanders randomly for 12 i steps: grasps at different times
        a[late] = torch.rand(int(late.sum()), 4, generator=gen) * 0.6 - 0.3
        held = be.read()  # what a caller keeps across a step must not move with the simulation
        kept = {k: v.clone() for k, v in vars(held).items()}
        _, _, _, info = task.step(a)
        assert all(torch.equal(getattr(held, k), v) for k, v in kept.items()), t
        c = be.robot.get_contacts(with_entity=be.cube, is_padded=True)
        la, lb, valid = (torch.as_tensor(c[k]).reshape(n, -1) for k in ("link_a", "link_b", "valid_mask"))
        ref = torch.stack([(valid.bool() & ((la == link.idx) | (lb == link.idx))).any(1)
                           for link in (be.grip, be.jaw)], 1)  # (N, 2)
        now = be.read()  # the backend's contact flags, read from its padded contact buffers
        fast = torch.stack([now.contact_fixed, now.contact_moving], 1)  # (N, 2)
        assert torch.equal(fast, ref), (t, fast, ref)
        _assert_read_matches_getters(be)
        seen |= fast
        differ += int((fast.all(1) != fast.all(1)[0]).any())
    assert seen.all(), seen  # every env touched the cube with both jaws at some point
    assert differ > 10  # and envs were in different contact states on many steps

    q = be.joint_low + (be.joint_high - be.joint_low) * torch.rand(n, 6, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(n)
    be.set_qpos_kinematic(ids, q)
    s, k = be.read(), be.kinematics(ids, q)
    for a, b in ((s.tcp_pos, k.tcp_pos), (s.gripper_rot, k.gripper_rot), (s.jac_pos, k.jac_pos),
                 (s.jac_rot, k.jac_rot)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_wrist_images_follow_resets_and_per_env_camera_jitter():
    """Pixels on Genesis: a reset env's first image shows its new state (not the last frame
    of its previous episode); two envs in the same state differ only through camera jitter."""
    rnd = {"cube_xy": False, "joint_noise": False, "camera_jitter": True, "camera_pos_range": 0.01,
           "camera_rot_range": 0.05}
    cfg = make_task_config(curriculum_stage=3, pixels=True, image_size=32, randomization=rnd)
    task = LiftTask(make_genesis_backend(cfg, 2, "cpu"), cfg, 3)
    be = task.backend
    task.reset()
    start = be.render().float()  # (2, 32, 32, 3)
    assert (start[0] - start[1]).abs().mean() > 1.0  # different camera offsets, different images
    torch.testing.assert_close(task.state.tcp_pos[0], task.state.tcp_pos[1])  # the scenes are the same

    for _ in range(25):
        task.step(torch.tensor([[1.0, 0.0, 1.0, 1.0]] * 2))  # both arms move away and up
    moved = be.render().float()
    task.reset(torch.tensor([True, False]))
    after = be.render().float()
    assert (after[0] - moved[0]).abs().mean() > 5.0  # env 0 shows its reset pose ...
    assert (after[1] - moved[1]).abs().max() == 0  # ... env 1 was not reset

    s0 = [0, 0]  # both envs in env 0's state
    st = ResetState(
        qpos=task.state.qpos[s0], cube_pos=task.state.cube_pos[s0], cube_quat=task.state.cube_quat[s0],
        cube_half_size=torch.full((2,), cfg.cube_half_size), cube_friction=torch.full((2,), cfg.cube_friction),
        cube_rgba=torch.tensor([CUBE_RGBA] * 2), light_dir=torch.tensor([[0.0, 0.0, -1.0]] * 2),
        light_intensity=torch.full((2,), 0.8),
        camera_offset=torch.zeros(2, 6))  # no jitter: the model's camera in both envs
    be.set_state(torch.arange(2), st)
    img = be.render().float()
    assert (img[0] - img[1]).abs().max() == 0


def test_backends_agree_in_joint_pos_mode():
    """action_mode=joint_pos: the MuJoCo expert's joint targets, replayed open-loop in Genesis from
    the same start, grasp and lift there too (both backends read the same joint ranges)."""
    from envs.lift_env import make_mujoco_backend

    cfg = make_task_config(curriculum_stage=3, pixels=False, action_mode="joint_pos")
    mj = LiftTask(make_mujoco_backend(cfg, 1), cfg, 0)
    gn = LiftTask(make_genesis_backend(cfg, 1, "cpu"), cfg, 0)
    torch.testing.assert_close(mj.joint_low, gn.joint_low.cpu(), atol=1e-5, rtol=0)
    torch.testing.assert_close(mj.joint_high, gn.joint_high.cpu(), atol=1e-5, rtol=0)
    agree, total, both_success = 0, 0, 0
    for seed in range(2):
        mj.seed(seed)
        gn.seed(seed)
        mj.reset()
        gn.reset()
        im, ig = mj.reset_info(), gn.reset_info()
        torch.testing.assert_close(im["cube_pos"], ig["cube_pos"].cpu(), atol=1e-4, rtol=0)
        expert = ScriptedExpert(1)
        expert.reset(im)
        dm = dg = False
        for _ in range(cfg.episode_length):
            a = mj.from_ee_delta(expert.act(im))  # (1, 6) joint targets in [-1, 1]
            assert a.shape == (1, 6)
            if not dm:
                _, tm, trm, im = mj.step(a)
                dm = bool(tm | trm)
            if not dg:
                _, tg, trg, ig = gn.step(a.to(gn.device))
                dg = bool(tg | trg)
            if not (dm or dg):
                for key in ("is_grasping", "is_lifted"):
                    agree += int(bool(im[key]) == bool(ig[key]))
                    total += 1
            if dm and dg:
                break
        both_success += int(bool(im["is_success"]) and bool(ig["is_success"]))
    mj.backend.close()
    gn.backend.close()
    assert agree / total >= 0.9, agree / total
    assert both_success == 2
