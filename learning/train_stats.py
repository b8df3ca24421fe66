"""What the training loop reports: windows over the finished episodes (success, return and each
reward term's sum), the means of the update metrics since the last log, the `train` log row, and,
without a TTY, one progress line per log with an ETA."""
from __future__ import annotations

import collections
import time
from typing import Any, Callable, Mapping

import numpy as np
import torch

from envs.batched import Step
from learning.console import duration, say

WINDOW = 100  # finished episodes in the train success / return windows
LONG_RUN_S = 3 * 3600  # a run the measured rate says needs longer than this is told so once


class TrainStats:
    """`record_episodes` after a step where envs ended, `add_update` after each agent update,
    `row` at each log. `wall_s()` is the run's training wall time over all its sessions, the
    clock `train_minutes` counts."""

    def __init__(self, num_train_frames: int, train_minutes: float | None, device: torch.device,
                 wall_s: Callable[[], float]) -> None:
        self.num_train_frames, self.train_minutes = num_train_frames, train_minutes
        self.device, self.wall_s = device, wall_s
        self.episodes = 0
        self.success: collections.deque = collections.deque(maxlen=WINDOW)
        self.returns: collections.deque = collections.deque(maxlen=WINDOW)
        self.terms: dict[str, collections.deque] = {}
        self._acc: dict[str, torch.Tensor] = {}
        self._acc_n = 0
        self._last_log = self._session_start = (time.perf_counter(), 0)
        self._warned_long = False

    # ---------------------------------------------------------------- windows
    def windows(self) -> dict[str, Any]:
        """The windows as plain lists, for the snapshot."""
        return {"success": list(self.success), "return": list(self.returns),
                "terms": {k: list(v) for k, v in self.terms.items()}}

    def restore(self, windows: Mapping[str, Any], episodes: int) -> None:
        self.episodes = episodes
        self.success.extend(windows.get("success", []))
        self.returns.extend(windows.get("return", []))
        for k, v in windows.get("terms", {}).items():
            self.terms[k] = collections.deque(v, maxlen=WINDOW)

    def record_episodes(self, step: Step, done: torch.Tensor) -> None:
        """Success, return and per-term sums of the episodes ending now (done: (N,) bool)."""
        self.episodes += int(done.sum())
        keep = (done & ~step.fault).cpu()  # a faulted episode's sums are not meaningful
        if not bool(keep.any()):
            return
        self.success.extend(step.info["task_success"].cpu()[keep].float().tolist())
        for k, v in step.info.items():
            if not k.startswith("episode/"):
                continue
            values = v.cpu()[keep].float().tolist()
            if k == "episode/return":
                self.returns.extend(values)
            else:
                self.terms.setdefault(k.split("/", 1)[1], collections.deque(maxlen=WINDOW)).extend(values)

    # ------------------------------------------------------------ the log row
    def add_update(self, out: Mapping[str, Any]) -> None:
        """One update's metrics (floats or 0-d tensors), summed until the next row."""
        for k, v in out.items():
            self._acc[k] = self._acc.get(k, 0.0) + v
        self._acc_n += 1

    @property
    def updates_pending(self) -> bool:
        """Have updates run since the last row?"""
        return self._acc_n > 0

    def start_session(self, frames: int, t0: float) -> None:
        """This process's session starts at `frames`: the ETA and the long-run note use its rate."""
        self._session_start, self._warned_long = (t0, frames), False

    def start_interval(self, frames: int) -> None:
        """The next row's fps counts from here."""
        self._last_log = (time.perf_counter(), frames)

    def row(self, frames: int, updates: int, buffer_size: int, self_imitation: int | None,
            progress_line: bool) -> dict[str, float]:
        """The `train` row at `frames`; `self_imitation`: the replay's successful transitions
        (None: not used). With `progress_line` it is also said as one line."""
        now = time.perf_counter()
        t0, f0 = self._last_log
        m: dict[str, float] = {"fps": (frames - f0) / max(now - t0, 1e-9), "updates": updates,
                               "episodes": self.episodes, "buffer_size": buffer_size,
                               "success_rate": float(np.mean(self.success)) if self.success else 0.0}
        if self.returns:
            m["episode_return"] = float(np.mean(self.returns))
        if self_imitation is not None:
            m["self_imitation_transitions"] = self_imitation
        for term, window in self.terms.items():
            m[f"reward/{term}"] = float(np.mean(window))
        if self._acc_n:
            values = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=self.device)
                                  for v in self._acc.values()]).cpu()           # one host sync per log
            m.update({k: float(v) / self._acc_n for k, v in zip(self._acc, values)})
        self._acc, self._acc_n = {}, 0
        self._last_log = (now, frames)
        if progress_line:  # no TTY (cluster logs): one progress line per log
            done = 100.0 * frames / max(1, self.num_train_frames)
            episodes = (f"success {m['success_rate']:.2f}, return {m['episode_return']:.1f}" if self.returns
                        else "no episode finished yet")
            say(f"[native] {frames}/{self.num_train_frames} frames ({done:.0f} %), {m['fps']:.0f} fps, "
                f"{episodes}, ETA {duration(self.seconds_left(frames))}, device {self.device}")
        return m

    # -------------------------------------------------------------- the clock
    def seconds_left(self, frames: int) -> float:
        """Until num_train_frames at this session's mean rate (evaluations included), or until
        train_minutes runs out if that comes first."""
        done = frames - self._session_start[1]
        spent = time.perf_counter() - self._session_start[0]
        left = (self.num_train_frames - frames) * spent / done if done > 0 else float("inf")
        if self.train_minutes is not None:
            left = min(left, max(0.0, 60.0 * float(self.train_minutes) - self.wall_s()))
        return left

    def warn_if_long(self, frames: int) -> None:
        """Once, after this session's first evaluation: a run the measured rate says will take more
        than a few hours is told so, with the presets sized for a CPU."""
        if self._warned_long or frames <= self._session_start[1]:
            return
        self._warned_long = True
        left = self.seconds_left(frames)
        rate = (frames - self._session_start[1]) / max(1e-9, time.perf_counter() - self._session_start[0])
        if left > LONG_RUN_S:
            say(f"[native] note: at this rate ({rate:.0f} frames/s, evaluations included) the run needs about "
                f"{left / 3600:.0f} h more for "
                f"num_train_frames={self.num_train_frames:,} on {self.device}. Sized for a 2-core CPU: "
                "experiment=sac_stage2 (state, ~5 min), experiment=pixels_cpu_rl (pixels, 30 min budget); or set "
                "train_minutes=... to stop, evaluate and snapshot at a budget")
