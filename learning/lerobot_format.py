"""The LeRobotDataset v3.0 format as liftbase writes and reads it: names, units, stats, checks.

No lerobot import: the format is written directly with pyarrow and PyAV (docs/usage.md says why).
Layout of a dataset directory (LeRobot's `CODEBASE_VERSION = "v3.0"`):

    meta/info.json                               codebase_version, robot_type, fps, features, templates
    meta/stats.json                              per feature: min, max, mean, std, count, q01..q99
    meta/tasks.parquet                           task string (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet     one row per episode: length, offsets, its own stats
    data/chunk-000/file-000.parquet              one row per frame, all episodes
    videos/observation.images.<cam>/chunk-000/file-000.mp4   all episodes, one after another

Units are the SO-101 follower's (`so101_follower`, `use_degrees=True`): the five arm joints in
degrees, the gripper 0..100 over its joint range (0 = the lower limit, closed).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.actions import joint_action
from envs.config import ConfigError

CODEBASE_VERSION = "v3.0"
ROBOT_TYPE = "so101_follower"
MOTORS = ("shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos",
          "gripper.pos")
DEFAULT_TASK = "Lift the red cube"
CHUNKS_SIZE, DATA_MB, VIDEO_MB = 1000, 100, 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
VIDEO_CODEC, PIX_FMT = "libsvtav1", "yuv420p"   # LeRobot's defaults (AV1, GOP 2, CRF 30)
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QKEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
INDEX_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def image_key(camera: str) -> str:
    return f"observation.images.{camera}"


class DatasetError(ConfigError):
    """A dataset that cannot be used: the message names the file and the feature."""


# ----------------------------------------------------------------------------- units
def to_follower(q: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Joint positions (..., 6) in rad -> the follower's units: degrees, gripper 0..100."""
    out = torch.rad2deg(q)
    out[..., 5] = (q[..., 5] - low[5]) / (high[5] - low[5]) * 100.0
    return out


def from_follower(v: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The follower's units (..., 6) -> joint positions in rad (the inverse of `to_follower`)."""
    out = torch.deg2rad(v)
    out[..., 5] = low[5] + v[..., 5] / 100.0 * (high[5] - low[5])
    return out


def joint_pos_action(v: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The follower's joint targets (..., 6) -> the task's joint_pos action in [-1, 1] (docs/task.md)."""
    return joint_action(from_follower(v, low, high), low, high)


# ----------------------------------------------------------------------------- features
def features(cameras: tuple[str, ...], image_size: int, fps: int, ee_delta: bool) -> dict[str, dict[str, Any]]:
    """info.json's `features`: the follower's state and action, the cameras as videos, liftbase's
    extras (`ee_delta`: the end-effector action when the actor produced one, `cube_pos`), the
    step's outcome (`next.*`) and the index columns."""
    def vec(n: int, names: tuple[str, ...]) -> dict[str, Any]:
        return {"dtype": "float32", "shape": [n], "names": list(names)}

    out: dict[str, dict[str, Any]] = {"observation.state": vec(6, MOTORS), "action": vec(6, MOTORS)}
    for cam in cameras:
        out[image_key(cam)] = {
            "dtype": "video", "shape": [image_size, image_size, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": image_size, "video.width": image_size, "video.codec": "av1",
                     "video.pix_fmt": PIX_FMT, "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": 3, "has_audio": False}}
    if ee_delta:
        out["ee_delta"] = vec(4, ("dx", "dy", "dz", "gripper"))
    out["cube_pos"] = vec(3, ("x", "y", "z"))
    out["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    out["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    out["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
    out["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for k in INDEX_KEYS[1:]:
        out[k] = {"dtype": "int64", "shape": [1], "names": None}
    return out


def info_json(feats: dict[str, dict[str, Any]], fps: int, episodes: int, frames: int) -> dict[str, Any]:
    return {"codebase_version": CODEBASE_VERSION, "robot_type": ROBOT_TYPE, "total_episodes": episodes,
            "total_frames": frames, "total_tasks": 1, "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_MB, "video_files_size_in_mb": VIDEO_MB, "fps": fps,
            "splits": {"train": f"0:{episodes}"}, "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if any(f["dtype"] == "video" for f in feats.values()) else None,
            "features": feats}


# ----------------------------------------------------------------------------- stats
def episode_stats(values: np.ndarray, image: bool = False) -> dict[str, Any]:
    """One episode's stats of a feature: values (T, D) or, for images, (T, H, W, 3) uint8 -> per
    channel, scaled to [0, 1] and shaped (3, 1, 1) as LeRobot keeps them."""
    if image:
        x = values.reshape(-1, 3)[:: max(1, values.shape[1] * values.shape[2] // 1024)].astype(np.float64) / 255.0
        shape: tuple[int, ...] = (3, 1, 1)
    else:
        x = values.reshape(len(values), -1).astype(np.float64)
        shape = (x.shape[1],)
    ints = values.dtype.kind in "iu" and not image
    s = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0)}
    s.update(zip(QKEYS, np.quantile(x, QUANTILES, axis=0)))
    out = {k: (v.astype(np.int64) if ints and k in ("min", "max") else v).reshape(shape).tolist() for k, v in s.items()}
    out["count"] = [len(values)]
    return out


def aggregate(per_episode: list[dict[str, Any]]) -> dict[str, Any]:
    """Dataset stats from episodes' stats: exact min, max, mean, std and count; the quantiles are
    the count-weighted mean of the episodes' (as LeRobot aggregates them)."""
    n = np.array([e["count"][0] for e in per_episode], np.float64)
    w = (n / n.sum()).reshape(-1, *([1] * np.asarray(per_episode[0]["mean"]).ndim))
    def arr(k: str) -> np.ndarray:
        return np.array([e[k] for e in per_episode], np.float64)

    mean = (w * arr("mean")).sum(0)
    var = (w * (arr("std") ** 2 + (arr("mean") - mean) ** 2)).sum(0)
    ints = isinstance(np.asarray(per_episode[0]["min"]).flat[0], np.integer)
    conv = (lambda a: a.astype(np.int64)) if ints else (lambda a: a)
    out = {"min": conv(arr("min").min(0)).tolist(), "max": conv(arr("max").max(0)).tolist(),
           "mean": mean.tolist(), "std": np.sqrt(var).tolist(), "count": [int(n.sum())]}
    out.update({q: (w * arr(q)).sum(0).tolist() for q in QKEYS})
    return out


# ----------------------------------------------------------------------------- checks
def read_info(root: Path) -> dict[str, Any]:
    """meta/info.json of a v3.0 dataset, or a DatasetError naming what is wrong."""
    path = root / "meta" / "info.json"
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset directory")
    if not path.is_file():
        raise DatasetError(f"{path}: missing; a LeRobotDataset v3.0 directory has meta/info.json")
    try:
        info = json.loads(path.read_text())
    except ValueError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise DatasetError(f"{path}: codebase_version={info.get('codebase_version')!r}; liftbase reads "
                           f"{CODEBASE_VERSION!r} (convert older datasets with lerobot's own converter)")
    for key in ("fps", "features", "data_path", "total_episodes"):
        if key not in info:
            raise DatasetError(f"{path}: key {key!r} missing")
    return info


def check_dataset(root: str | Path, fps: float, action_mode: str, cameras: tuple[str, ...], image_size: int,
                  pixels: bool) -> dict[str, Any]:
    """Everything the native engine's demo replay needs from the dataset at `root`, checked
    against the run's task before any simulator starts; returns its info.json.

    A DatasetError names the file and the feature: the layout (meta/info.json, the episode
    and data files, the videos), a missing feature, the fps (the control rate), an image size
    or an action space that does not match the task.
    """
    root = Path(root).expanduser()
    info = read_info(root)
    path = root / "meta" / "info.json"
    feats = info["features"]
    if not math.isclose(float(info["fps"]), fps, rel_tol=1e-6):
        raise DatasetError(f"{path}: fps={info['fps']} does not match the task's control rate {fps:g} Hz "
                           "(1 / task.frame_skip_dt)")

    def need(key: str, shape: list[int], why: str, dtype: tuple[str, ...] = ("float32",)) -> None:
        f = feats.get(key)
        if f is None:
            raise DatasetError(f"{path}: feature {key!r} missing: {why}")
        if list(f.get("shape", [])) != shape or f.get("dtype") not in dtype:
            raise DatasetError(f"{path}: feature {key!r} is {f.get('dtype')} {f.get('shape')}: {why} needs "
                               f"{'/'.join(dtype)} {shape}")

    need("observation.state", [6], "the six follower joint positions give the proprioception")
    if action_mode == "joint_pos":
        need("action", [6], "task.action_mode=joint_pos replays the six joint targets")
    elif "ee_delta" not in feats:
        raise DatasetError(f"{path}: feature 'ee_delta' missing: task.action_mode=ee_delta needs the 4 end-effector "
                           "actions; this dataset's actions are joint targets ('action'): use "
                           "task.action_mode=joint_pos")
    else:
        need("ee_delta", [4], "task.action_mode=ee_delta")
    need("next.reward", [1], "the demo replay stores rewards")
    need("next.done", [1], "episode ends", ("bool",))
    if not pixels:
        need("cube_pos", [3], "pixels=false observes the cube position")
    for cam in cameras if pixels else ():
        need(image_key(cam), [image_size, image_size, 3], f"the task observes rgb_{cam} at "
             f"{image_size}x{image_size} (image_size)", ("video",))
    for rel in ("meta/tasks.parquet", EPISODES_PATH, DATA_PATH.format(chunk_index=0, file_index=0)):
        if not (root / rel).is_file():
            raise DatasetError(f"{root / rel}: missing; expected in a LeRobotDataset v3.0 directory")
    for cam in cameras if pixels else ():
        rel = VIDEO_PATH.format(video_key=image_key(cam), chunk_index=0, file_index=0)
        if not (root / rel).is_file():
            raise DatasetError(f"{root / rel}: missing: the video of feature {image_key(cam)!r}")
    import pyarrow.parquet as pq

    table = pq.read_table(root / EPISODES_PATH)
    for col in table.column_names:
        if col.endswith(("/chunk_index", "/file_index")) and not col.startswith("meta/") and any(table[col].to_pylist()):
            raise DatasetError(f"{root / EPISODES_PATH}: column {col!r} names a second file; liftbase reads datasets "
                               "of one data file and one video file per camera (chunk-000/file-000)")
    return info
