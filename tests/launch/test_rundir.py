"""A run directory belongs to one run: its saved composition survives a resume in place, a
second process is refused while the first holds it, a refusal writes nothing, and temp files of
interrupted snapshot writes are cleaned up."""
from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
import yaml

from tests._cli import (
    HANG_S,
    counters,
    finished_run,
    kill,
    latest,
    load,
    no_traceback,
    run_train,
    start_train,
    wait_for,
)


def _config(run: Path) -> dict:
    return load(latest(run))["config"]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["agent=sac"]], ids=["plain", "same_agent_typed"])
def test_resume_in_place_continues_the_saved_composition(tmp_path_factory, tmp_path: Path, extra):
    run = tmp_path / "r"
    shutil.copytree(finished_run(tmp_path_factory), run, symlinks=True)
    saved = (run / ".hydra" / "config.yaml").read_bytes()
    before = _config(run)
    frames = counters(latest(run))["frames"]
    # Typed without the run's experiment / stage / batch: those must come from the run itself.
    r = run_train(run, f"resume={run}", *extra, f"num_train_frames={frames + 50}", base=False)
    assert r.returncode == 0, r.stderr[-3000:]
    after = _config(run)
    assert after["curriculum_stage"] == before["curriculum_stage"]
    assert after["batch_size"] == before["batch_size"]
    assert after["agent"] == before["agent"]
    assert counters(latest(run))["frames"] == frames + 50
    assert (run / ".hydra" / "config.yaml").read_bytes() == saved
    resumes = yaml.safe_load((run / ".hydra" / "resumes.yaml").read_text())
    assert f"num_train_frames={frames + 50}" in resumes[-1]["overrides"]


@pytest.mark.slow
def test_second_process_is_refused_and_a_dead_holder_is_taken_over(tmp_path: Path):
    run = tmp_path / "r"
    first = start_train(run, "num_train_frames=100000", "snapshot_every_n=100")
    try:
        wait_for(latest(run), first)
        second = run_train(run, "num_train_frames=300")
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        assert "in use by pid" in second.stderr and str(first.pid) in second.stderr, second.stderr[-2000:]
        assert no_traceback(second.stderr)
        assert first.poll() is None  # the holder trains on
    finally:
        kill(first, signal.SIGKILL)
        first.wait(HANG_S)
    frames = counters(latest(run))["frames"]
    third = run_train(run, f"resume={run}", f"num_train_frames={frames + 50}", base=False)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "taking over the lock" in third.stderr and str(first.pid) in third.stderr, third.stderr[-3000:]


@pytest.mark.slow
def test_refused_config_leaves_no_run_directory(tmp_path: Path):
    run = tmp_path / "never"
    r = run_train(run, "num_train_envs=0")
    assert r.returncode == 2 and "num_train_envs" in r.stderr, r.stderr[-2000:]
    assert not run.exists(), sorted(p.name for p in run.iterdir())


@pytest.mark.slow
def test_temp_files_of_interrupted_writes_are_removed_on_resume(tmp_path_factory, tmp_path: Path):
    run = tmp_path / "r"
    shutil.copytree(finished_run(tmp_path_factory), run, symlinks=True)
    orphan = run / "snapshots" / ".latest_snapshot.pt.k3j2x9.tmp"
    orphan.write_bytes(b"\0" * 4096)
    keep = run / "snapshots" / "notes.tmp"  # not the project's: left alone
    keep.write_text("mine")
    frames = counters(latest(run))["frames"]
    r = run_train(run, f"resume={run}", f"num_train_frames={frames + 50}", base=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not orphan.exists() and keep.exists()
    assert "removed 1 temp file" in r.stdout


@pytest.mark.slow
def test_resuming_a_finished_run_says_so_and_writes_nothing(tmp_path_factory, tmp_path: Path):
    run = finished_run(tmp_path_factory)
    before = sorted(p.name for p in run.rglob("*"))
    r = run_train(tmp_path / "again", f"resume={run}", base=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "nothing to do" in r.stdout and "num_train_frames" in r.stdout, r.stdout[-2000:]
    assert not (tmp_path / "again").exists()
    assert sorted(p.name for p in run.rglob("*")) == before


@pytest.mark.slow
def test_only_the_newest_numbered_snapshots_are_kept(tmp_path: Path):
    run = tmp_path / "r"
    r = run_train(run, "num_train_frames=300", "snapshot_every_n=50", "keep_snapshots=2")
    assert r.returncode == 0, r.stderr[-3000:]
    names = sorted(p.name for p in (run / "snapshots").glob("*.pt"))
    assert names == ["250_snapshot.pt", "300_snapshot.pt", "latest_snapshot.pt"], names
    r = run_train(tmp_path / "bad", "keep_snapshots=-1")
    assert r.returncode == 2 and "keep_snapshots=-1 is invalid" in r.stderr, r.stderr[-2000:]
