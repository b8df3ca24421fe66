"""SIGINT and SIGTERM for a training loop.

The first signal only sets `name`: the loop finishes its env step (an evaluation is aborted),
writes a snapshot and the run exits with 128 + signal. A second exits at once with 128 + signal,
naming the newest complete snapshot (snapshots are written atomically, so that one is whole).

In a sweep (`train.py -m`) the parent names a stop file in LIFTBASE_SWEEP_STOP: a signal to the
parent writes it, and so does the first signal any job of the sweep receives. Every job reads it as
its own first signal (polled at most every POLL_S), and a queued job does not start once it exists.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from learning.console import say

SWEEP_STOP_ENV = "LIFTBASE_SWEEP_STOP"
POLL_S = 0.2


def sweep_stop_file() -> Path | None:
    """The stop file of the sweep this process belongs to (None outside a sweep)."""
    path = os.environ.get(SWEEP_STOP_ENV)
    return Path(path) if path else None


def sweep_stopped() -> str | None:
    """The name of the signal that stopped this process's sweep, None while it runs (or outside one)."""
    path = sweep_stop_file()
    try:
        return (path.read_text().strip() or "SIGTERM") if path is not None else None
    except OSError:
        return None


_acted_on: list[str] = []  # the stop this process has acted on: a loop it ended, or a job it did not start


def act_on_stop(name: str) -> None:
    _acted_on.append(name)


def stop_acted_on() -> bool:
    """True once this process has acted on a stop: a signal after that is a second one."""
    return bool(_acted_on)


def request_sweep_stop(name: str) -> None:
    """Write the sweep's stop file (nothing outside a sweep); the jobs' loops and the queued jobs read it."""
    path = sweep_stop_file()
    if path is not None and not path.exists():
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(name + "\n")
        os.replace(tmp, path)


class StopSignals:
    """`install()` (or `with StopSignals(newest) as stop:`) sets the handlers (main thread only) and
    `restore()` puts the previous ones back; `stop.name` is the first signal's name, None until one arrives.
    `newest()` gives (path, frames) of the newest complete snapshot, or None. In a sweep, its stop
    file counts as the first signal."""

    def __init__(self, newest: Callable[[], tuple[Path, int] | None]) -> None:
        self._name: str | None = None
        self._newest = newest
        self._previous: dict[int, Any] = {}
        self._sweep = sweep_stop_file()
        self._polled = 0.0

    @property
    def name(self) -> str | None:
        if self._name is None and self._sweep is not None and time.monotonic() - self._polled >= POLL_S:
            self._polled = time.monotonic()
            stopped = sweep_stopped()
            if stopped is not None:
                self._name = stopped
                act_on_stop(stopped)
                say(f"[native] the sweep was stopped by {stopped}: finishing the current iteration, then "
                    "writing a snapshot")
        return self._name

    def install(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.name is not None:
            found = self._newest()
            kept = (f"the last complete snapshot {found[0]} ({found[1]} frames) is kept. Resume with "
                    f"resume={found[0]}" if found else "no complete snapshot was written yet, so the run has to "
                    "start again")
            print(f"[native] second signal ({name}): exiting now without a new snapshot; {kept}",
                  file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self._name = name
        act_on_stop(name)
        request_sweep_stop(name)
        say(f"[native] {name} received: finishing the current iteration, then writing a snapshot")
