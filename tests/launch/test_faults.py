"""Faults found by the fault probe, each driven through scripts/train.py (or the files a run writes):
a snapshot damaged on disk, a fresh run into a directory that holds a run, a full disk while
logging, resume advice naming a snapshot that does not exist, signals during the demos and BC
pre-training, an output directory root cannot write to, and rows logged twice after a crash."""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests._cli import (
    HANG_S,
    counters,
    finished_run,
    latest,
    load,
    no_traceback,
    run_train,
    start_train,
    tree_digest,
    wait_for,
)

BOUND_S = 30  # a hang guard, not a timing claim


def _frames(csv_path: Path) -> list[int]:
    with csv_path.open(newline="") as f:
        return [int(float(r["frames"])) for r in csv.DictReader(f)]


def _newest_row(csv_path: Path) -> int:
    """The largest frames value logged so far (0 if none yet; the file may be mid-write)."""
    try:
        return max(_frames(csv_path), default=0)
    except (OSError, ValueError, TypeError):
        return 0


class _Output:
    """The run's output, read on a thread as it comes: wait for a line, then signal and collect."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.lines, self.seen = proc, [], threading.Event()
        self.marker: str | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line)
            if self.marker is not None and self.marker in line:
                self.seen.set()
        self.seen.set()  # EOF: the run ended

    def wait_for(self, marker: str, timeout: float = HANG_S) -> None:
        self.marker = marker
        if any(marker in line for line in self.lines):
            return
        found = self.seen.wait(timeout) and any(marker in line for line in self.lines)
        if not found:
            self.proc.kill()
            self.thread.join(30)
            raise AssertionError(f"{marker!r} not printed within {timeout} s (rc={self.proc.poll()}):\n"
                                 + "".join(self.lines)[-3000:])

    def signal_and_wait(self, *sigs: signal.Signals) -> tuple[str, float]:
        """Send the signals back to back; (the output, seconds until the run exited). A run still
        alive after BOUND_S is killed, so a hang fails the test instead of stalling the suite."""
        t0 = time.monotonic()
        for sig in sigs:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(BOUND_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        took = time.monotonic() - t0
        self.thread.join(30)
        return "".join(self.lines), took


# ------------------------------------------------------------------ 1. snapshot integrity
def _damage_a_weight(snap: Path) -> None:
    """Eight 0xff bytes into the middle of a weight tensor's bytes in the file (the actor's
    hidden layer): torch.load reads such a file without complaint."""
    weight = load(snap)["agent"]["modules"]["actor.policy.2.weight"]
    raw = weight.contiguous().numpy().tobytes()
    data = snap.read_bytes()
    at = data.find(raw)
    assert at > 0 and data.find(raw, at + 1) < 0, "the weight's bytes are not found once in the file"
    with snap.open("r+b") as f:
        f.seek(at + len(raw) // 2)
        f.write(b"\xff" * 8)
    import torch
    torch.load(snap, map_location="cpu", weights_only=False)  # still loads: only a checksum notices


@pytest.mark.slow
def test_damaged_snapshot_is_refused_naming_the_previous_good_one(tmp_path_factory, tmp_path: Path) -> None:
    run = tmp_path / "r"
    shutil.copytree(finished_run(tmp_path_factory, "num_train_frames=300", "snapshot_every_n=100"), run,
                    symlinks=True)
    snaps = run / "snapshots"
    _damage_a_weight(snaps / "latest_snapshot.pt")
    _damage_a_weight(snaps / "300_snapshot.pt")
    before = tree_digest(run)
    for target, named in ((run, snaps / "latest_snapshot.pt"), (snaps / "300_snapshot.pt", snaps / "300_snapshot.pt")):
        r = run_train(run, f"resume={target}", "num_train_frames=400", base=False)
        assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-3000:]
        assert f"snapshot {named} is corrupt" in r.stderr and "CRC-32" in r.stderr, r.stderr[-3000:]
        assert f"resume={snaps / '200_snapshot.pt'}" in r.stderr, r.stderr[-3000:]  # 300 is damaged too
        assert no_traceback(r.stderr), r.stderr[-3000:]
        assert tree_digest(run) == before  # refused before anything was written
    r = run_train(run, f"resume={snaps / '200_snapshot.pt'}", "num_train_frames=400", base=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert counters(latest(run))["frames"] == 400


@pytest.mark.slow
def test_snapshot_without_checksums_still_loads(tmp_path_factory, tmp_path: Path) -> None:
    """torch's legacy (non-zip) format carries no checksums: it loads as before, without a word."""
    import torch

    run = tmp_path / "r"
    shutil.copytree(finished_run(tmp_path_factory), run, symlinks=True)
    torch.save(load(latest(run)), latest(run), _use_new_zipfile_serialization=False)
    frames = counters(latest(run))["frames"]
    r = run_train(run, f"resume={run}", f"num_train_frames={frames + 50}", base=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "corrupt" not in r.stderr and "checksum" not in r.stderr
    assert counters(latest(run))["frames"] == frames + 50


# ------------------------------------------------------- 2. a run dir that holds a run
@pytest.mark.slow
def test_fresh_run_into_a_run_directory_is_refused_and_overwrite_replaces_it(tmp_path_factory, tmp_path: Path):
    run = tmp_path / "r"
    shutil.copytree(finished_run(tmp_path_factory), run, symlinks=True)
    before = tree_digest(run)
    r = run_train(run, "num_train_frames=100", "seed=7")
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"run directory '{run}' already holds a run" in r.stderr, r.stderr[-3000:]
    assert f"resume={run}" in r.stderr and "overwrite=true" in r.stderr and no_traceback(r.stderr)
    assert tree_digest(run) == before  # nothing written, train.log included

    r = run_train(run, "num_train_frames=100", "seed=7", "overwrite=true")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "overwrite=true: deleted the earlier run" in r.stdout
    assert yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["seed"] == 7
    assert not (run / ".hydra" / "resumes.yaml").exists()
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["100_snapshot.pt", "latest_snapshot.pt"]
    assert counters(latest(run))["frames"] == 100 and load(latest(run))["config"]["seed"] == 7
    assert _frames(run / "train.csv") == [50, 100]  # the old run's rows are gone, not interleaved


# ---------------------------------------------------------- 3. a full disk while logging
@pytest.fixture
def small_fs(tmp_path: Path):
    """A real 40 MiB filesystem (tmpfs): needs root and permission to mount."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full-disk test needs root to mount a small tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int = 0) -> None:
    """Fill the filesystem until `leave` bytes are free (0: to ENOSPC)."""
    st = os.statvfs(mnt)
    room = st.f_bavail * st.f_frsize - leave
    with open(mnt / "filler", "wb") as f:
        chunk = b"\0" * (1 << 16)
        try:
            while room > 0:
                room -= f.write(chunk[:min(len(chunk), room)])
                f.flush()
        except OSError:
            pass


def _fill_mid_run(run: Path, after: Path, leave: int, *overrides: str) -> tuple[int, str]:
    """Start a long run on the small filesystem, fill it (leaving `leave` bytes) once `after`
    exists, and wait for the run to end; (its exit status, its output)."""
    proc = start_train(run, "num_train_frames=1000000", "log_every=10", *overrides)
    try:
        wait_for(after, proc)
        _fill(run.parent, leave=leave)
        out, _ = proc.communicate(timeout=HANG_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out


@pytest.mark.slow
def test_full_disk_while_logging_ends_the_run_with_one_line(small_fs: Path) -> None:
    run = small_fs / "run"
    # A row every 10 frames and a snapshot every 500: the logs meet the full disk first.
    rc, out = _fill_mid_run(run, latest(run), 0, "snapshot_every_n=500")
    assert rc == 1, out[-3000:]
    assert no_traceback(out) and "Logging error" not in out, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out[-3000:]
    line = errors[0]
    assert "no space left on the device writing" in line and str(run) in line and "MiB free" in line, line
    assert "snapshot at" in line, line  # a snapshot was tried
    advice = line.split("resume with resume=", 1)[1].split(" ", 1)[0]
    assert Path(advice).is_file() and counters(advice)["frames"] >= 500, line
    frames = _frames(run / "train.csv")  # the CSV stays a clean table: no partial row
    assert frames == sorted(frames) and len(frames) == len(set(frames))
    assert not list(run.glob("*.tmp")) and not list((run / "snapshots").glob("*.tmp"))


# --------------------------------------------- 4. resume advice names a snapshot that exists
@pytest.mark.slow
def test_failed_first_snapshot_names_the_numbered_one_that_was_written(small_fs: Path) -> None:
    run = small_fs / "run"
    # room for the logs until 1000 frames and the agent-only 1000_snapshot.pt (~420 KiB),
    # not for latest_snapshot.pt after it
    rc, out = _fill_mid_run(run, run / "train.csv", 680 * 1024, "snapshot_every_n=1000")
    assert rc == 1, out[-3000:]
    assert no_traceback(out), out[-3000:]
    assert not latest(run).exists(), "latest_snapshot.pt fitted: the test's space budget is off"
    numbered = run / "snapshots" / "1000_snapshot.pt"
    assert numbered.is_file(), sorted(p.name for p in (run / "snapshots").iterdir())
    line = next(x for x in out.splitlines() if x.startswith("error:"))
    assert "writing the snapshot at 1000 frames" in line and f"resume={numbered}" in line, line
    assert f"resume={run} " not in line + " " and f"resume={run}." not in line, line


@pytest.mark.slow
def test_second_signal_before_any_snapshot_says_none_exists(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = start_train(run, "demos=10000", "num_train_frames=1000")
    output = _Output(proc)
    output.wait_for("[demos] rolling out")
    out, took = output.signal_and_wait(signal.SIGTERM, signal.SIGINT)
    assert took < BOUND_S
    assert proc.returncode in (128 + signal.SIGTERM, 128 + signal.SIGINT), out[-3000:]
    assert "second signal" in out and "no complete snapshot was written yet" in out, out[-3000:]
    assert "resume=" not in out.split("second signal", 1)[1], out[-3000:]  # nothing to resume from
    assert not latest(run).exists()


# ------------------------------------------- 5. signals during the demos and BC pre-training
@pytest.mark.slow
@pytest.mark.parametrize("phase,overrides,marker", [
    ("demos", ["demos=10000"], "[demos] rolling out"),
    ("bc", ["demos=10", "agent.bc_pretrain_steps=100000000"], "[demos] scripted expert:"),
], ids=["demo_collection", "bc_pretraining"])
def test_sigterm_during_pretraining_phases_snapshots_and_exits_143(tmp_path: Path, phase, overrides, marker):
    run = tmp_path / "run"
    proc = start_train(run, *overrides, "num_train_frames=1000")
    output = _Output(proc)
    output.wait_for(marker)
    time.sleep(1.0)  # into the phase (10^8 BC steps or 10^4 demos take many minutes)
    out, took = output.signal_and_wait(signal.SIGTERM)
    assert took < BOUND_S, took
    assert proc.returncode == 143, out[-3000:]
    assert "SIGTERM received" in out and "snapshot written to" in out and no_traceback(out), out[-3000:]
    c = counters(latest(run))
    assert c["frames"] == 0
    if phase == "bc":
        assert 0 < c["bc_steps"] < 100_000_000, c
        # the resume finishes the pre-training (what is left of a smaller total), then trains
        r = run_train(run, f"resume={run}", f"agent.bc_pretrain_steps={c['bc_steps'] + 100}", "num_train_frames=100",
                      base=False)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"continued from step {c['bc_steps']}" in r.stdout, r.stdout[-3000:]
        assert counters(latest(run))["bc_steps"] == c["bc_steps"] + 100
    else:
        assert "collection stopped after" in out, out[-3000:]
        assert load(latest(run))["demos"] is None  # collected again on resume


# --------------------------------------------------- 6. an output dir root cannot write to
@pytest.mark.slow
def test_output_dir_under_proc_is_refused_in_one_line(tmp_path: Path) -> None:
    r = run_train("/proc/liftbase-x")
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-3000:]
    assert "error: output directory '/proc/liftbase-x' is not writable" in r.stderr, r.stderr[-3000:]
    assert no_traceback(r.stderr + r.stdout), r.stderr[-3000:]


# ------------------------------------------------------------ 7. rows logged twice
@pytest.mark.slow
def test_resume_after_sigkill_logs_each_frames_value_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = start_train(run, "num_train_frames=100000", "snapshot_every_n=300", "log_every=50",
                       "eval_every_steps=100", "num_eval_episodes=1")
    try:
        wait_for(latest(run), proc)
        t0 = time.monotonic()
        while True:  # kill once both logs hold rows newer than the latest snapshot
            snap = counters(latest(run))["frames"]
            if _newest_row(run / "train.csv") > snap and _newest_row(run / "eval.csv") > snap:
                break
            assert proc.poll() is None and time.monotonic() - t0 < 120
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.communicate()
    snap = counters(latest(run))["frames"]
    assert max(_frames(run / "train.csv")) > snap, "the kill came right after a snapshot: nothing was tested"
    r = run_train(run, f"resume={run}", f"num_train_frames={snap + 400}", base=False)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("train.csv", "eval.csv"):
        frames = _frames(run / name)
        assert len(frames) == len(set(frames)) and frames == sorted(frames), (name, frames)
        assert frames[-1] == snap + 400, (name, frames)


def test_reader_keeps_the_last_row_per_frames_value(tmp_path: Path) -> None:
    """eval.csv of an older run, written twice over a stretch: the curve counts each frames once."""
    from analysis.runs import load_runs

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=1"]))
    (run / "eval.csv").write_text("frames,eval/success_rate\n100,0.0\n200,0.0\n300,0.0\n200,0.5\n300,1.0\n400,1.0\n")
    runs, _ = load_runs([str(run)])
    assert runs[0].curve["frames"] == [100, 200, 300, 400]
    assert runs[0].curve["success"] == [0.0, 0.5, 1.0, 1.0]
