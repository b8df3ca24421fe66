"""SIGINT and SIGTERM for a training loop.

The first signal only sets `name`: the loop finishes its env step (an evaluation is aborted),
writes a snapshot and the run exits with 128 + signal. A second exits at once with 128 + signal,
naming the newest complete snapshot (snapshots are written atomically, so that one is whole).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from learning.console import say


class StopSignals:
    """`install()` (or `with StopSignals(newest) as stop:`) sets the handlers (main thread only) and
    `restore()` puts the previous ones back; `stop.name` is the first signal's name, None until one arrives.
    `newest()` gives (path, frames) of the newest complete snapshot, or None."""

    def __init__(self, newest: Callable[[], tuple[Path, int] | None]) -> None:
        self.name: str | None = None
        self._newest = newest
        self._previous: dict[int, Any] = {}

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
        self.name = name
        say(f"[native] {name} received: finishing the current iteration, then writing a snapshot")
