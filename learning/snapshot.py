"""Atomic snapshot files, checked resume, and the snapshots of a run directory.

A snapshot is written to a temp file in the same directory, fsync'ed and os.replace'd, so
`latest_snapshot.pt` is always either the previous or the new complete file. Loading checks
the file and its compatibility with the live run BEFORE the trainer touches the run
directory, so a bad `resume=` fails without damaging the run it points at.

Integrity: torch.save writes a zip archive holding a CRC-32 of every part (the pickle and each
tensor's bytes), but torch.load never checks them, so a snapshot damaged on disk or in a copy
loads silently with wrong weights. `read_snapshot` checks every CRC (zipfile.testzip) before
loading. Chosen over a sha256 sidecar file: nothing new is written, so `atomic_save` stays a
single os.replace and no crash between two renames can leave a .pt and its checksum out of step
(a false alarm on a good snapshot); and every snapshot ever written, older runs' included, is
checked. CRC-32 catches every burst of up to 32 damaged bits and other damage with probability
1 - 2**-32; it is no defence against deliberate tampering, which is not what it is for. The
cost is one extra read of the file at load.
"""
from __future__ import annotations

import errno
import os
import random
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

FORMAT = "liftbase-native-snapshot"
VERSION = 1
LATEST = "latest_snapshot.pt"
BEST = "best_snapshot.pt"  # the best on the validation episodes (num_val_episodes), agent only
# Keys that define tensor shapes: a resumed run keeps the snapshot's values for these.
SHAPE_KEYS = ("pixels", "frame_stack", "num_train_envs", "replay.size", "agent.feature_dim", "agent.hidden_dim",
              "agent.normalize_low_dim", "agent.critic_layer_norm")


class SnapshotError(ValueError):
    """A `resume=` target that cannot be used (unreadable, not ours, or incompatible with the run)."""


class SnapshotNotFound(SnapshotError, FileNotFoundError):
    """A `resume=` path that does not exist or holds no snapshot."""


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a same-directory temp file, fsync, then os.replace (never a half-written `path`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(str(path.parent), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def prune_snapshots(snap_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` numbered snapshots (`<frames>_snapshot.pt`); 0 keeps all.
    `latest_snapshot.pt` is never touched. Returns the deleted paths."""
    if keep <= 0:
        return []
    numbered = sorted((p for p in snap_dir.glob("*_snapshot.pt") if p.name.split("_", 1)[0].isdigit()),
                      key=lambda p: int(p.name.split("_", 1)[0]))
    gone = numbered[:-keep]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def resolve_snapshot_path(resume: str | os.PathLike, key: str = "resume") -> Path:
    """A run dir (its snapshots/latest_snapshot.pt), a snapshots dir, or a .pt file. `key` is the
    option the path came from (`resume`, or `checkpoint` in scripts/eval.py), for the messages."""
    p = Path(resume).expanduser()
    if not p.exists():
        raise SnapshotNotFound(f"{key}={str(resume)!r}: no such file or directory")
    if p.is_dir():
        for cand in (p / "snapshots" / LATEST, p / LATEST):
            if cand.is_file():
                return cand
        raise SnapshotNotFound(f"{key}={str(resume)!r} is a directory without snapshots/{LATEST}")
    return p


def integrity_problem(path: Path) -> str | None:
    """What is wrong with the file's own checksums (the CRC-32 of each part of torch's zip
    archive), or None when they all match. A file that is not a zip archive (torch's legacy
    format, or one cut short before its zip directory) has no checksums: None, and torch.load
    says whether it loads."""
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        return f"its zip structure is damaged ({type(exc).__name__}: {exc})"
    except Exception as exc:  # noqa: BLE001  zlib/struct errors of a damaged header
        return f"its zip structure is damaged ({type(exc).__name__}: {exc})"
    if bad is not None:
        return f"the CRC-32 checksum of its part {bad!r} does not match the bytes on disk"
    return None


def _numbered(snap_dir: Path) -> list[tuple[int, Path]]:
    """(frames, path) of the `<frames>_snapshot.pt` files in snap_dir, newest first."""
    found = [(int(p.name.split("_", 1)[0]), p) for p in snap_dir.glob("*_snapshot.pt")
             if p.name.split("_", 1)[0].isdigit()]
    return sorted(found, reverse=True)


def previous_good_snapshot(path: Path) -> Path | None:
    """The newest numbered snapshot beside `path` that passes the integrity check: older than
    `path` when it is itself a numbered one, any of them for latest_snapshot.pt."""
    head = path.name.split("_", 1)[0]
    below = int(head) if head.isdigit() and path.name.endswith("_snapshot.pt") else None
    for frames, cand in _numbered(path.parent):
        if cand == path or (below is not None and frames >= below):
            continue
        if integrity_problem(cand) is None:
            return cand
    return None


def _offer(path: Path, key: str) -> str:
    prev = previous_good_snapshot(path)
    if prev is None:
        return f"no other snapshot in {path.parent} passes the check; pass another snapshot to {key}="
    return f"resume from the previous snapshot that passes the check: {key}={prev}"


def read_snapshot(resume: str | os.PathLike, key: str = "resume") -> tuple[Path, dict[str, Any]]:
    """Load and sanity-check a snapshot file; ValueError if truncated, corrupt (its checksums do not
    match: see the module's docstring) or not ours. The message offers the previous good snapshot."""
    path = resolve_snapshot_path(resume, key)
    problem = integrity_problem(path)
    if problem is not None:
        raise SnapshotError(f"snapshot {path} is corrupt: {problem} (it was damaged after it was written); "
                            + _offer(path, key))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001  any unreadable file gets the same clear message
        raise SnapshotError(f"snapshot {path} is truncated or corrupt and cannot be loaded ({type(exc).__name__}: "
                         f"{exc}); {_offer(path, key)}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise SnapshotError(f"snapshot {path} is truncated or corrupt: not a native-engine snapshot (format={found!r})")
    if payload.get("version") != VERSION:
        raise SnapshotError(f"snapshot {path} has version {payload.get('version')!r}; this engine reads {VERSION}")
    for key in ("config", "counters", "agent", "obs_spec", "agent_name"):
        if key not in payload:
            raise SnapshotError(f"snapshot {path} is incomplete: missing '{key}'")
    return path, payload


def snapshot_counters(resume: str | os.PathLike) -> dict[str, Any]:
    """The counters of a snapshot without reading its tensors into memory (memory-mapped)."""
    try:
        payload = torch.load(resolve_snapshot_path(resume), map_location="cpu", weights_only=False, mmap=True)
        return dict(payload["counters"])
    except Exception:  # noqa: BLE001  unreadable: read_snapshot will say why, with the full message
        return {}


def newest_snapshot(snap_dir: Path) -> tuple[Path, int] | None:
    """(path, frames) of the newest complete snapshot in snap_dir, or None. Snapshots are written
    atomically, so one that exists and whose counters load is complete; on equal frames
    latest_snapshot.pt wins (it holds the replay). Cheap: only the counters are read."""
    found: list[tuple[int, int, Path]] = []
    latest = snap_dir / LATEST
    if latest.is_file():
        frames = snapshot_counters(latest).get("frames")
        if frames is not None:
            found.append((int(frames), 1, latest))
    for frames, p in _numbered(snap_dir) if snap_dir.is_dir() else []:
        if found and frames <= found[0][0]:
            break
        if snapshot_counters(p).get("frames") is not None:
            found.append((frames, 0, p))
            break
    if not found:
        return None
    frames, _, path = max(found)
    return path, frames


def merge_resume_config(live: DictConfig, saved: Mapping[str, Any], path: Path) -> DictConfig:
    """Live config wins, except SHAPE_KEYS (taken from the snapshot); a different agent is refused."""
    saved_cfg = OmegaConf.create(dict(saved))
    live_env, saved_env = OmegaConf.select(live, "env.name"), OmegaConf.select(saved_cfg, "env.name")
    if saved_env is not None and live_env != saved_env:
        warnings.warn(f"resume: {path} was trained with env={saved_env} and continues with env={live_env}; "
                      "the backends' physics differ, so its curve will not be one run", stacklevel=2)
    live_name, saved_name = OmegaConf.select(live, "agent.name"), OmegaConf.select(saved_cfg, "agent.name")
    if live_name != saved_name:
        raise SnapshotError(f"cannot resume {path}: it was trained with agent.name={saved_name!r} but the config "
                         f"has agent.name={live_name!r}")
    merged = live.copy()
    for key in SHAPE_KEYS:
        old = OmegaConf.select(saved_cfg, key)
        if old is not None and OmegaConf.select(live, key) != old:
            warnings.warn(f"resume: keeping {key}={old!r} from {path} (it defines tensor shapes); "
                          f"the config's {OmegaConf.select(live, key)!r} is ignored")
            OmegaConf.update(merged, key, old, merge=False)
    return merged


@dataclass(frozen=True)
class Resume:
    """A snapshot a run continues from: where it is and what it holds."""

    path: Path
    payload: dict[str, Any]


def load_resume(cfg: DictConfig) -> tuple[DictConfig, Resume | None]:
    """With `resume=`, the snapshot read and the config merged with it (`merge_resume_config`);
    the config unchanged and None without. Raises SnapshotError for a snapshot that cannot be used."""
    if not cfg.resume:
        return cfg, None
    path, payload = read_snapshot(cfg.resume)
    return merge_resume_config(cfg, payload["config"], path), Resume(path, payload)


def check_obs_spec(saved: Mapping[str, Any], live: Mapping[str, Any], path: Path) -> None:
    if dict(saved) != dict(live):
        raise SnapshotError(f"cannot resume {path}: it was trained on observations {dict(saved)} but the env now "
                         f"gives {dict(live)}")


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class DiskFull(OSError):
    """A write failed for lack of space; the message says what survived and how to go on."""


def disk_full(exc: BaseException) -> bool:
    """Is ENOSPC anywhere in this exception's chain? (torch.save reports it as a RuntimeError
    about an unexpected file position, with the OSError only as its context)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def free_space(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 2**20:.0f} MiB"
    except OSError:
        return "unknown space"


class RunSnapshots:
    """The snapshots/ of one run directory.

    `save` writes `<frames>_snapshot.pt` (agent only: small) and `latest_snapshot.pt` (with the
    replay when asked), then prunes the numbered ones; a full disk becomes one DiskFull naming
    the snapshot a resume can still use. `newest` is that snapshot: in snapshots/, else the one
    the run was resumed from (a resume into a new directory that wrote none yet).
    """

    def __init__(self, work_dir: Path, keep: int, resumed_from: Path | None, resumed_at: int | None,
                 best: list[float] | None = None) -> None:
        self.dir = Path(work_dir) / "snapshots"
        self.work_dir = Path(work_dir)
        self.keep = keep
        self.resumed_from, self.resumed_at = resumed_from, resumed_at
        self.best = best  # [validation success rate, mean return] of best_snapshot.pt, None before one

    def _carry_best(self) -> None:
        """A run resumed into a new directory keeps the best snapshot it was resumed with."""
        old = self.resumed_from.parent / BEST if self.resumed_from is not None else None
        if old is not None and old.is_file() and not (self.dir / BEST).exists() and old.parent != self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(old, self.dir / BEST)

    def offer_best(self, score: list[float], payload: Callable[[bool], dict[str, Any]]) -> bool:
        """Write best_snapshot.pt (agent only) when `score` [success rate, mean return] on the
        validation episodes beats the best so far (ties keep the earlier one)."""
        self._carry_best()
        if self.best is not None and tuple(score) <= tuple(self.best):
            return False
        self.best = list(score)
        atomic_save(payload(False), self.dir / BEST)
        return True

    def save(self, payload: Callable[[bool], dict[str, Any]], frames: int, with_replay: bool) -> Path:
        """`payload(with_replay)` builds what is written; returns the path of latest_snapshot.pt."""
        latest = self.dir / LATEST
        self._carry_best()
        try:
            atomic_save(payload(False), self.dir / f"{frames}_snapshot.pt")
            atomic_save(payload(with_replay), latest)
        except Exception as exc:
            if not disk_full(exc):
                raise
            found = self.newest()  # what a resume can use: never a snapshot that is not there
            kept = (f"the previous snapshot {found[0]} ({found[1]} frames) is intact. Free some space, then resume "
                    f"with resume={found[0]}" if found else
                    "no complete snapshot exists, so the run has to start again once there is space")
            raise DiskFull(f"no space left on the device writing the snapshot at {frames} frames in {self.dir} "
                           f"({free_space(self.dir)} free); {kept}") from None
        prune_snapshots(self.dir, self.keep)
        return latest

    def log_disk_full(self, exc: OSError, frames: int, save: Callable[[], Path]) -> DiskFull:
        """ENOSPC writing a log: try `save()`, a snapshot of this point, then end the run as a full
        disk at the snapshot does (one line: the directory, its free space, the snapshot to resume from)."""
        where = Path(exc.filename) if exc.filename else self.work_dir
        try:
            save()
            tried = f"a snapshot at {frames} frames was written"
        except DiskFull:
            tried = f"the snapshot at {frames} frames did not fit either"
        return DiskFull(f"no space left on the device writing {where.name} in {where.parent} at {frames} frames "
                        f"({free_space(where.parent)} free); {tried}. Free some space, then " + (
                            f"resume with resume={found[0]} ({found[1]} frames)" if (found := self.newest())
                            else "start the run again: no complete snapshot exists"))

    def newest(self) -> tuple[Path, int] | None:
        """(path, frames) of the newest complete snapshot a resume can use."""
        found = newest_snapshot(self.dir)
        if found is None and self.resumed_from is not None and self.resumed_from.is_file():
            return self.resumed_from, int(self.resumed_at or 0)
        return found
