"""Logging faults: wandb with no network and no API key runs offline without hanging; an output
directory that cannot be written fails clearly before training starts."""
from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests._cli import HANG_S, ROOT, child_env, counters, latest, no_traceback, run_train, train_argv


@pytest.mark.slow
def test_wandb_offline_without_network_or_key(tmp_path: Path) -> None:
    env = child_env(WANDB_API_KEY="", HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
                    WANDB_BASE_URL="http://127.0.0.1:9", WANDB_DIR=str(tmp_path / "wandb_home"),
                    WANDB_CONFIG_DIR=str(tmp_path / "wandb_cfg"), WANDB_CACHE_DIR=str(tmp_path / "wandb_cache"))
    env.pop("WANDB_MODE", None)
    run_dir = tmp_path / "run"
    r = run_train(run_dir, "num_train_frames=200", "wandb.use=true", "wandb.mode=offline", env=env)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-3000:]
    assert counters(latest(run_dir))["frames"] == 200
    assert list(run_dir.rglob("offline-run-*")), "wandb did not write an offline run"
    assert "wandb disabled" not in r.stderr, r.stderr[-2000:]
    # Progress without a terminal: one line per log interval, never a bare 'nan' before the
    # first episode has ended (200-step episodes: none has at frame 50).
    progress = [line for line in r.stdout.splitlines() if line.startswith("[native]")]
    assert progress and "no episode finished yet" in progress[0], r.stdout[-1500:]
    assert not any("nan" in line for line in progress), progress


@pytest.mark.slow
def test_a_run_prints_each_evaluation_and_a_closing_block(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    r = run_train(run_dir, "num_train_frames=200", "eval_every_steps=100", "num_eval_episodes=1")
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-3000:]
    evals = [line for line in r.stdout.splitlines() if line.startswith("[eval]")]
    assert [e.split(":")[0] for e in evals] == ["[eval] 100 frames, 1 episode", "[eval] 200 frames, 1 episode"]
    assert all(" success " in e and " return " in e and " max cube z " in e for e in evals), evals
    block = r.stdout[r.stdout.index("run finished: 200 frames, wall time "):]
    assert all(re.search(r" \((\d+ min )?\d+ s into the run\)$", e) for e in evals), evals
    final = re.sub(r", length \d+| \(.* into the run\)", "", evals[-1].split(": ", 1)[1])
    assert f"final eval (200 frames): {final}" in block, block       # the same figures as the last eval line
    assert "best eval  (" in block and f"run directory: {run_dir.resolve()}" in block
    # the run's story is in its train.log too, and the start is a summary, not the config dump
    story = (run_dir / "train.log").read_text()
    assert all(e in story for e in evals) and "run finished: 200 frames" in story, story[-2000:]
    assert "[run] overrides: " in r.stdout and "full config: " in r.stdout and "replay:" not in r.stdout
    assert "OpenGL" not in r.stdout + story
    # one clock: the closing block's training wall time is the [eval] lines' "into the run" clock
    seconds = [_seconds(m) for m in re.findall(r"\((\d+ min \d+ s|\d+ s) into the run\)", r.stdout)]
    trained = _seconds(re.search(r"wall time (\d+ min \d+ s|\d+ s) \(training, over all sessions", block).group(1))
    assert seconds and trained >= seconds[-1], (seconds, block)
    progress = [line for line in r.stdout.splitlines() if line.startswith("[native] ") and " frames (" in line]
    assert progress and all(re.search(r", ETA (\d+ min )?\d+ s, device cpu$", line) for line in progress), progress


def _seconds(text: str) -> int:
    m = re.fullmatch(r"(?:(\d+) min )?(\d+) s", text)
    return 60 * int(m.group(1) or 0) + int(m.group(2))


def test_a_run_the_rate_says_is_long_is_told_so_once(tmp_path: Path) -> None:
    """After its first evaluation a run whose measured rate implies many hours says so, with the
    presets sized for a CPU; then SIGTERM stops it with a snapshot."""
    proc = subprocess.Popen(train_argv(tmp_path / "run", "num_train_frames=1000000000", "eval_every_steps=100",
                                       "num_eval_episodes=1"), cwd=ROOT, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline and (line := proc.stdout.readline()):
        seen.append(line)
        if line.startswith("[eval] 200 frames"):
            break
    proc.send_signal(signal.SIGTERM)
    out = "".join(seen) + proc.communicate(timeout=HANG_S)[0]
    notes = [line for line in out.splitlines() if line.startswith("[native] note: at this rate")]
    assert len(notes) == 1 and "h more for num_train_frames=1,000,000,000" in notes[0], out[-3000:]
    assert "experiment=sac_stage2" in notes[0] and "train_minutes=" in notes[0]
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]


def _no_big_files() -> None:  # child: files over 64 KiB fail with EFBIG (a full disk, as far as we know)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


@pytest.mark.slow
def test_unwritable_output_dir_fails_before_training(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    r = run_train(run_dir, preexec_fn=_no_big_files)
    assert r.returncode == 2, r.stdout[-1500:] + r.stderr[-3000:]
    assert "error: output directory" in r.stderr and "not writable" in r.stderr and str(run_dir) in r.stderr
    assert no_traceback(r.stderr + r.stdout), r.stderr[-3000:]
    assert not (run_dir / "snapshots").exists() and not (run_dir / "train.csv").exists()


@pytest.mark.slow
def test_read_only_output_dir_fails_clearly(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root ignores chmod: put a file where a directory is needed instead
        blocker = tmp_path / "blocker"
        blocker.write_text("")
        run_dir = blocker / "run"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        run_dir = ro / "run"
    r = run_train(run_dir)
    assert r.returncode != 0
    assert str(run_dir) in r.stderr and no_traceback(r.stderr + r.stdout), r.stderr[-3000:]
