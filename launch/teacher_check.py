"""`teacher=` checked at the door, before a run directory or a simulator exists.

A trained teacher (`learning.rl_teacher`) must be a state policy, trained on the student's task
(every task option except those that change only what is observed: pixels, image size, cameras,
the privileged state, blank images; or only where training episodes start: stage0_starts; and the
same simulator), with observations the student's can be mapped onto, the student's action size,
and a run that no process holds now (its lock: a teacher still training would change under the
student). Each refusal names the teacher's side and the student's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from envs.batched import observation_space, stacked_space
from envs.config import ConfigError, TaskConfig
from factories import task_kwargs
from launch.rundir import RunLock
from learning import envio
from learning.rl_teacher import (
    TeacherSnapshot,
    check_teacher,
    teacher_run_dir,
    teacher_snapshot_path,
)
from learning.snapshot import BEST, LATEST, SnapshotError, snapshot_counters

# Task options that change only what the policy observes, or only where training episodes start,
# not the task the teacher solved.
OBSERVATION_ONLY = ("pixels", "image_size", "cameras", "privileged_state", "blank_images")
TRAINING_ONLY = ("stage0_starts",)


def task_identity(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The options that define a run's task: its task options less OBSERVATION_ONLY and
    TRAINING_ONLY, and the simulator (`env.name`)."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    kw: dict[str, Any] = {"env.name": OmegaConf.select(node, "env.name")}
    for k, v in task_kwargs(node).items():
        if k in OBSERVATION_ONLY or k in TRAINING_ONLY:
            continue
        if isinstance(v, dict):  # randomization.<key>: a difference names the one option
            kw.update({f"{k}.{sub}": x for sub, x in v.items()})
        else:
            kw[k] = v
    return kw


def check_teacher_run(cfg: DictConfig, task: TaskConfig) -> TeacherSnapshot:
    """The snapshot `cfg.teacher` names, checked against this (student) config; ConfigError
    naming both sides otherwise."""
    if cfg.agent.name != "drqv2" or float(cfg.agent.teacher_weight) <= 0:
        raise ConfigError(f"teacher={cfg.teacher} is invalid here: a teacher teaches the pixel actor through its "
                          f"teacher term, which needs agent=drqv2 and agent.teacher_weight > 0 (this run: agent="
                          f"{cfg.agent.name}, teacher_weight={OmegaConf.select(cfg, 'agent.teacher_weight')})")
    try:
        path = teacher_snapshot_path(cfg.teacher)
        run_dir = teacher_run_dir(path)
        holder = RunLock.holder(run_dir) if run_dir is not None else None
        if holder is not None:
            raise ConfigError(f"teacher={cfg.teacher} is invalid now: its run {run_dir} is in use ({holder}); "
                              "wait for it to finish, or stop it, before a student reads its snapshot")
        space = stacked_space(observation_space(task), int(cfg.frame_stack))
        snap = check_teacher(cfg.teacher, envio.spec_signature(*envio.obs_spec(space)), task.action_dim)
    except SnapshotError as e:
        raise ConfigError(str(e)) from None
    theirs, ours = task_identity(snap.payload["config"]), task_identity(cfg)
    diff = [f"{k}: teacher {theirs.get(k)!r}, student {ours.get(k)!r}" for k in sorted(set(theirs) | set(ours))
            if theirs.get(k) != ours.get(k)]
    if diff:
        raise ConfigError(f"teacher={cfg.teacher} is invalid here: {snap.path} was trained on another task "
                          f"({'; '.join(diff)})")
    return snap


def teacher_wall_s(teacher: str | Path) -> float:
    """The teacher's training seconds, for a pipeline's eval/wall_s: its snapshot's counters, or for
    a best snapshot its whole run's (the best is known only once the run has finished)."""
    path = teacher_snapshot_path(teacher)
    if path.name == BEST and (path.parent / LATEST).is_file():
        path = path.parent / LATEST
    return float(snapshot_counters(path).get("wall_s", 0.0))
