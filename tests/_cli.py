"""Helpers for the reliability tests: run scripts/train.py in a subprocess, read snapshots.

Not a test module (no `test_` prefix); imported by the tests under tests/.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
TRAIN = str(ROOT / "scripts" / "train.py")
# The timeout of every subprocess (and wait) a test starts: a guard against a hang, not a speed
# requirement. The tests check what a command does; a loaded machine (2 shared cores, 10-17
# runnable jobs) makes it many times slower than alone, and only a hang should ever reach this.
HANG_S = 1800
# The smallest budget that still exercises every part of a state-only run.
BASE = ["experiment=smoke", "agent=sac", "curriculum_stage=2", "eval_every_steps=0", "tb.use=false"]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)  # PYTHONPATH unchanged
    env.pop("HYDRA_FULL_ERROR", None)  # users see Hydra's short errors
    env.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: no oversubscription
    env.setdefault("MKL_NUM_THREADS", "1")
    env.update(extra)
    return env


def train_argv(run_dir: Path | str, *overrides: str, base: bool = True) -> list[str]:
    return [sys.executable, TRAIN, *(BASE if base else []), *overrides, f"hydra.run.dir={run_dir}"]


def run_train(run_dir: Path | str, *overrides: str, timeout: float = HANG_S, env: dict | None = None,
              base: bool = True, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(train_argv(run_dir, *overrides, base=base), cwd=ROOT, env=env or child_env(),
                          capture_output=True, text=True, timeout=timeout, **kw)


def start_train(run_dir: Path | str, *overrides: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(train_argv(run_dir, *overrides), cwd=ROOT, env=env or child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def latest(run_dir: Path | str) -> Path:
    return Path(run_dir) / "snapshots" / "latest_snapshot.pt"


def load(path: Path | str) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def counters(path: Path | str) -> dict[str, int]:
    return dict(load(path)["counters"])


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = HANG_S) -> None:
    """Wait until `path` exists (the run is in its training loop); fail if the process ends first."""
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"run ended (rc={proc.returncode}) before {path} appeared:\n{out[-3000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)


def tree_digest(root: Path | str) -> dict[str, str]:
    """Relative path -> sha256 (files) or 'dir'/'link:<target>' for everything under root."""
    root = Path(root)
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = f"link:{os.readlink(p)}"
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def no_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" not in text


_CACHE: dict[str, Path] = {}


def finished_run(tmp_path_factory, *overrides: str) -> Path:
    """One completed smoke run per set of overrides, shared by the tests of this session."""
    key = " ".join(overrides)
    if key not in _CACHE:
        run_dir = tmp_path_factory.mktemp("finished") / "run"
        r = run_train(run_dir, *overrides)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        assert latest(run_dir).is_file()
        _CACHE[key] = run_dir
    return _CACHE[key]
