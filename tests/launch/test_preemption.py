"""Pre-emption: SIGTERM / SIGINT write a final snapshot and exit promptly with a clear message and a
non-zero status (128 + signal); a joblib multirun with one bad job still finishes the others."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._cli import (
    HANG_S,
    ROOT,
    TRAIN,
    child_env,
    counters,
    latest,
    no_traceback,
    start_train,
    wait_for,
)

# How soon after the signal the run must have exited: timed from the signal, generous for a loaded
# machine; the alternative it tells apart trains 1,000,000 frames or evaluates 1000 episodes.
BOUND_S = 120


def signal_and_wait(proc: subprocess.Popen, *sigs: signal.Signals) -> tuple[str, float]:
    """Send the signals back to back; (the output, seconds until the process exited). A process
    still alive after BOUND_S is killed, so a hang fails the test instead of stalling the suite."""
    try:
        t0 = time.monotonic()
        for sig in sigs:
            proc.send_signal(sig)
        out, _ = proc.communicate(timeout=BOUND_S)
        return out, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_writes_final_snapshot_and_exits(tmp_path: Path, sig: signal.Signals) -> None:
    run_dir = tmp_path / "run"
    proc = start_train(run_dir, "num_train_frames=1000000", "snapshot_every_n=100")
    try:
        wait_for(latest(run_dir), proc)
        first = counters(latest(run_dir))
        time.sleep(0.5)
    except BaseException:
        proc.kill()
        raise
    out, took = signal_and_wait(proc, sig)
    assert took < BOUND_S
    assert proc.returncode == 128 + int(sig), out[-3000:]
    assert f"{sig.name} received" in out and "snapshot written to" in out and f"resume={run_dir}" in out, out[-3000:]
    assert no_traceback(out), out[-3000:]
    final = counters(latest(run_dir))
    assert first["frames"] <= final["frames"] < 1_000_000
    assert final["updates"] >= first["updates"]
    # the final snapshot is not on the snapshot_every_n grid: it was written on the signal
    assert (run_dir / "snapshots" / f"{final['frames']}_snapshot.pt").is_file()


@pytest.mark.slow
def test_joblib_sweep_with_one_bad_job_finishes_the_others(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    argv = [sys.executable, TRAIN, "-m", "experiment=smoke", "agent=sac", "curriculum_stage=2",
            "eval_every_steps=0", "tb.use=false", "num_train_frames=300,-5", "hydra/launcher=joblib",
            f"hydra.sweep.dir={sweep}", f"hydra.run.dir={tmp_path / 'run'}"]
    r = subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=HANG_S)
    err = r.stderr
    assert r.returncode != 0, "a sweep with a failed job must not report success"
    # which job failed and why, without a stack trace
    assert "num_train_frames=-5" in err and "allowed an integer >= 1" in err, err[-3000:]
    assert "Error executing job with overrides" in err and "#1" in err, err[-3000:]
    assert no_traceback(err) and no_traceback(r.stdout), err[-3000:]
    # the good job ran to the end and kept its results
    snaps = sorted(sweep.rglob("latest_snapshot.pt"))
    assert len(snaps) == 1, [str(s) for s in sweep.rglob("*")]
    assert counters(snaps[0])["frames"] == 300
    assert (snaps[0].parent.parent / "train.csv").is_file()


def _start_in_long_evaluation(run_dir: Path) -> subprocess.Popen:
    """A run that logs frame 200 and then starts an evaluation of 1000 episodes (minutes long)."""
    proc = start_train(run_dir, "num_train_frames=1000000", "snapshot_every_n=100", "eval_every_steps=200",
                       "num_eval_episodes=1000")
    csv = run_dir / "train.csv"
    t0 = time.monotonic()
    while not (csv.is_file() and any(line.startswith("200,") for line in csv.read_text().splitlines())):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() - t0 < HANG_S, "frame 200 was never logged"
        time.sleep(0.05)
    time.sleep(1.0)  # into the evaluation's first episodes
    return proc


@pytest.mark.slow
def test_sigterm_during_evaluation_aborts_it_and_snapshots(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _start_in_long_evaluation(run_dir)
    out, took = signal_and_wait(proc, signal.SIGTERM)
    assert took < BOUND_S
    assert proc.returncode == 128 + int(signal.SIGTERM), out[-3000:]
    assert "evaluation at 200 frames aborted by SIGTERM" in out and "snapshot written to" in out, out[-3000:]
    assert no_traceback(out), out[-3000:]
    assert counters(latest(run_dir))["frames"] == 200
    assert not (run_dir / "eval.csv").is_file() or "200," not in (run_dir / "eval.csv").read_text()


@pytest.mark.slow
def test_second_signal_exits_at_once_and_keeps_the_last_snapshot(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _start_in_long_evaluation(run_dir)
    out, _ = signal_and_wait(proc, signal.SIGTERM, signal.SIGINT)
    assert proc.returncode in (128 + int(signal.SIGTERM), 128 + int(signal.SIGINT)), out[-3000:]
    assert no_traceback(out), out[-3000:]
    assert re.search(r"second signal \(SIG(INT|TERM)\)", out), out[-3000:]  # either may be handled first
    assert "is kept" in out and f"resume={run_dir}" in out, out[-3000:]
    assert counters(latest(run_dir))["frames"] >= 100  # a complete snapshot to resume from
