"""Every option of every config group composes and builds its objects (no simulation)."""
from __future__ import annotations

import pathlib

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import rewards
from factories import make_factory
from launch.run import validate
from runconfig.cli import quote_numeric_group_overrides

CONF = pathlib.Path(__file__).resolve().parents[2] / "conf"
GROUPS = ["env", "agent", "reward_version", "curriculum_stage", "engine", "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def cfg_for(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=quote_numeric_group_overrides(list(overrides)), return_hydra_config=False)


def test_every_registered_reward_version_has_an_option():
    assert set(options("reward_version")) == set(rewards.available())


def test_curriculum_stages_0_to_4_as_users_type_them():
    assert options("curriculum_stage") == ["0", "1", "2", "3", "4"]
    for s in range(5):
        assert cfg_for(f"curriculum_stage={s}").curriculum_stage.stage == s


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_composes_and_validates(group, monkeypatch):
    import envs.genesis_backend as gb
    import envs.mujoco_backend as mb

    def no_sim(*a, **k):
        raise AssertionError("a simulator was started while composing configs")

    monkeypatch.setattr(mb, "MujocoBackend", no_sim)
    monkeypatch.setattr(gb, "GenesisBackend", no_sim)
    for opt in options(group):
        extra = ["agent=sac"] if group == "reward_version" and opt in rewards.STATE_ONLY_VERSIONS else []
        cfg = cfg_for(f"{group}={opt}", *extra)
        OmegaConf.resolve(cfg)
        task = validate(cfg)
        assert task.curriculum_stage in range(5) and task.reward_version in rewards.available()
        assert make_factory(cfg).__class__.__name__ in ("MujocoLiftFactory", "GenesisLiftFactory")


@pytest.mark.parametrize("agent", options("agent"))
def test_agent_networks_build_from_config(agent):
    from envs.config import make_task_config
    from envs.lift_env import observation_space
    from factories.factory import task_kwargs
    from factories.vector_env import stacked_space
    from learning.agents import make_agent
    from learning.envio import obs_spec

    cfg = cfg_for(f"agent={agent}", "visual_observation_shape=[32,32]")
    space = stacked_space(observation_space(make_task_config(**task_kwargs(cfg))), cfg.frame_stack)
    spec, fs = obs_spec(space)
    a = make_agent(cfg.agent, spec, fs, 4, __import__("torch").device("cpu"))
    assert a is not None and ("rgb_wrist" in spec) == (agent == "drqv2")


def test_published_experiment_matches_task_md():
    cfg = cfg_for("experiment=published_mujoco")
    assert (cfg.agent.name, cfg.reward_version.name, cfg.curriculum_stage.stage, cfg.frame_stack, cfg.batch_size,
            cfg.pixels, cfg.env.name) == ("drqv2", "v19", 3, 3, 256, True, "mujoco_lift")


def test_no_personal_defaults():
    cfg = cfg_for()
    assert cfg.wandb.use is False and cfg.wandb.mode == "offline" and cfg.wandb.entity is None
    assert cfg.engine.name == "native"


def test_state_reward_with_pixel_agent_is_stopped_unless_allowed():
    from envs.config import ConfigError

    with pytest.raises(ConfigError, match=r"reward_version='v11' was designed for state.*allow_state_reward_with_pixels"):
        validate(cfg_for("reward_version=v11", "agent=drqv2"))
    validate(cfg_for("reward_version=v11", "agent=drqv2", "allow_state_reward_with_pixels=true"))
    validate(cfg_for("reward_version=v11", "agent=sac"))


def test_unknown_group_option_lists_choices():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=r"(?s)agent/ppo.*Available options in 'agent'.*drqv2.*sac"):
        cfg_for("agent=ppo")
    with pytest.raises(ConfigCompositionException, match=r"(?s)curriculum_stage/7.*Available options"):
        cfg_for("curriculum_stage=7")


def test_numeric_override_quoting():
    q = quote_numeric_group_overrides
    assert q(["curriculum_stage=3", "seed=3"]) == ["curriculum_stage='3'", "seed=3"]
    assert q(["curriculum_stage=2,3"]) == ["curriculum_stage='2','3'"]


def test_the_task_group_composes_to_the_task_configs_own_defaults():
    """The task options are declared once (TaskConfig): composed with no override they are its defaults."""
    from envs.config import make_task_config
    from factories import task_kwargs

    cfg = cfg_for("curriculum_stage=3", "reward_version=v19", "agent=drqv2")
    assert make_task_config(**task_kwargs(cfg)) == make_task_config(image_size=84, pixels=True)
    assert cfg_for("task.hold_steps=150").task.hold_steps == 150  # no '+' needed


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_slurm"])
def test_launchers_compose(launcher):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert launcher.split("_")[0] in cfg.hydra.launcher._target_.lower()


def test_replay_that_cannot_fit_is_refused_before_start():
    from envs.config import ConfigError

    with pytest.raises(ConfigError, match=r"replay.size=1000000000 is invalid here: .* need .* GiB.*allowed at most"):
        validate(cfg_for("replay.size=1000000000", "num_train_frames=1000000000"))


def test_replay_is_sized_to_what_the_run_can_write():
    # 1M pixel transitions would not fit in RAM; a 2000-frame run only ever writes 2000
    validate(cfg_for("replay.size=1000000000", "num_train_frames=2000"))


@pytest.mark.parametrize("agent", ["drqv2", "sac"])
def test_batch_that_cannot_fit_is_refused_before_start(agent):
    from envs.config import ConfigError

    with pytest.raises(ConfigError, match=r"batch_size=100000000 is invalid here: one update needs .* GiB.*allowed "
                                          r"at most about \d+"):
        validate(cfg_for(f"agent={agent}", "batch_size=100000000"))


def test_help_names_every_preset_and_group_option():
    """--help is the project's page: every preset and every option of the groups a user picks."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(CONF.parent / "scripts" / "train.py"), "--help"], capture_output=True,
                         text=True, timeout=1800).stdout
    assert "liftbase" in out and "docs/usage.md" in out and "schema/" not in out
    for group in ("env", "agent", "reward_version", "curriculum_stage", "engine", "experiment"):
        for opt in options(group):
            assert opt in out, (group, opt)


def test_an_unknown_key_is_named_with_the_nearest_declared_one_before_hydra_composes():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(CONF.parent / "scripts" / "train.py"), "batch_sise=64"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 2 and "did you mean 'batch_size'" in r.stderr, r.stderr
    assert "To append to your config" not in r.stderr + r.stdout
