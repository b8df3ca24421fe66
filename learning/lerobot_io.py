"""Writing and reading LeRobotDataset v3.0 directories (learning.lerobot_format) with pyarrow and PyAV.

`DatasetWriter` appends whole episodes: each goes straight into one open parquet writer and one
open video container per camera, so memory stays flat however many episodes are written; only
each episode's small stats dict is kept for the metadata written at `close`.
`read_episodes` gives the episodes back (frames decoded from the videos), and `dataset_demos`
turns them into the native engine's demo replay.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from learning.lerobot_format import (
    DATA_PATH,
    DEFAULT_TASK,
    EPISODES_PATH,
    INDEX_KEYS,
    PIX_FMT,
    VIDEO_CODEC,
    VIDEO_PATH,
    DatasetError,
    aggregate,
    episode_stats,
    features,
    image_key,
    info_json,
)

os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder's banner: errors only


def _arrow_type(f: Mapping[str, Any]) -> pa.DataType:
    scalar = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}[f["dtype"]]
    return scalar if f["shape"] == [1] else pa.list_(scalar, f["shape"][0])


def _hf_type(f: Mapping[str, Any]) -> dict[str, Any]:
    value = {"dtype": f["dtype"], "_type": "Value"}
    return value if f["shape"] == [1] else {"feature": value, "length": f["shape"][0], "_type": "List"}


class DatasetWriter:
    """A LeRobotDataset v3.0 at `root` (created; must not exist or be empty), episode by episode.

    `add_episode(columns, images)`: columns {feature: (T, ...) array} for every non-video feature
    except the index columns (written here), images {camera: (T, H, W, 3) uint8}.
    """

    def __init__(self, root: str | Path, fps: int, cameras: tuple[str, ...], image_size: int, ee_delta: bool,
                 task: str = DEFAULT_TASK) -> None:
        self.root, self.fps, self.cameras, self.task = Path(root), int(fps), tuple(cameras), task
        if self.root.exists() and any(self.root.iterdir()):
            raise DatasetError(f"out={str(self.root)!r} is invalid: the directory exists and is not empty")
        self.features = features(self.cameras, image_size, self.fps, ee_delta)
        self.columns = [k for k, f in self.features.items() if f["dtype"] != "video"]
        self.schema = pa.schema([(k, _arrow_type(self.features[k])) for k in self.columns], metadata={
            "huggingface": json.dumps({"info": {"features": {k: _hf_type(self.features[k]) for k in self.columns}}})})
        data = self.root / DATA_PATH.format(chunk_index=0, file_index=0)
        data.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(data, self.schema)
        self.videos: dict[str, Any] = {}
        for cam in self.cameras:
            import av

            path = self.root / VIDEO_PATH.format(video_key=image_key(cam), chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(path), "w")
            stream = container.add_stream(VIDEO_CODEC, rate=self.fps, options={"g": "2", "crf": "30"})
            stream.width = stream.height = image_size
            stream.pix_fmt = PIX_FMT
            self.videos[cam] = (container, stream)
        self.episodes: list[dict[str, Any]] = []
        self.frames = 0

    def add_episode(self, columns: Mapping[str, np.ndarray], images: Mapping[str, np.ndarray]) -> int:
        """Append one episode; returns its episode_index."""
        ep, t = len(self.episodes), len(columns["observation.state"])
        frame = np.arange(t, dtype=np.int64)
        cols = dict(columns)
        cols.update({"timestamp": (frame / self.fps).astype(np.float32), "frame_index": frame,
                     "episode_index": np.full(t, ep, np.int64), "index": frame + self.frames,
                     "task_index": np.zeros(t, np.int64)})
        arrays = []
        for k in self.columns:
            v = np.asarray(cols[k])
            typ = self.schema.field(k).type
            if pa.types.is_fixed_size_list(typ):
                flat = pa.array(v.astype(typ.value_type.to_pandas_dtype()).reshape(-1), typ.value_type)
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, typ.list_size))
            else:
                arrays.append(pa.array(v.reshape(-1).astype(typ.to_pandas_dtype()), typ))
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        row: dict[str, Any] = {"episode_index": ep, "tasks": [self.task], "length": t, "data/chunk_index": 0,
                               "data/file_index": 0, "dataset_from_index": self.frames,
                               "dataset_to_index": self.frames + t}
        stats = {k: episode_stats(np.asarray(cols[k]).reshape(t, -1)) for k in self.columns}
        for cam, (container, stream) in self.videos.items():
            import av

            key = image_key(cam)
            for i, img in enumerate(images[cam]):
                f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                f.pts = self.frames + i                 # time base 1/fps: frame n at n / fps
                for packet in stream.encode(f):
                    container.mux(packet)
            row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                        f"videos/{key}/from_timestamp": self.frames / self.fps,
                        f"videos/{key}/to_timestamp": (self.frames + t) / self.fps})
            stats[key] = episode_stats(np.asarray(images[cam]), image=True)
        row.update({f"stats/{k}/{s}": v for k, st in stats.items() for s, v in st.items()})
        self.episodes.append(row)
        self.frames += t
        return ep

    def close(self) -> dict[str, Any]:
        """Flush the videos and the data file, write the metadata; returns info.json's contents."""
        import pandas as pd

        self.writer.close()
        for container, stream in self.videos.values():
            for packet in stream.encode():
                container.mux(packet)
            container.close()
        meta = self.root / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        info = info_json(self.features, self.fps, len(self.episodes), self.frames)
        (meta / "info.json").write_text(json.dumps(info, indent=4))
        pd.DataFrame({"task_index": [0]}, index=pd.Index([self.task])).to_parquet(meta / "tasks.parquet")
        keys = [*self.columns, *(image_key(c) for c in self.cameras)]
        stats = {k: aggregate([{s: e[f"stats/{k}/{s}"] for s in ("min", "max", "mean", "std", "count", "q01",
                                                                   "q10", "q50", "q90", "q99")}
                                for e in self.episodes]) for k in keys} if self.episodes else {}
        (meta / "stats.json").write_text(json.dumps(stats, indent=4))
        for e in self.episodes:
            e.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        pq.write_table(pa.Table.from_pylist(self.episodes), self.root / EPISODES_PATH)
        return info


# ----------------------------------------------------------------------------- reading
def _decode(path: Path) -> Iterator[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def read_episodes(root: str | Path, cameras: tuple[str, ...], columns: tuple[str, ...]
                  ) -> Iterator[dict[str, np.ndarray]]:
    """The dataset's episodes in order, one at a time: {column: (T, ...)} and, per camera,
    {observation.images.<cam>: (T, H, W, 3) uint8} decoded from its video.

    Frames are taken from each video by their timestamps (the episode's from_timestamp plus
    frame_index / fps), so episodes may sit anywhere in the video file.
    """
    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    fps = float(info["fps"])
    eps = pq.read_table(root / EPISODES_PATH).to_pylist()
    data_path = root / DATA_PATH.format(chunk_index=0, file_index=0)
    table = pq.read_table(data_path)
    for k in (*columns, *INDEX_KEYS[1:3]):
        if k not in table.column_names:
            raise DatasetError(f"{data_path}: column {k!r} missing")
    decoders = {c: _decode(root / VIDEO_PATH.format(video_key=image_key(c), chunk_index=0, file_index=0))
                for c in cameras}
    cursor = {c: 0 for c in cameras}                    # frames of each video consumed so far
    for e in eps:
        files = [k for k in e if k.endswith(("/chunk_index", "/file_index")) and not k.startswith("meta/") and e[k]]
        if files:
            raise DatasetError(f"{root / EPISODES_PATH}: episode {e['episode_index']} has {files[0]}={e[files[0]]}; "
                               "liftbase reads datasets of one data file and one video file per camera "
                               "(chunk-000/file-000)")
        lo, hi = int(e["dataset_from_index"]), int(e["dataset_to_index"])
        rows = table.slice(lo, hi - lo)
        out = {k: np.asarray(rows.column(k).to_pylist()) for k in (*columns, "frame_index", "episode_index")}
        for c in cameras:
            key = image_key(c)
            first = round(float(e[f"videos/{key}/from_timestamp"]) * fps)
            if first < cursor[c]:
                raise DatasetError(f"{root / EPISODES_PATH}: episode {e['episode_index']} of {key!r} starts "
                                   "before the previous one ends; liftbase reads videos front to back")
            while cursor[c] < first:
                next(decoders[c])
                cursor[c] += 1
            frames = [next(decoders[c], None) for _ in range(hi - lo)]
            if any(f is None for f in frames):
                raise DatasetError(f"{root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)}: "
                                   f"fewer frames than episode {e['episode_index']} needs")
            cursor[c] += hi - lo
            out[key] = np.stack(frames)
        yield out


def _euler(rot: torch.Tensor) -> torch.Tensor:
    """(T, 3, 3) rotation -> (T, 3) roll, pitch, yaw (extrinsic xyz), as envs.geometry.quat_to_euler."""
    roll = torch.atan2(rot[:, 2, 1], rot[:, 2, 2])
    pitch = torch.asin((-rot[:, 2, 0]).clamp(-1.0, 1.0))
    yaw = torch.atan2(rot[:, 1, 0], rot[:, 0, 0])
    return torch.stack([roll, pitch, yaw], 1)


def dataset_demos(root: str | Path, spec: Mapping[str, Any], action_mode: str, fps: float, cube_half_size: float,
                  joint_low: torch.Tensor, joint_high: torch.Tensor) -> list[dict[str, Any]]:
    """A (checked, learning.lerobot_format.check_dataset) dataset's episodes as the native engine's
    demo episodes: observations rebuilt for the keys of `spec` from the follower state (joint
    positions; joint velocities by finite differences at `fps`; the TCP pose by forward kinematics),
    the cameras and `cube_pos`; actions in the task's action_mode, in [-1, 1]."""
    from envs.kinematics import ArmKinematics
    from learning.lerobot_format import from_follower, joint_pos_action

    fk = ArmKinematics()
    cams = tuple(k[len("rgb_"):] for k in spec if k.startswith("rgb_"))
    act_key = "action" if action_mode == "joint_pos" else "ee_delta"
    feats = json.loads((Path(root) / "meta" / "info.json").read_text())["features"]
    cols = ("observation.state", act_key, "next.reward", "next.done",
            *(k for k in ("next.success", "cube_pos") if k in feats))
    lo, hi = joint_low.cpu().float(), joint_high.cpu().float()
    out = []
    for e in read_episodes(root, cams, cols):
        q = from_follower(torch.as_tensor(e["observation.state"], dtype=torch.float32), lo, hi)  # (T, 6) rad
        qvel = torch.zeros_like(q)
        qvel[1:] = (q[1:] - q[:-1]) * fps
        kin = fk(q)
        obs: dict[str, torch.Tensor] = {}
        cube = torch.as_tensor(e["cube_pos"], dtype=torch.float32) if "cube_pos" in e else None
        if "low_dim_state" in spec:
            parts = [q, qvel, kin.tcp_pos, _euler(kin.gripper_rot)]
            if spec["low_dim_state"].frame_shape[0] == 21:
                parts.append(cube)
            obs["low_dim_state"] = torch.cat(parts, 1)[:, None]
        if "privileged_state" in spec:
            half = torch.full((len(q), 1), cube_half_size)
            obs["privileged_state"] = torch.cat([cube, cube - kin.tcp_pos, half], 1)[:, None]
        for c in cams:
            obs[f"rgb_{c}"] = torch.from_numpy(e[image_key(c)]).permute(0, 3, 1, 2)[:, None].contiguous()
        a = torch.as_tensor(e[act_key], dtype=torch.float32)
        if action_mode == "joint_pos":
            a = joint_pos_action(a, lo, hi)
        # An episode ends at its last frame: terminated if it succeeded there (no bootstrap), else truncated.
        end = torch.zeros(len(a), dtype=torch.bool)
        end[-1] = True
        won = bool(np.asarray(e["next.success"]).reshape(-1)[-1]) if "next.success" in e else False
        out.append({"obs": obs, "action": a, "reward": torch.as_tensor(e["next.reward"], dtype=torch.float32),
                    "terminated": end & won, "truncated": end & (not won)})
    return out

