"""What a run prints as it goes: `say` (the console and, under Hydra, the run's `train.log`,
tagged with the job in a sweep) and the one-line `[eval]` summary."""
from __future__ import annotations

import errno
import logging
import os
import sys
import time
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

_log = logging.getLogger("liftbase")
PROGRESS_S = 30.0  # a phase of minutes says how far along it is this often


def _hydra_job() -> tuple[bool, str]:
    """(inside a Hydra app, '[job #n: overrides] ' when it is one job of a multirun, else ''). A
    launcher's worker runs one job after another: the tag is the current job's."""
    try:
        if not HydraConfig.initialized():
            return False, ""
        hc = HydraConfig.get()
        return True, (_cached_tag(hc.job.num, str(hc.sweep.dir)) if hc.mode == RunMode.MULTIRUN else "")
    except Exception:  # noqa: BLE001
        return False, ""


@lru_cache(maxsize=4)
def _cached_tag(num: int, sweep_dir: str) -> str:
    """The tag of job `num` of the sweep in `sweep_dir`, read once per job."""
    return _job_tag(HydraConfig.get())


def _job_tag(hc: Any) -> str:
    """'[job 2/4 reward_version=v19 seed=2] ': the job's values of the swept keys, read from the
    sweep's multirun.yaml (the overrides with a list of values); all its overrides if unreadable."""
    mine = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in hc.overrides.task if "=" in o}
    try:
        spec = yaml.safe_load((Path(hc.sweep.dir) / "multirun.yaml").read_text())["hydra"]["overrides"]["task"]
        swept = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in spec if "=" in o}
        swept = {k: v for k, v in swept.items() if "," in v or v.startswith(("range(", "choice(", "glob("))}
        total = 1
        for v in swept.values():
            total = total * (v.count(",") + 1) if "," in v and "(" not in v else 0
        keys = [k for k in mine if k.lstrip("+~") in {s.lstrip("+~") for s in swept}]
    except Exception:  # noqa: BLE001  no multirun.yaml (a custom sweeper): name every override
        total, keys = 0, list(mine)
    of = f"/{total}" if total else ""
    return f"[job {hc.job.num + 1}{of} " + " ".join(f"{k}={mine[k]}" for k in keys) + "] "


def say(message: str) -> None:
    """One line of a run's story. Under Hydra it goes through logging: the console and the run's
    `train.log`, each line of a sweep job tagged with the job; in a plain Python call, stdout."""
    hydra, tag = _hydra_job()
    if hydra:
        for line in message.splitlines() or [""]:
            _log.info(tag + line if tag else line)
    else:
        print(message, flush=True)


_log_file_full: OSError | None = None


def watch_log_files() -> None:
    """On a full disk, logging's FileHandler (Hydra's train.log) prints '--- Logging error ---' and
    a traceback for every line, and the run goes on. Instead the first ENOSPC is kept for
    `log_file_full`, that file stops being written (the console still shows every line), and the
    run's next metrics write raises it, ending the run as any other full-disk write does."""
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.FileHandler) and not getattr(h, "_liftbase_watched", False):
            h._liftbase_watched = True  # type: ignore[attr-defined]
            h.handleError = partial(_file_handler_error, h)  # type: ignore[method-assign]


def _file_handler_error(handler: logging.FileHandler, record: logging.LogRecord) -> None:
    global _log_file_full
    exc = sys.exc_info()[1]
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        if _log_file_full is None:
            _log_file_full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), handler.baseFilename)
        handler.setLevel(logging.CRITICAL + 1)
        return
    logging.FileHandler.handleError(handler, record)


def log_file_full() -> OSError | None:
    """The ENOSPC a watched log file met (`watch_log_files`), or None."""
    return _log_file_full


def _figures(success: float, ret: float | None = None, length: float | None = None, z: float | None = None) -> str:
    """'success 90 %, return 1901, length 38, max cube z 0.141 m' (absent figures left out)."""
    parts = [f"success {100 * success:.0f} %"]
    parts += [f"return {ret:.0f}"] if ret is not None else []
    parts += [f"length {length:.0f}"] if length is not None else []
    parts += [f"max cube z {z:.3f} m"] if z is not None else []
    return ", ".join(parts)


def eval_line(metrics: Mapping[str, float], frames: int, episodes: int) -> str:
    """'[eval] 15,000 frames, 20 episodes: success 90 %, return 1901, length 38, max cube z 0.141 m'."""
    figures = _figures(metrics.get("eval/success_rate", 0.0), metrics.get("eval/episode_reward"),
                       metrics.get("eval/episode_length"), metrics.get("eval/max_cube_z"))
    wall = metrics.get("eval/wall_s")
    when = f" ({duration(wall)} into the run)" if wall is not None else ""
    return f"[eval] {frames:,} frames, {episodes} episode{'s' * (episodes != 1)}: {figures}{when}"


def duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "unknown"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


@contextmanager
def phase(what: str) -> Iterator[None]:
    """Say what a wait is for before it starts and how long it took after: '<what> ...', then
    '<what>: done in 12 s'."""
    say(f"{what} ...")
    t0 = time.perf_counter()
    yield
    say(f"{what}: done in {duration(time.perf_counter() - t0)}")
