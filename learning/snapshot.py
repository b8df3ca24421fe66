"""Atomic snapshot files and checked resume.

A snapshot is written to a temp file in the same directory, fsync'ed and os.replace'd, so
`latest_snapshot.pt` is always either the previous or the new complete file. Loading checks
the file and its compatibility with the live run BEFORE the trainer touches the run
directory, so a bad `resume=` fails without damaging the run it points at.
"""
from __future__ import annotations

import errno
import os
import random
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

FORMAT = "liftbase-native-snapshot"
VERSION = 1
LATEST = "latest_snapshot.pt"
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


def read_snapshot(resume: str | os.PathLike, key: str = "resume") -> tuple[Path, dict[str, Any]]:
    """Load and sanity-check a snapshot file; ValueError if truncated, corrupt or not ours."""
    path = resolve_snapshot_path(resume, key)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001  any unreadable file gets the same clear message
        raise SnapshotError(f"snapshot {path} is truncated or corrupt and cannot be loaded ({type(exc).__name__}: "
                         f"{exc}); pass another snapshot to {key}=") from exc
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
    path = resolve_snapshot_path(resume)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        return dict(payload["counters"])
    except Exception:  # noqa: BLE001  unreadable: read_snapshot will say why, with the full message
        return {}


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
