"""Bad configuration, property-based: any override of the project's own keys either validates or
stops before a simulator starts with a message naming the key, the value and what is allowed.

Configs are composed in-process with Hydra's compose API (as scripts/train.py would compose
them) and checked with launch.run.validate; the simulator constructors are patched to fail.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from unittest import mock

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from envs.config import ConfigError
from launch.run import validate
from runconfig.cli import quote_numeric_group_overrides
from tests._cli import ROOT, no_traceback, run_train

CONF = str(ROOT / "conf")
BASE = ["experiment=smoke", "agent=sac", "curriculum_stage=2"]

INT_KEYS = ["seed", "frame_stack", "num_train_envs", "num_train_frames", "num_explore_steps",
            "replay_size_before_train", "update_every_steps", "batch_size", "eval_every_steps",
            "num_eval_episodes", "snapshot_every_n", "log_every", "replay.size", "replay.nstep",
            "agent.feature_dim", "agent.hidden_dim", "action_sequence", "env.episode_length", "demos"]
NUM_KEYS = ["replay.gamma", "agent.actor_lr", "agent.critic_lr", "agent.critic_target_tau",
            "agent.alpha_lr", "agent.init_temperature", "demo_ratio", "train_minutes", "agent.bc_weight", "agent.actor_q_weight"]
BOOL_KEYS = ["save_snapshot", "resume_replay", "log_eval_video", "wandb.use", "csv.use", "tb.use",
             "agent.learnable_temperature", "use_self_imitation", "eval_at_start", "agent.normalize_low_dim",
             "agent.critic_layer_norm"]
STR_KEYS = ["device", "wandb.mode", "env.factory", "engine.name", "agent.name", "resume"]
TASK_KEYS = ["hold_steps", "cube_mass", "lift_height", "action_scale", "physics_dt", "cube_half_size",
             "ik_damping", "lock_wrist_roll", "compile", "foo", "randomization.cube_xy", "randomization.joint_noise_range"]
VALUES = ["-1", "0", "1", "2", "7", "-5", "1000000000", "0.5", "-0.1", "1.5", "1e9", "nan", "inf", "abc",
          "'12'", "null", "true", "false", "[1,2]", "[84,84]", "[32,40]", "[]", "cpu", "cuda:x", "online",
          "''", "{a: 1}"]
GROUPS = {"agent": ["foo", "SAC", "drqv3"], "curriculum_stage": ["7", "-1", "2.5", "x"],
          "reward_version": ["v99", "v1", "V19"], "env": ["foo", "mujoco"], "engine": ["bar"],
          "experiment": ["nope"]}

SIM_CALLED = AssertionError("a simulator was constructed during config validation")


@contextlib.contextmanager
def no_simulators():
    """Patch both physics backends so that constructing one fails the test."""
    import envs.genesis_backend
    import envs.mujoco_backend

    with mock.patch.object(envs.mujoco_backend, "MujocoBackend", side_effect=SIM_CALLED) as m, \
            mock.patch.object(envs.genesis_backend, "GenesisBackend", side_effect=SIM_CALLED) as g:
        yield
    assert not m.called and not g.called


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=quote_numeric_group_overrides(list(overrides)))


def _value_texts(cfg, key: str, raw: str) -> list[str]:
    """Ways the bad value may be spelled in a message."""
    out = [raw, raw.strip("'")]
    v = OmegaConf.select(cfg, key, default=None) if cfg is not None else None
    if v is not None or raw == "null":
        try:
            py = OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        except Exception:  # noqa: BLE001
            py = v
        out += [repr(py), str(py)]
        if isinstance(py, float) and math.isfinite(py) and py == int(py):
            out.append(repr(int(py)))
    return [t for t in out if t]


def check_one(overrides: list[str], key: str, raw: str) -> str:
    """Compose + validate; returns 'ok', 'compose' or 'config'. Fails the test on anything unclear."""
    try:
        cfg = compose_cfg(BASE + overrides)
    except HydraException as e:  # Hydra's own errors: bad override syntax, unknown key, missing option
        msg = str(e)
        assert key.split(".")[-1] in msg or key.lstrip("+") in msg, msg
        return "compose"
    with no_simulators():
        try:
            validate(cfg)
        except ConfigError as e:
            msg = str(e)
            parts = key.lstrip("+").split(".")  # env.task.hold_steps -> hold_steps; engine.name -> engine
            assert any(f"{p}=" in msg or f"{p}'" in msg or f"'{p}" in msg for p in parts), \
                f"{overrides}: message does not name the key {key!r}: {msg}"
            assert "unknown" in msg or any(t in msg for t in _value_texts(cfg, key.lstrip("+"), raw)), \
                f"{overrides}: message does not name the value: {msg}"
            assert any(w in msg for w in ("allowed", "expected", "must", "Use ", "use ")), \
                f"{overrides}: message does not say what is allowed: {msg}"
            return "config"
    return "ok"


@st.composite
def key_value(draw):
    kind = draw(st.sampled_from(["int", "num", "bool", "str", "task"]))
    key = draw(st.sampled_from({"int": INT_KEYS, "num": NUM_KEYS, "bool": BOOL_KEYS, "str": STR_KEYS,
                                "task": TASK_KEYS}[kind]))
    if kind == "task":
        key = "+env.task." + key
    return key, draw(st.sampled_from(VALUES))


@settings(max_examples=100, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(kvs=st.lists(key_value(), min_size=1, max_size=2, unique_by=lambda kv: kv[0]))
def test_bad_overrides_fail_clearly_before_any_simulator(kvs) -> None:
    overrides = [f"{k}={v}" for k, v in kvs]
    try:
        check_one(overrides, *kvs[0])
    except AssertionError:
        if len(kvs) == 1:
            raise
        # with two overrides the error may be about the second one
        check_one(overrides, *kvs[1])


@pytest.mark.parametrize("group,option", [
    pytest.param(g, o)
    for g, opts in GROUPS.items() for o in opts])
def test_unknown_group_option_names_group_and_lists_options(group: str, option: str) -> None:
    with pytest.raises(HydraException) as exc:
        with no_simulators():
            validate(compose_cfg(BASE + [f"{group}={option}"]))
    msg = str(exc.value)
    assert f"{group}/{option}" in msg or f"'{option}'" in msg, msg
    assert "Available options" in msg, msg
    existing = sorted(p.stem for p in (Path(CONF) / group).glob("*.yaml"))
    assert all(o in msg for o in existing), (existing, msg)


@pytest.mark.parametrize("overrides,key,value", [
    (["seed=null"], "seed", "None"),
    (["num_train_frames=abc"], "num_train_frames", "abc"),
    (["batch_size=-4"], "batch_size", "-4"),
    (["replay.gamma=1.5"], "replay.gamma", "1.5"),
    (["+env.task.foo=1"], "foo", "allowed"),
    (["+env.task.hold_steps=0"], "hold_steps", "0"),
    (["visual_observation_shape=[32,40]"], "visual_observation_shape", "[32, 40]"),
    (["visual_observation_shape=5"], "visual_observation_shape", "5"),
    (["visual_observation_shape=abc"], "visual_observation_shape", "'abc'"),
    (["reward_version=v11", "agent=drqv2"], "reward_version", "v11"),
    (["agent.name=drqv2"], "agent.name", "drqv2"),
    (["device=tpu"], "device", "tpu"),
    (["demos=-1"], "demos", "-1"),
    (["demos=2.5"], "demos", "2.5"),
    (["demos=100000"], "demos", "100000"),
    (["demos=2", "demo_ratio=1.5"], "demo_ratio", "1.5"),
    (["demo_ratio=0.5"], "demo_ratio", "0.5"),          # demos from nowhere
    (["use_self_imitation=true"], "use_self_imitation", "true"),
    (["demos=2", "use_self_imitation=yes"], "use_self_imitation", "'yes'"),
    (["agent.bc_weight=1.0"], "bc_weight", "1.0"),
    (["agent=drqv2", "agent.precision=fp16"], "precision", "fp16"),
    (["agent=drqv2", "agent.encoder_chunk=-1"], "encoder_chunk", "-1"),
    (["agent=drqv2", "agent.channels_last=maybe"], "channels_last", "maybe"),
    (["agent=drqv2", "agent.parallel_target=2"], "parallel_target", "2 is invalid: allowed 'auto', true or false"),
    (["env=genesis_lift", "task.randomization.cube_color=true"], "cube_color", "Genesis"),
    (["task.compile=true"], "task.compile", "True is invalid with the MuJoCo backend"),
    (["env=genesis_lift", "task.compile=1"], "task.compile", "1 is invalid: allowed true or false"),
    (["env=genesis_lift", "env.sim_device=tpu"], "env.sim_device", "'tpu' is invalid: allowed 'cpu', 'gpu'"),
    (["env=genesis_lift", "env.renderer=ray"], "env.renderer", "'ray' is invalid: allowed 'auto'"),
    (["env=genesis_lift", "env.as_torch=1"], "env.as_torch", "1 is invalid: allowed 'auto', true or false"),
    (["engine=robobase", "env=genesis_lift", "env.as_torch=true"], "env.as_torch", "invalid with engine=robobase"),
    (["engine=robobase", "frame_stack=0"], "frame_stack", "0 is invalid: allowed an integer from 1 to 32"),
    (["train_minutes=-1"], "train_minutes", "-1 is invalid: allowed null or a number"),
])
def test_examples_name_key_and_value(overrides, key, value) -> None:
    with pytest.raises(ConfigError) as exc:
        with no_simulators():
            validate(compose_cfg(BASE + overrides))
    assert key.split(".")[-1] in str(exc.value) and value in str(exc.value), str(exc.value)


def test_valid_overrides_pass_validation() -> None:
    for ov in (["seed=3"], ["curriculum_stage=0"], ["curriculum_stage=4", "reward_version=v11"],
               ["+env.task.hold_steps=5"], ["agent=drqv2"], ["replay.gamma=0.9", "batch_size=8"],
               ["env=genesis_lift", "task.randomization.camera_jitter=true"], ["env=genesis_lift", "task.compile=true"],
               ["demos=3"], ["demos=3", "demo_ratio=1.0", "agent.bc_weight=0.5"], ["demo_ratio=0"],
               ["demos=3", "use_self_imitation=true"]):
        with no_simulators():
            validate(compose_cfg(BASE + ov))


@pytest.mark.slow
def test_cli_bad_value_prints_error_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    r = run_train(run_dir, "batch_size=abc")
    assert r.returncode == 2, r.stderr[-3000:]
    assert "error: batch_size='abc' is invalid" in r.stderr and "allowed" in r.stderr, r.stderr[-3000:]
    assert no_traceback(r.stderr + r.stdout), r.stderr[-3000:]
    assert not (run_dir / "snapshots").exists()


@pytest.mark.parametrize("seed", ["4294967296", "1e20", "-1"])
def test_a_seed_numpy_cannot_take_is_refused_before_the_run_dir(tmp_path: Path, seed: str) -> None:
    run_dir = tmp_path / "run"
    r = run_train(run_dir, f"seed={seed}")
    assert r.returncode == 2 and "error: seed=" in r.stderr and "an integer from 0 to 4294967295" in r.stderr, \
        r.stderr[-3000:]
    assert no_traceback(r.stderr + r.stdout) and not run_dir.exists()
