"""Real command-line runs in subprocesses: a joblib multirun sweep, and eval on its snapshot."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests._cli import HANG_S

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(args: list[str], timeout: float = HANG_S) -> subprocess.CompletedProcess:
    env = dict(os.environ, HYDRA_FULL_ERROR="1")
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    p = run(["scripts/train.py", "-m", "reward_version=v11,v19", "seed=1,2", "hydra/launcher=joblib",
             "hydra.launcher.n_jobs=2", "experiment=smoke", "agent=sac", "curriculum_stage=2",
             "num_train_frames=200", "eval_every_steps=100", f"hydra.sweep.dir={out}"])
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_multirun_sweep_leaves_one_run_dir_per_job_with_snapshot(sweep_dir: Path):
    jobs = sorted(d for d in sweep_dir.iterdir() if d.is_dir() and (d / ".hydra").is_dir())
    assert len(jobs) == 4, [j.name for j in jobs]
    seen = set()
    for j in jobs:
        snap = torch.load(j / "snapshots" / "latest_snapshot.pt", map_location="cpu", weights_only=False)
        cfg = snap["config"]
        seen.add((cfg["reward_version"]["name"], cfg["seed"]))
        assert snap["counters"]["frames"] == 200
        assert (j / "reward_terms.txt").read_text().startswith(f"reward version {cfg['reward_version']['name']}")
        assert (j / "train.csv").is_file()
    assert seen == {("v11", 1), ("v11", 2), ("v19", 1), ("v19", 2)}


def test_compare_groups_the_real_sweep_by_reward_version(sweep_dir: Path, tmp_path: Path):
    out = tmp_path / "cmp"
    p = run(["scripts/compare.py", f"runs=[{sweep_dir}]", "by=reward_version", f"out={out}", "reps=300"])
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    groups = {g["group"]: g for g in summary["groups"]}
    assert set(groups) == {"reward_version=v11", "reward_version=v19"}
    for g in groups.values():
        assert sorted(g["seeds"]) == [1, 2] and g["final_frames"] == [200, 200]
        assert g["curves"]["success"]["frames"] == [100, 200] and g["curves"]["success"]["runs"] == [2, 2]
    assert summary["skipped"] == [] and (out / "curves.png").is_file() and (out / "summary.md").is_file()


def test_eval_prints_the_block_for_a_saved_snapshot(sweep_dir: Path, tmp_path: Path):
    job = next(d for d in sorted(sweep_dir.iterdir()) if (d / "snapshots").is_dir())
    p = run(["scripts/eval.py", f"checkpoint={job / 'snapshots' / 'latest_snapshot.pt'}", "episodes=2",
             "video_episodes=1", f"hydra.run.dir={tmp_path}"])
    assert p.returncode == 0, p.stderr[-3000:]
    for line in ("Episodes:          2", "Mean Reward:", "Success Rate:", "Max Cube Z:", "Mean Grasp Steps:"):
        assert line in p.stdout
    assert (tmp_path / "eval.json").is_file() and (tmp_path / "episode_000.mp4").stat().st_size > 1000


def test_curriculum_stage_as_users_type_it_and_bad_values_named(tmp_path: Path):
    p = run(["scripts/train.py", "curriculum_stage=9", "experiment=smoke"])
    assert p.returncode != 0 and "curriculum_stage/9" in p.stderr and "Available options" in p.stderr
    p = run(["scripts/train.py", "experiment=smoke", "agent=sac", "task.hold_steps=0", f"hydra.run.dir={tmp_path}"])
    assert p.returncode == 2 and "error: task.hold_steps=0 is invalid: allowed an integer >= 1" in p.stderr
    assert "Traceback" not in p.stderr


def test_submitit_local_sweep_runs_both_jobs_and_names_them(tmp_path: Path):
    """hydra/launcher=submitit_local: the same submitit path a SLURM sweep takes, on this machine."""
    out = tmp_path / "sweep"
    p = run(["scripts/train.py", "-m", "seed=1,2", "hydra/launcher=submitit_local", "experiment=smoke", "agent=sac",
             "curriculum_stage=2", "num_train_frames=200", "eval_every_steps=100", "tb.use=false",
             f"hydra.sweep.dir={out}"])
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    for num, seed in ((0, 1), (1, 2)):
        snap = torch.load(out / str(num) / "snapshots" / "latest_snapshot.pt", map_location="cpu", weights_only=False)
        assert snap["counters"]["frames"] == 200 and snap["config"]["seed"] == seed
        assert (out / str(num) / "eval.csv").is_file() and (out / str(num) / ".hydra" / "overrides.yaml").is_file()
        story = (out / str(num) / "train.log").read_text()
        assert f"[job {num + 1}/2 seed={seed}] [eval] 200 frames" in story, story[-2000:]
        assert "run finished: 200 frames" in story
