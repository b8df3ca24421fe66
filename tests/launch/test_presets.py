"""Every experiment preset runs end to end (as lightning-hydra-template tests every experiment).

The presets are discovered from conf/experiment/*.yaml, so a new one is covered without editing
this file. Each is composed as shipped and run through scripts/train.py in a subprocess with only
its budgets cut to the smallest that still pass through every part of the run: demo recording and
BC pre-training where the preset uses them, random exploration, updates, an evaluation and a
snapshot. Nothing that defines the preset's method (agent and its options, teacher/privileged
settings, stage, reward, env, task) is overridden; the test checks that from the config the run
wrote.

Cost on 2 shared cores: 6-30 s per MuJoCo preset (up to ~70 s under a load of 8), the whole
file 1.5-3 min; the Genesis preset takes ~35 s with Genesis' kernel cache warm and ~100 s cold,
so it is marked slow (it still runs in CI). Keep to one Genesis preset for that reason.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf

from runconfig.compose import compose_train
from tests._cli import ROOT, latest, no_traceback, run_train

PRESETS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
FRAMES = 20            # env frames: a few steps of each env, some of them with updates
EPISODE_LENGTH = 60    # the scripted expert needs ~46-50 steps at stage 4 to record a demo that succeeds
EPISODE_LENGTH_HOME = 120  # from the home pose (stage 0) it needs 44-199 steps, retries included
HANG_GUARD_S = 1800    # only against a hung run: far above any run's time, even on a loaded machine
# The keys this test may change: budgets only. Every other key must reach the run as shipped.
BUDGET_KEYS = {"num_train_frames", "num_explore_steps", "replay_size_before_train", "eval_every_steps",
               "num_eval_episodes", "num_val_episodes", "batch_size", "demos", "agent.bc_pretrain_steps", "train_minutes",
               "snapshot_every_n", "env.episode_length", "replay.size", "visual_observation_shape",
               "log_eval_video", "tb.use"}


def shipped(name: str) -> dict[str, Any]:
    return OmegaConf.to_container(compose_train([f"experiment={name}"]), resolve=True)


def budget_overrides(cfg: dict[str, Any]) -> list[str]:
    """The smallest budgets for preset config `cfg` (keys of BUDGET_KEYS only)."""
    n = cfg["num_train_envs"]
    # Each env writes at least nstep + frame_stack + 1 replay rows (the ring holds no more than the run writes).
    frames = n * max(math.ceil(FRAMES / n), cfg["replay"]["nstep"] + cfg["frame_stack"])
    over = {
        "num_train_frames": frames,
        "num_explore_steps": min(cfg["num_explore_steps"], frames // 2),  # 0 stays 0 (pixels_cpu acts at once)
        "replay_size_before_train": min(cfg["replay_size_before_train"], frames // 2),
        "eval_every_steps": frames,
        "num_eval_episodes": 1,
        "num_val_episodes": min(cfg["num_val_episodes"], 1),
        "batch_size": 8,
        "train_minutes": "null",
        "snapshot_every_n": frames,
        "env.episode_length": EPISODE_LENGTH_HOME if cfg["curriculum_stage"]["stage"] == 0 else EPISODE_LENGTH,
        "replay.size": 200,
        "visual_observation_shape": "[32,32]",
        "log_eval_video": "false",
        "tb.use": "false",
    }
    if cfg["demos"] > 0:
        over["demos"] = 1
    if cfg["agent"].get("bc_pretrain_steps", 0) > 0:
        over["agent.bc_pretrain_steps"] = 2
    assert set(over) <= BUDGET_KEYS
    return [f"{k}={v}" for k, v in over.items()]


def leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(leaves(v, key + "."))
        else:
            out[key] = v
    return out


def preset_param(name: str):
    genesis = shipped(name)["env"]["name"].startswith("genesis")  # Genesis compiles its kernels cold
    return pytest.param(name, marks=[pytest.mark.slow] if genesis else [], id=name)


def test_presets_are_discovered():
    assert {"smoke", "published_mujoco", "sac_stage2", "pixels_cpu"} <= set(PRESETS), PRESETS


@pytest.mark.parametrize("name", [preset_param(n) for n in PRESETS])
def test_preset_runs_end_to_end(name: str, tmp_path: Path) -> None:
    cfg = shipped(name)
    overrides = budget_overrides(cfg)
    teacher = cfg["pipeline"]["teacher_experiment"]
    if teacher:  # a pipeline: its teacher phase gets the budgets of its own preset
        budget = ",".join(f"'{o}'" for o in budget_overrides(shipped(teacher)))
        overrides.append(f"pipeline.teacher_overrides=[{budget}]")
    root = tmp_path / "run"
    r = run_train(root, f"experiment={name}", *overrides, base=False, timeout=HANG_GUARD_S)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and no_traceback(out), out[-4000:]
    run_dir = root / "student" if teacher else root   # a pipeline's student is the preset's policy

    # The run used the preset as shipped: only the budget keys differ.
    ran = leaves(yaml.safe_load((run_dir / "config_resolved.yaml").read_text()))
    assert ran["agent.name"] == cfg["agent"]["name"]
    set_by_pipeline = {"teacher", "pipeline.teacher_experiment", "pipeline.teacher_overrides"} if teacher else set()
    changed = {k: (v, ran.get(k, "<missing>")) for k, v in leaves(cfg).items()
               if k not in BUDGET_KEYS | set_by_pipeline and ran.get(k, "<missing>") != v}
    assert not changed, changed

    with open(run_dir / "eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, "eval.csv has no row"
    assert all(0.0 <= float(row["eval/success_rate"]) <= 1.0 for row in rows), rows
    assert latest(run_dir).is_file()
    with open(run_dir / "train.csv", newline="") as f:
        train = list(csv.DictReader(f))
    assert train and float(train[-1]["updates"]) >= 1, train[-1:]  # the learner ran
    assert math.isfinite(float(train[-1]["critic_loss"])), train[-1]
    if cfg["demos"] > 0:  # the shortened episodes still record a demo, so the demo path ran
        assert re.search(r"\[demos\] scripted expert: [1-9]\d* of \d+ episodes succeeded", out), out[-4000:]
    if cfg["agent"].get("bc_pretrain_steps", 0) > 0:
        assert "[demos] BC pre-training: 2 steps" in out, out[-4000:]
