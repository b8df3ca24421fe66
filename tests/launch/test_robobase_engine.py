"""engine=robobase: the install message without RoboBase; a tiny Workspace run and resume with it.

The first tests run everywhere (CI has no RoboBase: it is not on PyPI). Those that need it
use `pytest.importorskip("robobase")`; run them where it is installed (docs/robobase.md):
    /work/rbvenv/bin/python -m pytest tests/launch/test_robobase_engine.py
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from envs.config import ConfigError
from tests._cli import HANG_S

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "scripts" / "train.py"
# Smallest RoboBase run: RoboBase wants replay_size_before_train >= episode_length.
TINY = ["engine=robobase", "experiment=smoke", "replay_size_before_train=200", "env.episode_length=100",
        "tb.use=false"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # 2 shared cores: no oversubscription
    return env


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[*TINY, *overrides])


class _Exploding:
    """A factory that fails the test if anything asks it for an env."""

    def make_train_env(self, cfg):
        raise AssertionError("a simulator started before the RoboBase check")

    make_eval_env = make_train_env


def test_missing_robobase_fails_at_once_with_install_message(monkeypatch, tmp_path: Path) -> None:
    from launch.robobase_engine import run_robobase

    monkeypatch.setitem(sys.modules, "robobase", None)  # find_spec -> None, as when not installed
    with pytest.raises(ConfigError, match="RoboBase is not installed") as e:
        run_robobase(_cfg(), _Exploding(), tmp_path)
    assert "pip install --no-deps" in str(e.value) and "engine=native" in str(e.value)
    assert not any(tmp_path.iterdir())


def test_train_script_without_robobase_exits_2_before_any_simulator(tmp_path: Path) -> None:
    """The real entry point, with RoboBase hidden: one line on stderr, exit 2, no mujoco import."""
    code = textwrap.dedent(f"""
        import atexit, runpy, sys
        sys.modules["robobase"] = None
        atexit.register(lambda: print("SIMS", [m for m in ("mujoco", "genesis") if m in sys.modules]))
        sys.argv = [{str(TRAIN)!r}, *{TINY!r}, "hydra.run.dir={tmp_path / 'run'}"]
        runpy.run_path(sys.argv[0], run_name="__main__")
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
                       timeout=HANG_S)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert "error: RoboBase is not installed" in p.stderr and "pip install --no-deps" in p.stderr
    assert "Traceback" not in p.stderr
    assert "SIMS []" in p.stdout


def test_engine_yaml_maps_our_agents() -> None:
    cfg = _cfg("agent=sac")
    assert cfg.engine.name == "robobase" and cfg.engine.method == "sac"
    assert cfg.engine.methods.sac == "sac_lix" and cfg.engine.methods.drqv2 == "drqv2"


# ---------------------------------------------------------------- with RoboBase installed
def _train(run_dir: Path, *overrides: str, timeout: float = HANG_S) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, str(TRAIN), *TINY, *overrides, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                       env=_env(), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def _snap(run_dir: Path) -> dict:
    return torch.load(run_dir / "snapshots" / "latest_snapshot.pt", map_location="cpu", weights_only=False)


def test_composed_config_takes_our_values(tmp_path: Path) -> None:
    pytest.importorskip("robobase")
    from launch.robobase_engine import compose_robobase_config, require_robobase

    require_robobase()
    rb = compose_robobase_config(_cfg("agent=sac", "num_train_envs=4", "eval_every_steps=400",
                                      "agent.hidden_dim=32", "replay.nstep=1"), tmp_path)
    assert rb.method._target_ == "robobase.method.sac_lix.SACLix"
    assert rb.num_train_envs == 4 and rb.eval_every_steps == 100  # frames -> iterations of 4 frames
    assert rb.method.actor_model.mlp_nodes == [32, 32] and rb.replay.nstep == 1
    assert rb.env.episode_length == 100 and rb.env.stddev_schedule == "linear(1.0,0.1,125000)"
    assert rb.wandb.use is False and rb.save_csv is False and rb.replay.num_workers == 0
    assert rb.tb.log_dir == str(tmp_path / "tb")
    with pytest.raises(ConfigError, match="replay_size_before_train"):
        compose_robobase_config(_cfg("replay_size_before_train=50"), tmp_path)


def test_state_sac_trains_snapshots_and_resumes(tmp_path: Path) -> None:
    """A state-only SAC run writes latest_snapshot.pt; resume continues its counters and config."""
    pytest.importorskip("robobase")
    first, second = tmp_path / "a", tmp_path / "b"
    p = _train(first, "agent=sac", "num_train_frames=300", "eval_every_steps=200")
    s = _snap(first)
    assert s["_main_loop_iterations"] == 300 and s["_global_env_episode"] >= 3
    assert "[robobase] done: 300 frames" in p.stdout
    assert "SR:" in p.stdout  # all-env success rate on the train log line
    # The same eval.csv and [eval] line as the native engine (compare.py reads both engines' runs).
    with (first / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["frames"] for r in rows] == ["0", "200"]  # RoboBase also evaluates before training
    assert all(0.0 <= float(r["eval/success_rate"]) <= 1.0 for r in rows)
    assert "[eval] 200 frames, " in p.stdout and "run finished: 300 frames" in p.stdout
    # A longer budget than the snapshot's: the live config must win (RoboBase kept the saved one).
    p = _train(second, "agent=sac", "num_train_frames=500", "eval_every_steps=200", f"resume={first}")
    assert "resumed" in p.stdout and "iteration 300, 300 frames" in p.stdout
    s2 = _snap(second)
    assert s2["_main_loop_iterations"] == 500 and s2["_global_env_episode"] >= s["_global_env_episode"] + 2
    assert s2["cfg"].num_train_frames == 500
    assert (second / "snapshots" / "500_snapshot.pt").is_file()


def test_resume_from_a_non_robobase_file_fails_before_training(tmp_path: Path) -> None:
    pytest.importorskip("robobase")
    from launch.robobase_engine import run_robobase

    bad = tmp_path / "x.pt"
    torch.save({"format": "liftbase-native-snapshot"}, bad)
    with pytest.raises(ConfigError, match="not a RoboBase snapshot"):
        run_robobase(_cfg(f"resume={bad}"), _Exploding(), tmp_path / "run")


def test_pixel_drqv2_32px_trains_and_logs_all_env_success(tmp_path: Path) -> None:
    pytest.importorskip("robobase")
    run = tmp_path / "px"
    p = _train(run, "agent=drqv2", "num_train_frames=240", "eval_every_steps=200", "log_every=40")
    assert _snap(run)["_main_loop_iterations"] == 240
    assert (run / "robobase_config.yaml").read_text().count("DrQV2") == 1
    assert "| eval" in p.stdout and "train success" in p.stdout


def test_demos_load_into_robobase_replay_and_train(tmp_path: Path) -> None:
    """demos > 0: the scripted expert's demos go through RoboBase's real UniformReplayBuffer
    (its add contract: one frame per key, (A,) actions) and training runs on them."""
    pytest.importorskip("robobase")
    run = tmp_path / "demos"
    p = _train(run, "agent=sac", "demos=2", "num_train_frames=200", "eval_every_steps=200")
    assert _snap(run)["_main_loop_iterations"] == 200, p.stdout[-2000:]
