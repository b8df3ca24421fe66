"""What a run owns on disk: its saved composition, a record of the machine it ran on, an
exclusive lock, and no stale temp files.

Hydra's own `.hydra/` output is switched off (`hydra.output_subdir: null` in conf/train.yaml):
Hydra writes it before any project code runs, so a resume in the same directory would overwrite
the composition it is about to continue. The project writes the same three files itself, once,
after validation; a resume reads them and never rewrites them.
"""
from __future__ import annotations

import datetime
import fcntl
import os
import platform
import shutil
import socket
import time
import warnings
from pathlib import Path
from typing import IO, Any

import psutil
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from envs.config import ConfigError
from learning.console import say
from learning.snapshot import DiskFull, disk_full, free_space  # noqa: F401  (re-exported)

SAVED = ".hydra"                       # where Hydra kept it: analysis/ and users know the place
LOCK = ".lock"
MACHINE = "machine.yaml"               # where each session of the run ran: a list, one entry per start
HYDRA_ONLY = {"train.log", "eval.log", "record_expert.log"}  # what Hydra writes before project code
# What shows that a directory already holds a run (of either engine).
RUN_MARKS = (f"{SAVED}/config.yaml", "snapshots", "train.csv", "eval.csv", "config_resolved.yaml")


def saved_overrides(run_dir: Path) -> list[str]:
    f = run_dir / SAVED / "overrides.yaml"
    return [str(x) for x in (yaml.safe_load(f.read_text()) or [])] if f.is_file() else []


def save_composition(cfg: DictConfig, work_dir: Path, overrides: list[str], hydra_cfg: Any = None) -> None:
    """Write `.hydra/{config,overrides,hydra}.yaml` unless the run already has them (a resume in
    place); a resume's own overrides are appended to `.hydra/resumes.yaml` instead."""
    d = work_dir / SAVED
    d.mkdir(parents=True, exist_ok=True)
    if (d / "config.yaml").is_file():
        log = d / "resumes.yaml"
        past = yaml.safe_load(log.read_text()) if log.is_file() else None
        entry = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "overrides": list(overrides)}
        log.write_text(yaml.safe_dump([*(past or []), entry], sort_keys=False))
        return
    (d / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (d / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    if hydra_cfg is not None:
        (d / "hydra.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))


def cpu_model() -> str:
    """The CPU's model name ('AMD EPYC 7B13'), as /proc/cpuinfo gives it where there is one."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def record_machine(work_dir: Path, device: str) -> dict[str, Any]:
    """Append this session's machine to the run's machine.yaml (a resume adds an entry): the CPU,
    its cores, memory, the GPU trained on if any (`device`: the config's, auto included), torch and
    the start time. The results page (`analysis.results`) names the machine from it."""
    cuda = torch.cuda.is_available() and (device == "auto" or device.startswith("cuda"))
    device = torch.device("cuda" if device == "auto" else device) if cuda else torch.device("cpu")
    entry = {"started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
             "cpu": cpu_model(), "cores": os.cpu_count(),
             "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
             "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
             "device": str(device), "torch": str(torch.__version__), "python": platform.python_version(),
             "platform": platform.platform()}
    path = work_dir / MACHINE
    past = yaml.safe_load(path.read_text()) if path.is_file() else None
    path.write_text(yaml.safe_dump([*(past or []), entry], sort_keys=False))
    return entry


def run_marks(work_dir: Path) -> list[str]:
    """The RUN_MARKS present in work_dir: non-empty when it already holds a run."""
    return [m for m in RUN_MARKS if (work_dir / m).exists()]


def claim_run_dir(work_dir: Path, resumed_from: Path | None, overwrite: bool) -> bool:
    """A fresh run (or a resume of another run) into a directory that already holds a run is refused
    before anything is written: it would overwrite that run's snapshots, keep its saved composition
    and interleave both runs' rows in train.csv. A resume of the run in that very directory is its
    owner. Returns True when overwrite=true is to clear the old run (`clear_run_dir`, once this
    process holds the lock); reads only."""
    found = run_marks(work_dir)
    if not found or (resumed_from is not None and resumed_from.resolve() == work_dir.resolve()):
        return False
    holder = RunLock.holder(work_dir)
    if holder is not None:  # a live run: the lock's own message, overwrite or not
        raise ConfigError(f"run directory {str(work_dir)!r} is in use by {holder}: wait for that run to end, or give "
                          "this one its own directory (hydra.run.dir=...)")
    if overwrite:
        return True
    raise ConfigError(f"run directory {str(work_dir)!r} already holds a run ({', '.join(found)}), and this one is "
                      "not a resume of it: a new run there would overwrite its snapshots and mix both runs' rows. "
                      f"To continue that run: resume={work_dir}; to replace it: overwrite=true (its files are "
                      "deleted first); or give this run its own directory (hydra.run.dir=...)")


def clear_run_dir(work_dir: Path) -> int:
    """overwrite=true: delete everything in work_dir but the lock this process holds; Hydra's
    train.log, open for this run, is emptied instead. Deleted, not moved aside: a copy kept inside
    the directory would be found as a run by analysis/, and one beside it would write where the
    user did not ask. Returns the number of entries removed."""
    removed = 0
    for entry in sorted(work_dir.iterdir()):
        if entry.name == LOCK:
            continue
        if entry.name in HYDRA_ONLY and entry.is_file():
            os.truncate(entry, 0)
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed += 1
    say(f"[run] overwrite=true: deleted the earlier run in {work_dir} ({removed} entries)")
    return removed


class RunLock:
    """An exclusive flock on `<run>/.lock` naming its holder. The kernel drops it when the process
    dies, so a lock left by a killed run is taken over (with a warning naming the old holder)."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / LOCK
        self._f: IO[str] | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise ConfigError(f"run directory {str(self.path.parent)!r} is in use by {holder}: wait for that run "
                              "to end, or give this one its own directory (hydra.run.dir=...)") from None
        f.seek(0)
        stale = f.read().strip()
        if stale:
            warnings.warn(f"run directory {self.path.parent}: taking over the lock of {stale}, which no longer "
                          "holds it (the process ended without releasing it)", stacklevel=2)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        f.flush()
        self._f = f
        return self

    @staticmethod
    def holder(work_dir: Path) -> str | None:
        """Who holds the lock of work_dir now (its text), or None; writes nothing."""
        path = work_dir / LOCK
        try:
            f = open(path)
        except OSError:
            return None
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return f.read().strip() or "another process"
            fcntl.flock(f, fcntl.LOCK_UN)
        return None

    def release(self) -> None:
        if self._f is not None:
            self._f.seek(0)
            self._f.truncate()
            self._f.close()  # closing drops the flock
            self._f = None


def remove_if_untouched(work_dir: Path | str, also: tuple[str, ...] = ()) -> None:
    """After a refusal: remove the run directory if it holds nothing but what Hydra wrote (and
    `also`: the `.hydra/` that Hydra writes into the eval scripts' output directories)."""
    try:
        entries = set(os.listdir(work_dir))
    except OSError:
        return
    if entries <= HYDRA_ONLY | set(also):
        shutil.rmtree(work_dir, ignore_errors=True)


def remove_stale_temp_files(work_dir: Path) -> list[Path]:
    """Temp files of interrupted snapshot writes (`.<name>.pt.<random>.tmp`): a SIGKILL during a
    write leaves one behind, as large as the snapshot. Removed at every start; returns them."""
    found = sorted((work_dir / "snapshots").glob(".*.pt.*.tmp")) if (work_dir / "snapshots").is_dir() else []
    for p in found:
        p.unlink(missing_ok=True)
    if found:
        say(f"[run] removed {len(found)} temp file(s) of interrupted snapshot writes in {work_dir / 'snapshots'}")
    return found
