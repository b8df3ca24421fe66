"""Teacher, then student, in one command (`experiment=pixels_full`).

With `pipeline.teacher_experiment` set, a run is two runs in one directory:
- `<run>/teacher`: the state teacher, trained by RL from that preset (plus
  `pipeline.teacher_overrides`) on the student's own task: the task, stage, reward, env, frame
  stack and seed nodes are copied from the student's config, so the two cannot differ (where the
  teacher's training episodes start, `task.stage0_starts`, stays the teacher preset's);
- `<run>/student`: the pixel run of the rest of the config, with `teacher=` one snapshot file of the
  teacher (whatever the teacher run does later): its last (`<frames>_snapshot.pt`), or with
  `pipeline.teacher_snapshot=best` the best on its validation episodes (`best_snapshot.pt`).
`teacher=<run dir or snapshot>` skips the teacher phase and teaches with that snapshot.
`resume=<run>` continues whichever phase is unfinished (`<run>/teacher/phase_done.json` marks a
finished teacher). The student's wall clock starts at the teacher's, so its `eval/wall_s` (and
`train_minutes`) count both phases.

Both phases' configs are validated before anything is written; each phase is then an ordinary
run (`launch.run.run`): its own lock, saved composition, snapshots and resume.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from envs.config import ConfigError
from launch.report import say
from launch.run import run, validate
from launch.rundir import RunLock, remove_if_untouched
from launch.teacher_check import TRAINING_ONLY, check_teacher_run, teacher_wall_s
from learning.rl_teacher import TeacherError, best_teacher_path, teacher_snapshot_path
from learning.snapshot import newest_snapshot
from runconfig.compose import compose_train

SAVED = "pipeline.yaml"             # the pipeline's config (the student's, teacher phase included)
DONE = "phase_done.json"            # in <run>/teacher once the teacher phase has finished
SHARED = ("task", "curriculum_stage", "reward_version", "env", "frame_stack", "seed", "device")


def is_pipeline_dir(path: Any) -> bool:
    return bool(path) and (Path(str(path)).expanduser() / SAVED).is_file()


def run_any(cfg: DictConfig, work_dir: str | Path, cli_overrides: list[str] | None = None) -> dict[str, Any]:
    """scripts/train.py's entry: a pipeline, or the resume of one, else one run."""
    if is_pipeline_dir(cfg.resume) or OmegaConf.select(cfg, "pipeline.teacher_experiment"):
        return run_pipeline(cfg, Path(work_dir), list(cli_overrides or []))
    return run(cfg, work_dir, cli_overrides)


def teacher_config(cfg: DictConfig) -> tuple[DictConfig, list[str]]:
    """The teacher phase's config and its overrides: the preset, `pipeline.teacher_overrides`, then
    the student's task nodes (SHARED)."""
    pipe = cfg.pipeline
    overrides = [f"experiment={pipe.teacher_experiment}", *[str(o) for o in pipe.teacher_overrides]]
    try:
        t = compose_train(overrides)
    except Exception as e:  # noqa: BLE001  Hydra's own errors: a missing preset, a bad override
        raise ConfigError(f"pipeline.teacher_experiment={pipe.teacher_experiment!r} with pipeline.teacher_overrides="
                          f"{list(pipe.teacher_overrides)} cannot be composed: {e}") from None
    OmegaConf.set_struct(t, False)
    own = {k: t.task[k] for k in TRAINING_ONLY if k in t.task}
    for key in SHARED:
        t[key] = OmegaConf.create(OmegaConf.to_container(cfg[key])) if OmegaConf.is_config(cfg[key]) else cfg[key]
    for k, v in own.items():  # where the teacher's training episodes start is the teacher preset's
        t.task[k] = v
    t.resume, t.teacher, t.overwrite = None, None, False
    return t, overrides + [f"{k}=<student's>" for k in SHARED]


def student_config(cfg: DictConfig, teacher: str) -> DictConfig:
    s = cfg.copy()
    OmegaConf.set_struct(s, False)
    s.teacher, s.resume, s.overwrite = teacher, None, False
    s.pipeline.teacher_experiment = None
    return s


def _load_saved(root: Path, cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """A pipeline resumed: its saved config, plus the keys typed now (not resume, experiment, hydra)."""
    saved = OmegaConf.load(root / SAVED)
    OmegaConf.set_struct(saved, False)
    for ov in overrides:
        key = ov.split("=", 1)[0].lstrip("+~")
        if key in ("resume", "experiment", "overwrite") or key.startswith("hydra"):
            continue
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
    return saved


def run_pipeline(cfg: DictConfig, work_dir: Path, overrides: list[str]) -> dict[str, Any]:
    resuming = is_pipeline_dir(cfg.resume)
    root = Path(str(cfg.resume)).expanduser() if resuming else work_dir
    if resuming:
        cfg = _load_saved(root, cfg, overrides)
        if work_dir.resolve() != root.resolve():
            remove_if_untouched(work_dir)
    elif is_pipeline_dir(root) and not bool(cfg.overwrite):
        remove_if_untouched(work_dir)
        raise ConfigError(f"run directory {str(root)!r} already holds a pipeline run: to continue it, resume={root}; "
                          "to replace it, overwrite=true; or give this run its own directory (hydra.run.dir=...)")
    elif cfg.resume:
        raise ConfigError(f"resume={cfg.resume} with pipeline.teacher_experiment set: a pipeline resumes from its own "
                          f"directory (the one holding {SAVED}), not from a phase's run")
    tdir, sdir = root / "teacher", root / "student"
    given = str(cfg.teacher) if cfg.teacher else None
    best = cfg.pipeline.teacher_snapshot == "best"
    try:  # both phases checked before anything is written
        tcfg, t_overrides = teacher_config(cfg)
        if given is None and not (tdir / DONE).is_file():
            validate(tcfg)
        if given is None and best and (tcfg.num_val_episodes == 0 or tcfg.eval_every_steps == 0):
            pipe = cfg.pipeline
            raise ConfigError(f"pipeline.teacher_snapshot=best needs the teacher phase to validate, but "
                              f"pipeline.teacher_experiment={pipe.teacher_experiment} with pipeline.teacher_overrides="
                              f"{list(pipe.teacher_overrides)} has num_val_episodes={tcfg.num_val_episodes}, "
                              f"eval_every_steps={tcfg.eval_every_steps}: set both > 0 (pipeline.teacher_overrides), "
                              "or pipeline.teacher_snapshot=final")
        if given is not None and best:
            try:
                given = str(best_teacher_path(given))
            except TeacherError as e:
                raise ConfigError(str(e)) from None
        student = student_config(cfg, given or str(tdir))
        task = validate(student)
        if given is not None:
            check_teacher_run(student, task)
    except ConfigError:
        if not resuming:
            remove_if_untouched(work_dir)
        raise
    root.mkdir(parents=True, exist_ok=True)
    lock = RunLock(root).acquire()
    try:
        if not resuming:
            for old in (tdir, sdir):
                shutil.rmtree(old, ignore_errors=True)   # overwrite=true (anything else was refused above)
            saved = cfg.copy()
            OmegaConf.set_struct(saved, False)
            saved.resume, saved.overwrite = None, False
            (root / SAVED).write_text(OmegaConf.to_yaml(saved))
        return _phases(root, student, tcfg if given is None else None, t_overrides, overrides, given)
    except SystemExit:  # a stop signal: the phase wrote its snapshot
        say(f"[pipeline] stopped; continue the unfinished phase with resume={root}")
        raise
    finally:
        lock.release()


def _phases(root: Path, student: DictConfig, tcfg: DictConfig | None, t_overrides: list[str],
            overrides: list[str], given: str | None) -> dict[str, Any]:
    """The teacher phase (unless `tcfg` is None: a teacher was given), then the student's."""
    tdir, sdir = root / "teacher", root / "student"
    if tcfg is not None:
        stopped = _teacher_phase(tcfg, t_overrides, tdir)
        if stopped is not None:  # a sweep job's teacher was stopped: no student from an unfinished teacher
            return stopped
    student.teacher = str(_teacher_file(student.teacher, student.pipeline.teacher_snapshot))
    wall = teacher_wall_s(student.teacher)
    say(f"[pipeline] student phase in {sdir}, taught by {student.teacher} ({wall:.0f} s of teacher training "
        "count in its wall_s)")
    typed = [o for o in overrides if not o.startswith(("resume=", "hydra", "experiment="))]
    if newest_snapshot(sdir / "snapshots") is not None:
        student.resume = str(sdir)
        return run(student, sdir, typed, wall_before=wall)
    student.overwrite = sdir.exists()  # a phase killed before its first snapshot starts again
    fresh = [o for o in overrides if not o.startswith(("resume=", "teacher="))] + [f"teacher={student.teacher}"]
    return run(student, sdir, fresh, wall_before=wall)


def _teacher_file(teacher: str, choice: str) -> Path:
    """One snapshot file (a later teacher run changes nothing): the best on the teacher's validation
    episodes, or its last; a teacher that kept no best (it never validated) teaches with its last."""
    if choice == "best":
        try:
            return best_teacher_path(teacher)
        except TeacherError as e:
            say(f"[pipeline] {e}: the teacher's last snapshot teaches instead")
    return teacher_snapshot_path(teacher)


def _teacher_phase(tcfg: DictConfig, overrides: list[str], tdir: Path) -> dict[str, Any] | None:
    """Train (or finish) the teacher in `tdir` and mark it done. A stop signal ends the process from
    inside `run` (a non-zero status); inside a sweep job `run` returns instead, and so does this,
    with the stopped run's result. An unfinished teacher is never marked."""
    if (tdir / DONE).is_file():
        say(f"[pipeline] teacher phase already done: {tdir}")
        return None
    say(f"[pipeline] teacher phase in {tdir}")
    if newest_snapshot(tdir / "snapshots") is not None:
        tcfg.resume = str(tdir)
        result = run(tcfg, tdir, [])
    else:
        tcfg.overwrite = tdir.exists()
        result = run(tcfg, tdir, overrides)
    if not result or result.get("interrupted"):  # {}: a sweep job not started after a stop
        return result
    keep = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool)) or v is None}
    (tdir / DONE).write_text(json.dumps(keep, indent=2))
    return None
