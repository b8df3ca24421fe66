"""Demos in the native engine: n-step returns of demo transitions, demos that outlive the online
ring, the demo share of each batch, and demos kept across resume (real MuJoCo, stage 2)."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from factories import MujocoLiftFactory
from learning import demos
from learning.replay import KeySpec
from learning.snapshot import read_snapshot
from learning.trainer import NativeTrainer
from tests._cli import ROOT

GAMMA, NSTEP = 0.9, 3


def test_demo_transitions_hold_their_episodes_n_step_returns() -> None:
    # Two episodes of 5 and 4 steps; obs value = (episode, step) so each sample names its source.
    episodes = []
    for e, length in enumerate((5, 4)):
        t = torch.arange(length, dtype=torch.float32)
        episodes.append({"obs": {"low_dim_state": torch.stack([torch.full_like(t, e), t], 1)[:, None]},  # (T, 1, 2)
                         "action": torch.stack([t, -t, t, -t], 1) / 10, "reward": 1.0 + t + 10 * e,
                         "terminated": t == length - 1, "truncated": torch.zeros(length, dtype=torch.bool)})
    buf = demos.demo_replay(episodes, {"low_dim_state": KeySpec((2,), torch.float32)}, 1, 4, NSTEP, GAMMA,
                            torch.device("cpu"))
    batch = buf.sample(256)
    for obs, act, ret, disc, nxt in zip(batch.obs["low_dim_state"][:, -1], batch.action, batch.reward,
                                        batch.discount, batch.next_obs["low_dim_state"][:, -1]):
        e, t = int(obs[0]), int(obs[1])
        rewards = episodes[e]["reward"][t:t + NSTEP]
        expect = sum(GAMMA ** k * float(r) for k, r in enumerate(rewards))
        assert float(ret) == pytest.approx(expect, rel=1e-6)
        ends = t + NSTEP >= len(episodes[e]["reward"])            # the window reaches the terminal step
        assert float(disc) == pytest.approx(0.0 if ends else GAMMA ** NSTEP)
        assert torch.equal(act, episodes[e]["action"][t])
        if not ends:
            assert (int(nxt[0]), int(nxt[1])) == (e, t + NSTEP)   # never crosses into the next episode


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=smoke", "agent=sac", "curriculum_stage='2'", "tb.use=false",
                                          "eval_every_steps=0", "device=cpu", *overrides])
    return cfg


@pytest.mark.slow
def test_demos_outlive_the_ring_fill_their_share_and_survive_resume(tmp_path: Path, capsys) -> None:
    # replay.size 100 < 300 frames: the online ring wraps twice while the demos stay.
    cfg = compose_cfg("demos=3", "replay.size=100", "num_train_frames=300", "agent.bc_weight=1.0")
    trainer = NativeTrainer(cfg, MujocoLiftFactory(), tmp_path / "run")
    result = trainer.train()
    assert result["frames"] == 300 and result["updates"] > 0 and "bc_loss" in result
    out = capsys.readouterr().out
    assert "[demos] scripted expert: 3 of 3 episodes succeeded and are kept" in out, out

    # The same expert, seeds and env again: the demo rows sampled now are exactly those transitions.
    env = MujocoLiftFactory().make_batched_env(cfg)
    try:
        kept, tried = demos.collect(env, lambda n: MujocoLiftFactory().make_expert(cfg, n), 3, cfg.seed + 2_000_000,
                                    ["low_dim_state"])
    finally:
        env.close()
    assert tried == 3 and len(kept) == 3
    expert_actions = torch.cat([e["action"] for e in kept])                         # (T, 4)
    expert_obs = torch.cat([e["obs"]["low_dim_state"][:, -1] for e in kept])        # (T, 21)
    for ratio in (0.5, 0.25, 1.0):
        batch = demos.mixed_sample(trainer.replay, trainer.demo_replay, 64, ratio)
        assert int(batch.demo.sum()) == round(64 * ratio) and batch.action.shape == (64, 4)
        for obs, act in zip(batch.obs["low_dim_state"][batch.demo][:, -1], batch.action[batch.demo]):
            match = (expert_actions == act).all(1) & (expert_obs == obs).all(1)
            assert match.any(), "a demo row is not one of the expert's transitions"
        # online rows come from training, whose actions are not the expert's
        online = batch.action[~batch.demo]
        assert not any(bool((expert_actions == a).all(1).any()) for a in online)

    _, payload = read_snapshot(tmp_path / "run")
    assert payload["demos"] is not None and payload["demos"]["written"] == sum(len(e["reward"]) for e in kept)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = NativeTrainer(compose_cfg("demos=3", "replay.size=100", "num_train_frames=400",
                                            "agent.bc_weight=1.0", f"resume={tmp_path / 'run'}"),
                                MujocoLiftFactory(), tmp_path / "resumed")
    assert not [w for w in caught if "holds no replay" in str(w.message)]  # the online replay came back too
    resumed.train()
    assert "[demos] scripted expert" not in capsys.readouterr().out     # kept from the snapshot, not re-collected
    mine, theirs = resumed.demo_replay.state_dict(), trainer.demo_replay.state_dict()
    assert mine["written"] == theirs["written"]
    assert torch.equal(mine["obs"]["low_dim_state"], theirs["obs"]["low_dim_state"])
    assert torch.equal(mine["action"], theirs["action"]) and torch.equal(mine["reward"], theirs["reward"])


@pytest.mark.slow
def test_bc_pretraining_fits_the_demos_before_the_first_step(tmp_path: Path, capsys) -> None:
    cfg = compose_cfg("demos=3", "num_train_frames=100", "agent.bc_pretrain_steps=200", "save_snapshot=false")
    NativeTrainer(cfg, MujocoLiftFactory(), tmp_path / "run").train()
    out = capsys.readouterr().out
    m = re.search(r"\[demos\] BC pre-training: 200 steps, loss ([\d.]+) -> ([\d.]+)", out)
    assert m, out
    assert float(m.group(2)) < 0.5 * float(m.group(1))
    assert out.index("BC pre-training") < out.index("[native]")  # before training, after the demos
    with pytest.raises(ValueError, match="agent.bc_pretrain_steps=5 is invalid with demos=0"):
        NativeTrainer(compose_cfg("agent.bc_pretrain_steps=5"), MujocoLiftFactory(), tmp_path / "no")


class _ZeroExpert:
    def __init__(self, n: int) -> None:
        self.n = n

    def reset(self, info) -> None:
        pass

    def act(self, info) -> torch.Tensor:
        return torch.zeros(self.n, 4)


def test_self_imitation_counts_successful_online_episodes_in_the_train_log(tmp_path: Path) -> None:
    """use_self_imitation: the episodes that end in success while training are marked, and the
    train log reports how many transitions they hold (the fake env succeeds at random)."""
    import csv

    from tests.fakes import FakeFactory, tiny_cfg

    class Factory(FakeFactory):
        def make_expert(self, cfg, n):
            return _ZeroExpert(n)

    def run(flag: bool, name: str) -> list[dict[str, str]]:
        cfg = tiny_cfg(**{"demos": 4, "use_self_imitation": flag, "pixels": False, "agent.name": "sac",
                          "num_train_frames": 400, "save_snapshot": False})
        NativeTrainer(cfg, Factory(term_prob=0.15), tmp_path / name).train()
        with (tmp_path / name / "train.csv").open() as f:
            return list(csv.DictReader(f))

    rows = run(True, "si")
    counts = [int(float(r["self_imitation_transitions"])) for r in rows]
    assert counts[-1] > 0 and counts == sorted(counts)  # the ring (2000) never wraps here: it only grows
    assert "self_imitation_transitions" not in run(False, "plain")[0]


@pytest.mark.slow
def test_demo_noise_perturbs_the_recorded_motion_reproducibly() -> None:
    """demo_noise (DART): the demos hold the expert's actions plus seeded noise on dx, dy, dz (the
    gripper command stays clean), the expert corrects for it and still succeeds; 0 means clean."""
    def record(noise: float) -> list[dict]:
        cfg = compose_cfg(f"demo_noise={noise}", "demos=2")
        env = MujocoLiftFactory().make_batched_env(cfg)
        try:
            kept, tried = demos.collect(env, lambda n: MujocoLiftFactory().make_expert(cfg, n), 2, 7,
                                        ["low_dim_state"])
        finally:
            env.close()
        assert tried == 2
        return kept

    clean, noisy, again = record(0.0), record(0.1), record(0.1)
    assert len(noisy) == 2                                                      # still successful demos
    assert torch.equal(noisy[0]["action"], again[0]["action"])                 # seeded
    t = min(len(clean[0]["action"]), len(noisy[0]["action"]))
    moved = (noisy[0]["action"][:t, :3] - clean[0]["action"][:t, :3]).abs()
    assert float(moved.mean()) > 0.02
    assert torch.equal(torch.unique(noisy[0]["action"][:, 3]), torch.unique(clean[0]["action"][:, 3]))
    with pytest.raises(ValueError, match="demo_noise=0.1 is invalid with demos=0"):
        NativeTrainer(compose_cfg("demo_noise=0.1"), MujocoLiftFactory(), Path("/nonexistent"))
