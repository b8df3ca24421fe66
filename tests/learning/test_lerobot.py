"""LeRobotDataset v3.0 export and import (MuJoCo): the files read back with pyarrow and PyAV only,
the import into the demo replay, the errors on bad datasets, and open-loop replay in joint_pos."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import envs  # noqa: F401
from envs.batched import BatchedLiftEnv
from envs.config import make_task_config
from envs.lift_env import make_mujoco_backend
from envs.task import LiftTask
from launch.evaluate import ExpertPolicy
from learning.lerobot_format import (
    MOTORS,
    DatasetError,
    check_dataset,
    joint_pos_action,
)
from learning.lerobot_io import dataset_demos
from learning.replay import KeySpec
from tests._cli import HANG_S, ROOT, child_env, run_train

SEED, EPISODES, SIZE, FPS = 7, 2, 84, 50
VIDEO = "videos/observation.images.wrist/chunk-000/file-000.mp4"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two expert episodes exported by the script, as a user runs it."""
    tmp = tmp_path_factory.mktemp("lerobot")
    out = tmp / "ds"
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_dataset.py"), f"episodes={EPISODES}",
                        f"out={out}", f"seed={SEED}", f"hydra.run.dir={tmp / 'run'}"], cwd=ROOT, env=child_env(),
                       capture_output=True, text=True, timeout=HANG_S, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"{EPISODES} of {EPISODES} episodes kept" in p.stdout
    return out


@pytest.fixture(scope="module")
def reference() -> list[dict[str, np.ndarray]]:
    """The same episodes (seeds SEED, SEED+1) rolled out again, one env each: what the files must hold."""
    out = []
    for k in range(EPISODES):
        cfg = make_task_config(curriculum_stage=3, image_size=SIZE)
        env = BatchedLiftEnv(LiftTask(make_mujoco_backend(cfg, 1), cfg, SEED + k), 1)
        policy = ExpertPolicy(cfg, env)
        obs, info = env.reset(seed=[SEED + k])
        policy.reset(info, torch.ones(1, dtype=torch.bool))
        rec: dict[str, list] = {"low_dim": [], "img": [], "cube": [], "target": []}
        while True:
            rec["low_dim"].append(obs["low_dim_state"][0, -1].numpy())
            rec["img"].append(obs["rgb_wrist"][0, -1].permute(1, 2, 0).numpy())
            rec["cube"].append(info["cube_pos"][0].numpy())
            step = env.step(policy(obs, info))
            rec["target"].append(step.info["joint_target"][0].numpy())
            obs, info = step.obs, step.info
            if bool(step.done[0]):
                break
        out.append({k: np.stack(v) for k, v in rec.items()} | {"success": bool(info["is_success"][0]),
                                                                  "low": env.task.joint_low.numpy(),
                                                                  "high": env.task.joint_high.numpy()})
        env.close()
    return out


def test_layout_and_info(dataset):
    for rel in ("meta/info.json", "meta/stats.json", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet",
                "data/chunk-000/file-000.parquet", VIDEO):
        assert (dataset / rel).is_file(), rel
    info = json.loads((dataset / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "so101_follower"
    assert info["fps"] == FPS and info["total_episodes"] == EPISODES and info["total_tasks"] == 1
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    f = info["features"]
    for key in ("observation.state", "action"):
        assert f[key] == {"dtype": "float32", "shape": [6], "names": list(MOTORS)}
    assert f["observation.images.wrist"]["dtype"] == "video" and f["observation.images.wrist"]["shape"] == [SIZE, SIZE, 3]
    assert f["ee_delta"]["shape"] == [4]
    for key, dtype in (("next.reward", "float32"), ("next.done", "bool"), ("next.success", "bool"),
                       ("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):
        assert f[key]["dtype"] == dtype, key
    tasks = pq.read_table(dataset / "meta/tasks.parquet").to_pandas()
    assert tasks.loc["Lift the red cube", "task_index"] == 0


def test_rows_indices_timestamps_and_episode_table(dataset, reference):
    data = pq.read_table(dataset / "data/chunk-000/file-000.parquet").to_pydict()
    eps = pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    info = json.loads((dataset / "meta/info.json").read_text())
    lengths = [len(r["target"]) for r in reference]
    assert [e["length"] for e in eps] == lengths and info["total_frames"] == sum(lengths) == len(data["index"])
    assert data["index"] == list(range(sum(lengths)))
    assert data["frame_index"] == [t for n in lengths for t in range(n)]
    assert data["episode_index"] == [e for e, n in enumerate(lengths) for _ in range(n)]
    assert set(data["task_index"]) == {0}
    np.testing.assert_allclose(data["timestamp"], np.array(data["frame_index"]) / FPS, atol=1e-6)
    start = 0
    for e, n in zip(eps, lengths):
        assert (e["dataset_from_index"], e["dataset_to_index"]) == (start, start + n)
        assert e["videos/observation.images.wrist/from_timestamp"] == pytest.approx(start / FPS)
        assert e["videos/observation.images.wrist/to_timestamp"] == pytest.approx((start + n) / FPS)
        start += n
    done = np.array(data["next.done"])
    ends = np.cumsum(lengths) - 1
    assert done[ends].all() and done.sum() == EPISODES
    assert [data["next.success"][i] for i in ends] == [r["success"] for r in reference]


def test_follower_units_and_actions(dataset, reference):
    """observation.state and action in degrees (gripper 0..100 over its range): the joint positions
    observed and the joint targets sent, as the rollout had them."""
    data = pq.read_table(dataset / "data/chunk-000/file-000.parquet").to_pydict()
    state, action = np.array(data["observation.state"]), np.array(data["action"])
    ref = reference[0]
    n = len(ref["target"])
    lo, hi = ref["low"], ref["high"]

    def follower(q: np.ndarray) -> np.ndarray:
        out = np.rad2deg(q)
        out[:, 5] = (q[:, 5] - lo[5]) / (hi[5] - lo[5]) * 100
        return out

    np.testing.assert_allclose(state[:n], follower(ref["low_dim"][:, :6]), atol=1e-3)
    np.testing.assert_allclose(action[:n], follower(ref["target"]), atol=1e-3)
    assert 0 <= action[:, 5].min() and action[:, 5].max() <= 100
    np.testing.assert_allclose(np.array(data["cube_pos"])[:n], ref["cube"], atol=1e-6)


def test_stats_match_the_data(dataset):
    data = pq.read_table(dataset / "data/chunk-000/file-000.parquet").to_pydict()
    stats = json.loads((dataset / "meta/stats.json").read_text())
    for key in ("observation.state", "action", "cube_pos", "next.reward", "frame_index"):
        x = np.array(data[key], np.float64).reshape(len(data["index"]), -1)
        s = stats[key]
        assert s["count"] == [len(x)]
        np.testing.assert_allclose(s["min"], x.min(0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(s["max"], x.max(0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(s["mean"], x.mean(0), rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(s["std"], x.std(0), rtol=1e-5, atol=1e-7)
        assert np.all(np.array(s["q01"]) <= np.array(s["q99"]) + 1e-9)
    img = stats["observation.images.wrist"]
    assert np.array(img["mean"]).shape == (3, 1, 1) and 0 <= np.min(img["min"]) <= np.max(img["max"]) <= 1


def test_video_decodes_to_the_observed_frames(dataset, reference):
    """PyAV decodes one frame per row at frame / fps; each within codec tolerance (AV1, yuv420p) of
    the wrist image the policy saw."""
    with av.open(str(dataset / VIDEO)) as c:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    want = np.concatenate([r["img"] for r in reference])
    assert len(frames) == len(want)
    np.testing.assert_allclose([t for t, _ in frames], np.arange(len(want)) / FPS, atol=1e-6)
    err = np.abs(np.stack([f for _, f in frames]).astype(np.int16) - want.astype(np.int16))
    assert err.mean() < 6.0, err.mean()          # per pixel and channel, of 255
    assert np.percentile(err, 99) < 48, np.percentile(err, 99)


def test_import_rebuilds_the_observations_and_actions(dataset, reference):
    """dataset_demos (what demos=<dir> loads): joint positions, TCP and gripper angles as the env
    observed them (joint velocities are finite differences), frames within codec tolerance, and
    joint_pos actions that command the sent targets."""
    ref = reference[0]
    spec = {"low_dim_state": KeySpec((18,), torch.float32), "rgb_wrist": KeySpec((3, SIZE, SIZE), torch.uint8)}
    lo, hi = torch.from_numpy(ref["low"]), torch.from_numpy(ref["high"])
    eps = dataset_demos(dataset, spec, "joint_pos", FPS, 0.015, lo, hi)
    assert len(eps) == EPISODES
    e = eps[0]
    low = e["obs"]["low_dim_state"][:, -1].numpy()
    np.testing.assert_allclose(low[:, :6], ref["low_dim"][:, :6], atol=1e-5)
    # TCP and gripper angles by forward kinematics of the joint positions; the env's own read-out
    # differs from that by up to ~2 mm / 0.01 rad while the arm moves, exactly at rest (the first row).
    np.testing.assert_allclose(low[0, 12:], ref["low_dim"][0, 12:], atol=1e-5)
    np.testing.assert_allclose(low[:, 12:15], ref["low_dim"][:, 12:15], atol=3e-3)
    np.testing.assert_allclose(low[:, 15:], ref["low_dim"][:, 15:], atol=1.5e-2)
    img = e["obs"]["rgb_wrist"][:, -1].permute(0, 2, 3, 1).numpy().astype(np.int16)
    assert np.abs(img - ref["img"].astype(np.int16)).mean() < 6.0
    want = ((torch.from_numpy(ref["target"]) - lo) / (hi - lo) * 2 - 1).clamp(-1, 1)
    torch.testing.assert_close(e["action"], want, atol=1e-5, rtol=0)
    assert bool(e["terminated"][-1]) == ref["success"] and not e["terminated"][:-1].any()
    ee = dataset_demos(dataset, spec, "ee_delta", FPS, 0.015, lo, hi)[0]
    assert ee["action"].shape == (len(ref["target"]), 4)


def test_open_loop_replay_in_joint_pos_reproduces_the_episodes(dataset):
    """The dataset's actions, replayed open-loop in joint_pos from the episodes' seeds, succeed as
    they did, and the cube follows the recorded path within 1 mm."""
    data = pq.read_table(dataset / "data/chunk-000/file-000.parquet").to_pydict()
    ep = np.array(data["episode_index"])
    cfg = make_task_config(curriculum_stage=3, pixels=False, action_mode="joint_pos")
    task = LiftTask(make_mujoco_backend(cfg, 1), cfg, SEED)
    for k in range(EPISODES):
        rows = ep == k
        task.seed(SEED + k)
        task.reset()
        cube = [task.reset_info()["cube_pos"][0]]
        actions = joint_pos_action(torch.tensor(np.array(data["action"])[rows]), task.joint_low, task.joint_high)
        for a in actions:
            info = task.step(a[None])[3]
            cube.append(info["cube_pos"][0])
        assert bool(info["is_success"][0]) == np.array(data["next.success"])[rows][-1]
        gap = (torch.stack(cube[:-1]).numpy() - np.array(data["cube_pos"])[rows])
        assert np.abs(gap).max() < 1e-3, np.abs(gap).max()
    task.backend.close()


@pytest.mark.parametrize("edit, message", [
    ("no_info", r"meta/info.json: missing"),
    ("version", r"codebase_version='v2.1'"),
    ("no_state", r"feature 'observation.state' missing"),
    ("fps", r"fps=30 does not match the task's control rate 50 Hz"),
    ("image", r"feature 'observation.images.wrist' is video \[64, 64, 3\].*needs video \[84, 84, 3\]"),
    ("no_ee", r"feature 'ee_delta' missing.*use task.action_mode=joint_pos"),
    ("no_video", r"file-000.mp4: missing: the video of feature 'observation.images.wrist'"),
    ("two_files", r"file-000.parquet: column 'data/file_index' names a second file"),
])
def test_bad_datasets_are_refused_naming_file_and_feature(dataset, tmp_path, edit, message):
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    path = bad / "meta" / "info.json"
    info = json.loads(path.read_text())
    if edit == "no_info":
        path.unlink()
    elif edit == "no_video":
        (bad / VIDEO).unlink()
    elif edit == "two_files":
        eps = bad / "meta/episodes/chunk-000/file-000.parquet"
        t = pq.read_table(eps)
        i = t.column_names.index("data/file_index")
        pq.write_table(t.set_column(i, "data/file_index", pa.array([0, 1], pa.int64())), eps)
    else:
        f = info["features"]
        {"version": lambda: info.update(codebase_version="v2.1"), "no_state": lambda: f.pop("observation.state"),
         "fps": lambda: info.update(fps=30), "no_ee": lambda: f.pop("ee_delta"),
         "image": lambda: f["observation.images.wrist"].update(shape=[64, 64, 3])}[edit]()
        path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=message):
        check_dataset(bad, 50.0, "ee_delta", ("wrist",), SIZE, True)


def test_train_refuses_a_mismatched_dataset_before_any_simulator(dataset, tmp_path):
    """demos=<dir> on the command line: the image size mismatch is named with the file and the
    feature, exit 2, and no run directory is left."""
    run = tmp_path / "run"
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "experiment=smoke", f"demos={dataset}",
                        f"hydra.run.dir={run}"], cwd=ROOT, env=child_env(), capture_output=True, text=True,
                       timeout=HANG_S, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "info.json: feature 'observation.images.wrist'" in p.stderr and "32x32" in p.stderr
    assert not (run / "snapshots").exists()


def test_only_success_drops_failed_episodes(tmp_path):
    from launch.export import export_dataset

    kw = {"curriculum_stage": 3, "episode_length": 5, "hold_steps": 5, "image_size": 16}
    kept = export_dataset(tmp_path / "a", 2, seed=SEED, only_success=False, **kw)
    dropped = export_dataset(tmp_path / "b", 2, seed=SEED, only_success=True, **kw)
    assert (kept["kept"], kept["successes"], kept["frames"]) == (2, 0, 10)
    assert (dropped["kept"], dropped["frames"]) == (0, 0)
    assert json.loads((tmp_path / "b" / "meta" / "info.json").read_text())["total_episodes"] == 0


def test_train_loads_the_dataset_as_its_demos(dataset, tmp_path):
    """demos=<dir> end to end: a state-only run (its 21 values rebuilt from the follower state and
    `cube_pos`) in joint_pos loads every exported transition, clones them, trains and exits 0."""
    p = run_train(tmp_path / "run", f"demos={dataset}", "task.action_mode=joint_pos", "num_train_frames=100",
                  "agent.bc_pretrain_steps=5")
    assert p.returncode == 0, p.stderr[-3000:]
    frames = json.loads((dataset / "meta/info.json").read_text())["total_frames"]
    assert f"[demos] {EPISODES} episodes ({frames} transitions) from the LeRobotDataset {dataset}" in p.stdout + p.stderr
    assert "BC pre-training: 5 steps" in p.stdout + p.stderr
