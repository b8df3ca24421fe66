"""The batched env contract (envs.batched) on the real task: both backends, one render per step."""
from __future__ import annotations

import pytest
import torch
from test_native_fakes import check_batched_contract

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
