"""Crash and resume: SIGKILL a training subprocess at a random point, resume from its last snapshot.

The latest snapshot must be loadable at every moment (atomic_save), its counters must never go
backwards, and the resumed run must end with exactly the env frames and gradient updates of an
uninterrupted run with the same config.
"""
from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests._cli import (
    HANG_S,
    counters,
    finished_run,
    kill,
    latest,
    run_train,
    start_train,
    wait_for,
)

FRAMES = 800
OVERRIDES = (f"num_train_frames={FRAMES}", "snapshot_every_n=50", "log_every=100")


def _kill_at_random(run_dir: Path, rng: random.Random, *extra: str) -> list[dict[str, int]]:
    """Start (or resume) a run, poll its latest snapshot, SIGKILL it once the snapshots reach a random
    frame count (so the kill lands mid-run however fast the machine is); returns the counters seen
    while it ran (each read must load)."""
    proc = start_train(run_dir, *OVERRIDES, *extra)
    seen = []
    try:
        wait_for(latest(run_dir), proc)
        target = counters(latest(run_dir))["frames"] + 50 * rng.randint(0, 5)
        while proc.poll() is None:
            seen.append(counters(latest(run_dir)))   # must always load: never half-written
            if seen[-1]["frames"] >= target:
                break
            time.sleep(0.02)
    finally:
        kill(proc, signal.SIGKILL)
        proc.communicate(timeout=HANG_S)
    seen.append(counters(latest(run_dir)))
    return seen


def _assert_monotonic(seq: list[dict[str, int]]) -> None:
    for a, b in zip(seq, seq[1:]):
        for k in ("frames", "updates", "episodes", "update_credit"):
            assert b[k] >= a[k], f"counter {k} went backwards: {a} -> {b}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path_factory, tmp_path: Path, seed: int) -> None:
    ref = counters(latest(finished_run(tmp_path_factory, *OVERRIDES)))
    assert ref["frames"] == FRAMES and ref["updates"] > 0

    rng = random.Random(seed)
    run_dir = tmp_path / "run"
    seen = _kill_at_random(run_dir, rng)
    assert seen[-1]["frames"] < FRAMES, "the kill came after the run had finished: nothing was tested"
    # seed 2 is killed twice: once in the first run and once while resuming
    if seed == 2 and seen[-1]["frames"] < FRAMES:
        seen += _kill_at_random(run_dir, rng, f"resume={run_dir}")
    _assert_monotonic(seen)
    for snap in (run_dir / "snapshots").glob("*_snapshot.pt"):
        counters(snap)  # every numbered snapshot loads too

    r = run_train(run_dir, *OVERRIDES, f"resume={run_dir}")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    final = counters(latest(run_dir))
    _assert_monotonic(seen + [final])
    assert final["frames"] == ref["frames"] == FRAMES
    assert final["updates"] == ref["updates"], (final, ref, seen[-1])
    assert final["update_credit"] == ref["update_credit"]
