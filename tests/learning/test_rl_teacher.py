"""A trained state policy as the pixel actor's teacher: on the same start, its label from the
student's observations (pixels, low-dim, privileged state) is the action it takes from its own
state-only observations."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from factories import make_factory
from learning import envio
from learning.agents import make_agent
from learning.rl_teacher import SnapshotTeacher, TeacherError, check_teacher
from learning.snapshot import FORMAT, VERSION
from runconfig.compose import compose_train

STUDENT = ["experiment=pixels_full", "visual_observation_shape=[32,32]"]
TEACHER = ["experiment=sac_stage0", "task.privileged_state=true"]


def _env(overrides: list[str]):
    cfg = compose_train(overrides)
    return cfg, make_factory(cfg).make_batched_eval_env(cfg, 1)   # one env, starting as evaluations do


def _snapshot(tmp_path: Path) -> tuple[Path, object, dict]:
    """A SAC state policy (random weights) saved as a native snapshot, and its agent."""
    cfg, env = _env(TEACHER)
    try:
        spec, fs = envio.obs_spec(env.single_observation_space)
        agent = make_agent(cfg.agent, spec, fs, int(env.action_dim), torch.device("cpu"))
        payload = {"format": FORMAT, "version": VERSION, "config": OmegaConf.to_container(cfg, resolve=True),
                   "agent_name": "sac", "agent": agent.snapshot_state(), "obs_spec": envio.spec_signature(spec, fs),
                   "action_dim": int(env.action_dim), "counters": {"frames": 0, "wall_s": 0.0}}
        path = tmp_path / "teacher.pt"
        torch.save(payload, path)
        obs, _ = env.reset(seed=[7])
    finally:
        env.close()
    return path, agent, obs


def test_the_teacher_labels_the_student_obs_with_its_own_action(tmp_path: Path) -> None:
    path, agent, teacher_obs = _snapshot(tmp_path)
    _, env = _env(STUDENT)
    try:
        student_obs, _ = env.reset(seed=[7])                                  # the same start
        snap = check_teacher(path, envio.spec_signature(*envio.obs_spec(env.single_observation_space)),
                             int(env.action_dim))
    finally:
        env.close()
    assert "rgb_wrist" in student_obs and student_obs["low_dim_state"].shape[-1] == 18
    label = SnapshotTeacher(snap, torch.device("cpu")).label(student_obs)    # (1, A)
    own = agent.act(teacher_obs, 0, eval_mode=True)                          # (1, A)
    torch.testing.assert_close(label, own)
    assert label.abs().max() > 0


def test_a_student_without_the_cube_position_is_refused(tmp_path: Path) -> None:
    path, _, _ = _snapshot(tmp_path)
    _, env = _env([*STUDENT, "task.privileged_state=false", "agent.privileged_critic=false"])
    try:
        sig = envio.spec_signature(*envio.obs_spec(env.single_observation_space))
    finally:
        env.close()
    with pytest.raises(TeacherError, match="student's observations .* lack; the student needs task.privileged_state"):
        check_teacher(path, sig, 4)
