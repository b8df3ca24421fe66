"""The batched env contract (envs.batched) on the real task: both backends, one render per step."""
from __future__ import annotations

import pytest
import torch
from tests.fakes import check_batched_contract

from envs.batched import BatchedLiftEnv
from envs.config import make_task_config
from envs.lift_env import make_mujoco_backend
from envs.task import LiftTask

SHORT = dict(curriculum_stage=3, episode_length=4, hold_steps=2, image_size=32)


def mujoco_env(n: int, seed: int, **kw) -> BatchedLiftEnv:
    cfg = make_task_config(**{**SHORT, **kw})
    return BatchedLiftEnv(LiftTask(make_mujoco_backend(cfg, n), cfg, seed), frame_stack=2)


def count_renders(env: BatchedLiftEnv) -> list[int]:
    """Wraps the backend's camera call: the returned list counts batch renders."""
    calls, render = [0], env.task.backend.render

    def counted(camera: str = "wrist") -> torch.Tensor:
        calls[0] += 1
        return render(camera)

    env.task.backend.render = counted
    return calls


def test_mujoco_batch_follows_the_contract_with_one_render_per_step() -> None:
    env = mujoco_env(2, seed=5, pixels=True)
    calls = count_renders(env)
    ended = check_batched_contract(env, 11, lambda t: torch.full((2, 4), 0.3))
    assert ended >= 4                          # 4-step episodes: every env ended twice, reset steps included
    assert calls[0] == 1 + 11                  # the reset, then one per step
    env.close()


def test_env_i_of_a_mujoco_batch_is_a_single_env_seeded_seed_plus_i() -> None:
    batch, single = mujoco_env(2, seed=7, pixels=True), mujoco_env(1, seed=8, pixels=True)
    obs_b, _ = batch.reset(seed=7)
    obs_s, _ = single.reset(seed=8)
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):  # through an episode end and the reset step after it
        assert torch.equal(obs_b["rgb_wrist"][1], obs_s["rgb_wrist"][0])
        assert torch.allclose(obs_b["low_dim_state"][1], obs_s["low_dim_state"][0], atol=1e-5)
        a = torch.rand(2, 4, generator=gen) * 2 - 1
        sb, ss = batch.step(a), single.step(a[1:])
        assert bool(sb.reset[1] == ss.reset[0]) and bool(sb.done[1] == ss.done[0])
        obs_b, obs_s = sb.obs, ss.obs
    batch.close()
    single.close()


def test_a_non_finite_action_truncates_only_its_env() -> None:
    env = mujoco_env(2, seed=1, pixels=False)
    env.reset(seed=1)
    s = env.step(torch.tensor([[float("nan"), 0, 0, 0], [0.1, 0, 0, 0]]))
    assert s.truncated.tolist() == [True, False] and s.fault.tolist() == [True, False]
    s = env.step(torch.zeros(2, 4))
    assert s.reset.tolist() == [True, False] and bool(torch.isfinite(s.obs["low_dim_state"]).all())
    env.close()


@pytest.mark.slow
def test_genesis_batch_follows_the_contract_with_one_render_per_step() -> None:
    from envs.genesis_env import make_genesis_backend

    cfg = make_task_config(**SHORT, pixels=True)
    env = BatchedLiftEnv(LiftTask(make_genesis_backend(cfg, 3), cfg, 0), frame_stack=2)
    calls = count_renders(env)
    assert check_batched_contract(env, 9, lambda t: torch.full((3, 4), -0.2)) >= 6
    assert calls[0] == 1 + 9
    env.close()


def contacts_by_loop(data) -> tuple[bool, bool]:
    """The cube touches the fixed jaw, the moving jaw: one contact at a time (the oracle)."""
    m_ids = {"fixed": "fixed_jaw_pad", "moving": "moving_jaw_pad"}
    fixed = moving = False
    for i in range(data.ncon):
        g1, g2 = (data.model.geom(int(g)).name for g in data.contact.geom[i])
        if "cube" in (g1, g2):
            other = g2 if g1 == "cube" else g1
            fixed |= other == m_ids["fixed"]
            moving |= other == m_ids["moving"]
    return fixed, moving


def test_a_mujoco_batch_reads_bit_for_bit_what_single_backends_read() -> None:
    """Every field of a batch of 3 equals three single backends given the same states and targets, exactly:
    the batched copies move rows, nothing is computed differently or taken from another env."""
    from dataclasses import fields, replace

    from envs.backend import ResetState

    rnd = {"cube_size": True, "cube_friction": True, "camera_jitter": True, "light": True}
    cfg = make_task_config(**{**SHORT, "curriculum_stage": 1, "randomization": rnd})
    task = LiftTask(make_mujoco_backend(cfg, 3), cfg, 4)
    batch = task.backend
    singles = [make_mujoco_backend(cfg, 1) for _ in range(3)]
    task.reset()  # cube between the jaws (stage 1), each env with its own cube and model edits
    ids = torch.arange(3)
    g = torch.Generator().manual_seed(0)
    state = ResetState(qpos=task.q_cmd.clone(), cube_pos=batch.read().cube_pos, cube_quat=batch.read().cube_quat,
                       cube_half_size=task.cube_half.clone(), cube_friction=torch.rand(3, generator=g) + 0.5,
                       cube_rgba=torch.rand(3, 4, generator=g), camera_offset=torch.rand(3, 6, generator=g) * 0.01,
                       light_dir=torch.tensor([[0.0, 0.0, -1.0]] * 3), light_intensity=torch.rand(3, generator=g))
    batch.set_state(ids, state)
    for i, single in enumerate(singles):
        single.set_state(torch.arange(1), replace(state, **{f.name: getattr(state, f.name)[i:i + 1]
                                                           for f in fields(state)}))
    touched = 0
    for t in range(12):
        q = task.q_cmd + 0.05 * torch.randn(3, 6, generator=g)
        q[:, 5] = -0.2  # close the jaws on the cube
        batch.step(q, 10)
        for i, single in enumerate(singles):
            single.step(q[i:i + 1], 10)
        s = batch.read()
        for i, single in enumerate(singles):
            one = single.read()
            for f in fields(s):
                assert torch.equal(getattr(s, f.name)[i:i + 1], getattr(one, f.name)), (t, i, f.name)
            expect = contacts_by_loop(batch.datas[i])
            assert (bool(s.contact_fixed[i]), bool(s.contact_moving[i])) == expect, (t, i)
            touched += expect[0] + expect[1]
    assert touched > 0  # the contact read-out was exercised
    qk = task.q_cmd[[2, 0]] + 0.1
    kin = batch.kinematics(torch.tensor([2, 0]), qk)
    for j, i in enumerate((2, 0)):
        one = singles[i].kinematics(torch.arange(1), qk[j:j + 1])
        for f in fields(kin):
            assert torch.equal(getattr(kin, f.name)[j:j + 1], getattr(one, f.name)), (i, f.name)
    for b in (batch, *singles):
        b.close()


def test_mujoco_states_and_images_handed_out_never_change() -> None:
    """read() and render() fill fresh arrays: what a step returned (kept in info, replay, frame stacks)
    stays as it was after later steps."""
    from dataclasses import fields

    cfg = make_task_config(**SHORT, pixels=True)
    task = LiftTask(make_mujoco_backend(cfg, 2), cfg, 0)
    task.reset()
    be = task.backend
    s, img = be.read(), be.render()
    kept = {f.name: getattr(s, f.name).clone() for f in fields(s)}
    kept_img = img.clone()
    be.step(task.q_cmd + 0.2, 10)
    s2, img2 = be.read(), be.render()
    assert not torch.equal(s2.qpos, s.qpos) and not torch.equal(img2, img)  # the state did move
    assert all(torch.equal(getattr(s, k), v) for k, v in kept.items()) and torch.equal(img, kept_img)
    be.close()
