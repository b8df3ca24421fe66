"""Config validation, defaults, the growing CSV sink and wandb offline run ids."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tests.fakes import FakeFactory, tiny_cfg

from learning.logger import CsvSink
from learning.snapshot import read_snapshot
from learning.trainer import NativeTrainer
from runconfig.compose import default_config
from runconfig.rules import validate_config


def test_defaults_are_valid_and_hold_every_engine_key() -> None:
    cfg = default_config()
    validate_config(cfg)
    for key in ("seed", "pixels", "frame_stack", "num_train_envs", "num_train_frames", "num_explore_steps",
                "replay_size_before_train", "update_every_steps", "batch_size", "eval_every_steps",
                "num_eval_episodes", "save_snapshot", "snapshot_every_n", "log_every", "log_eval_video", "resume",
                "resume_replay", "device", "replay", "wandb", "tb", "csv", "agent"):
        assert key in cfg, key
    assert cfg.wandb.mode == "offline" and cfg.wandb.use is False
    assert default_config(**{"agent.name": "sac"}).agent.name == "sac"
    validate_config(default_config(pixels=False, **{"agent.name": "sac"}))


@pytest.mark.parametrize("key,value,allowed", [
    ("num_train_envs", 0, "from 1 to 65536"),
    ("frame_stack", 0, "from 1 to 32"),
    ("train_minutes", 0, "null or a number in (0.0, "),
    ("batch_size", 0, ">= 1"),
    ("update_every_steps", 0, ">= 1"),
    ("num_train_frames", 2.5, "integer"),
    ("replay.nstep", 0, ">= 1"),
    ("replay.gamma", 0.0, "(0.0, 1.0]"),
    ("replay.gamma", 1.5, "(0.0, 1.0]"),
    ("agent.name", "ppo", "drqv2"),
    ("agent.stddev_schedule", "linear(1,0.1)", "linear(init,final,duration)"),
    ("agent.critic_target_tau", 0, "(0.0, 1.0]"),
    ("device", "tpu", "auto"),
    ("wandb.mode", "sometimes", "offline"),
    ("pixels", "yes", "true or false"),
    ("num_val_episodes", -1, ">= 0"),
    ("pipeline.teacher_snapshot", "newest", "'final', 'best'"),
])
def test_bad_values_name_key_value_and_allowed(key: str, value, allowed: str) -> None:
    with pytest.raises(ValueError) as exc:
        validate_config(default_config(**{key: value}))
    msg = str(exc.value)
    assert key in msg and repr(value) in msg and allowed in msg


@pytest.mark.parametrize("key,value", [("num_train_envs", 0), ("frame_stack", 33), ("action_sequence", 2)])
def test_a_key_has_one_rule_whichever_entry_checks_it(key: str, value) -> None:
    """The run's validation and the factory RoboBase calls refuse a bad value with one message."""
    from factories import MujocoLiftFactory

    cfg = default_config(**{key: value})
    with pytest.raises(ValueError) as run_error:
        validate_config(cfg)
    for make in (MujocoLiftFactory().make_train_env, MujocoLiftFactory().make_batched_env):
        with pytest.raises(ValueError) as factory_error:
            make(cfg)
        assert str(run_error.value) == str(factory_error.value) and f"{key}={value!r}" in str(run_error.value)


def test_agent_observation_pairing() -> None:
    with pytest.raises(ValueError, match="drqv2.*pixels=true"):
        validate_config(default_config(pixels=False))
    with pytest.raises(ValueError, match="allow_pixels"):
        validate_config(default_config(**{"agent.name": "sac", "pixels": True}))
    validate_config(default_config(**{"agent.name": "sac", "pixels": True, "agent.allow_pixels": True}))


def test_privileged_critic_needs_the_privileged_state_and_robobase_refuses_it() -> None:
    with pytest.raises(ValueError, match=r"agent.privileged_critic=True.*task.privileged_state=true"):
        validate_config(default_config(**{"agent.privileged_critic": True}))
    validate_config(default_config(**{"agent.privileged_critic": True, "task.privileged_state": True}))
    with pytest.raises(ValueError, match="task.privileged_state=true is invalid with engine=robobase"):
        validate_config(default_config(**{"task.privileged_state": True}), engine="robobase")


def test_teacher_needs_the_privileged_critic_and_bc_pretraining() -> None:
    ok = {"task.privileged_state": True, "agent.privileged_critic": True, "agent.teacher_weight": 5.0,
          "agent.bc_pretrain_steps": 10}
    validate_config(default_config(demos=2, **ok))
    for key, bad, allowed in (("agent.privileged_critic", False, "allowed true"),
                              ("agent.bc_pretrain_steps", 0, "allowed > 0")):
        shown = str(bad).lower() if isinstance(bad, bool) else bad
        with pytest.raises(ValueError, match=rf"{key}={shown} is invalid with agent.teacher_weight=5.0: {allowed}"):
            validate_config(default_config(demos=2, **{**ok, key: bad}))
    for key, bad in (("agent.teacher_weight", -1.0), ("agent.teacher_lr", 0.0), ("agent.teacher_members", 0)):
        with pytest.raises(ValueError, match=rf"{key}={bad!r} is invalid: allowed"):
            validate_config(default_config(**{key: bad}))


def test_trainer_validates_before_building_anything(tmp_path: Path) -> None:
    class Exploding:
        def make_batched_env(self, cfg):
            raise AssertionError("env built before validation")

        make_eval_env = make_batched_env

    with pytest.raises(ValueError, match="batch_size"):
        NativeTrainer(tiny_cfg(batch_size=0), Exploding(), tmp_path)
    assert not any(tmp_path.iterdir())


def test_csv_sink_grows_its_header_when_new_keys_appear(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    sink = CsvSink(path)
    sink.write({"frames": 1, "a": 1.0})
    sink.write({"frames": 2, "a": 2.0, "b": 3.0})
    CsvSink(path).write({"frames": 3, "b": 4.0})   # reopened, as after a resume
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["frames"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["b"] == "" and rows[1]["b"] == "3.0" and rows[2]["a"] == ""


@pytest.mark.slow
def test_wandb_offline_run_id_survives_resume(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = tiny_cfg(num_train_frames=40, **{"wandb.use": True})
    NativeTrainer(cfg, FakeFactory(), tmp_path).train()
    _, payload = read_snapshot(tmp_path)
    run_id = payload["wandb_run_id"]
    assert run_id
    resumed = NativeTrainer(tiny_cfg(num_train_frames=80, resume=str(tmp_path), **{"wandb.use": True}),
                            FakeFactory(), tmp_path)
    resumed.train()
    assert resumed.wandb_run_id == run_id
    assert read_snapshot(tmp_path)[1]["wandb_run_id"] == run_id
