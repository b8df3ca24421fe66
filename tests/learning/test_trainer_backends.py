"""Slow smoke test of the native engine on the real MuJoCo factory (skipped if it is absent)."""
from __future__ import annotations

from pathlib import Path

import pytest
from tests.fakes import tiny_cfg

from learning.snapshot import read_snapshot
from learning.trainer import NativeTrainer

factories = pytest.importorskip("factories")


@pytest.mark.slow
@pytest.mark.parametrize("pixels,agent", [(True, "drqv2"), (False, "sac")])
def test_native_engine_trains_on_mujoco_factory(tmp_path: Path, pixels: bool, agent: str) -> None:
    if not hasattr(factories, "MujocoLiftFactory"):
        pytest.skip("factories.MujocoLiftFactory not available")
    cfg = tiny_cfg(num_train_envs=1, num_train_frames=24, num_explore_steps=8, replay_size_before_train=8,
                   update_every_steps=4, eval_every_steps=24, num_eval_episodes=1, snapshot_every_n=24,
                   log_every=8, pixels=pixels, **{"agent.name": agent})
    cfg.env.task, cfg.env.episode_length = {"image_size": 32}, 12
    result = NativeTrainer(cfg, factories.MujocoLiftFactory(), tmp_path).train()
    assert result["frames"] == 24 and result["updates"] > 0 and result["episodes"] >= 1
    assert "eval/success_rate" in result and "eval/max_cube_z" in result
    _, payload = read_snapshot(tmp_path)
    assert payload["counters"]["frames"] == 24


@pytest.mark.slow
def test_native_engine_trains_on_genesis_with_tensors_end_to_end(tmp_path: Path) -> None:
    """The native engine trains on the batched contract: Genesis observations, rewards and flags
    stay tensors on the sim device; a short pixel run trains, evaluates and snapshots on them."""
    import torch

    cfg = tiny_cfg(num_train_envs=2, num_train_frames=24, num_explore_steps=8, replay_size_before_train=8,
                   update_every_steps=4, eval_every_steps=24, num_eval_episodes=1, snapshot_every_n=24,
                   log_every=8, pixels=True, **{"agent.name": "drqv2", "env.name": "genesis_lift",
                                               "env.factory": "factories.GenesisLiftFactory",
                                               "env.as_torch": "auto", "env.sim_device": "cpu",
                                               "env.renderer": "auto"})
    cfg.env.task, cfg.env.episode_length = {"image_size": 32}, 12
    env = factories.GenesisLiftFactory().make_batched_env(cfg)
    obs, _ = env.reset(seed=0)
    step = env.step(torch.zeros(2, 4))
    values = (*obs.values(), *step.obs.values(), step.reward, step.terminated, step.truncated, step.reset)
    assert all(isinstance(v, torch.Tensor) for v in values), [type(v) for v in values]
    env.close()
    result = NativeTrainer(cfg, factories.GenesisLiftFactory(), tmp_path).train()
    assert result["frames"] == 24 and result["updates"] > 0 and "eval/success_rate" in result


@pytest.mark.slow
def test_overlapping_env_steps_with_updates_gives_the_same_run(tmp_path: Path) -> None:
    """overlap_env_step only lets the env step and the updates run at once, and
    agent.parallel_target the TD target beside the critic's forward: the agent, the replay and
    the logged losses of a pixel run with both are bitwise those of the same run with neither
    (the env must not draw from the agent's RNG, nor the two update threads out of order)."""
    import torch

    if not hasattr(factories, "MujocoLiftFactory"):
        pytest.skip("factories.MujocoLiftFactory not available")
    runs = {}
    for overlap in (True, False):
        cfg = tiny_cfg(num_train_envs=1, num_train_frames=40, num_explore_steps=8, replay_size_before_train=8,
                       update_every_steps=2, snapshot_every_n=40, log_every=8, pixels=True,
                       overlap_env_step=overlap, **{"agent.name": "drqv2", "agent.parallel_target": overlap})
        cfg.env.task, cfg.env.episode_length = {"image_size": 32}, 12
        result = NativeTrainer(cfg, factories.MujocoLiftFactory(), tmp_path / str(overlap)).train()
        runs[overlap] = (result, read_snapshot(tmp_path / str(overlap))[1])
    (fast, a), (slow, b) = runs[True], runs[False]
    assert fast["updates"] == slow["updates"] > 0
    assert (fast["critic_loss"], fast["actor_loss"]) == (slow["critic_loss"], slow["actor_loss"])
    for k, v in a["agent"]["modules"].items():
        assert torch.equal(v, b["agent"]["modules"][k]), k
    for k in ("action", "reward"):
        assert torch.equal(a["replay"][k], b["replay"][k]), k
