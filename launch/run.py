"""One training run: validate everything, announce it, dispatch to the chosen engine.

All checks happen here, before any simulator starts: the task options, the engine keys,
the factory's own keys, and the reward/agent pairing (a reward designed for state, v11,
driving a pixel agent).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import rewards
from envs.batched import observation_space, stacked_space
from envs.config import (
    ConfigError,
    TaskConfig,
    check_backend,
    make_task_config,
)
from factories import make_factory, task_kwargs
from launch.report import closing_block, say
from launch.robobase_engine import run_robobase
from launch.rundir import (
    SAVED,
    RunLock,
    claim_run_dir,
    clear_run_dir,
    record_machine,
    remove_if_untouched,
    remove_stale_temp_files,
    save_composition,
    saved_overrides,
)
from launch.sweep import job_may_start, job_resume
from launch.teacher_check import check_teacher_run
from learning import envio
from learning.lerobot_format import check_dataset
from learning.snapshot import (
    Resume,
    SnapshotError,
    check_obs_spec,
    load_resume,
    resolve_snapshot_path,
)
from learning.trainer import NativeTrainer
from runconfig.rules import ring_capacity, validate_config
from runconfig.schema import ENGINES, nearest, unknown_keys

log = logging.getLogger(__name__)
# Config groups and the key that names the chosen option: on resume, typing the group the run
# already uses (`agent=sac` for a SAC run) must not replace its saved node with the defaults.
GROUP_IDS = {"agent": "name", "env": "name", "engine": "name", "reward_version": "name", "curriculum_stage": "stage"}


class SweepJobError(CompactHydraException):
    """Bad input of ONE multirun job, raised as an ordinary exception instead of SystemExit.

    Hydra records the job as failed and the launcher (basic or joblib) finishes the sweep's other
    jobs; the sweep then ends with "Error executing job with overrides: [...]" and this message,
    without a stack trace (a SystemExit in a joblib worker aborted the whole sweep).
    """


def _multirun_job() -> str | None:
    """'#<num> (<overrides>)' when running as a job of a Hydra multirun, else None."""
    hc = _hydra_node()
    if hc is None or hc.mode != RunMode.MULTIRUN:
        return None
    return f"#{hc.job.num} ({hc.job.override_dirname})"


class NothingToDo(Exception):
    """A resume of a run that already reached its num_train_frames: nothing is written."""


def _hydra_node() -> Any:
    """Hydra's own config of this job (None outside a Hydra app)."""
    try:
        return HydraConfig.get() if HydraConfig.initialized() else None
    except Exception:  # noqa: BLE001
        return None


def validate(cfg: DictConfig) -> TaskConfig:
    """Every check that can fail before a simulator starts; returns the task's config, built once
    here for the run to use."""
    unknown = unknown_keys(cfg)
    if unknown:
        key = unknown[0]
        hint = nearest(key)
        raise ConfigError(f"{key}={OmegaConf.select(cfg, key)!r} is invalid: unknown key '{key}', which no shipped "
                          f"config declares and nothing reads; "
                          + (f"did you mean '{hint}'? " if hint else "")
                          + "allowed: the keys of conf/train.yaml and its groups")
    if cfg.engine.name not in ENGINES:
        raise ConfigError(f"engine={cfg.engine.name!r} is invalid: allowed {', '.join(ENGINES)}")
    kw = task_kwargs(cfg)
    try:
        task = make_task_config(**kw)
    except ConfigError as e:
        raise ConfigError(full_key_path(str(e), cfg)) from None
    validate_config(cfg, cfg.engine.name)
    check_env_keys(cfg)
    if task.reward_version in rewards.STATE_ONLY_VERSIONS and bool(cfg.pixels) \
            and not cfg.allow_state_reward_with_pixels:
        raise ConfigError(
            f"reward_version={task.reward_version!r} was designed for state-based agents, and the pixel agent "
            f"{cfg.agent.name!r} learned little with it. Use reward_version=v19, or pass "
            "allow_state_reward_with_pixels=true to run it anyway")
    if isinstance(cfg.demos, str):
        check_demo_dataset(cfg, task)
    if cfg.engine.name == "native":
        check_device(cfg)
        check_memory_fits(cfg, task.image_size if task.pixels else 0, len(task.cameras))
    try:
        check_backend(task, make_factory(cfg).backend)
    except ConfigError as e:
        raise ConfigError(full_key_path(str(e), cfg)) from None
    return task


def check_demo_dataset(cfg: DictConfig, task: TaskConfig) -> None:
    """demos=<dir>: a LeRobotDataset v3.0 that fits the task (layout, features, fps, image size,
    action space), checked before any simulator starts; the native engine loads it."""
    if cfg.engine.name != "native":
        raise ConfigError(f"demos={cfg.demos!r} is invalid with engine={cfg.engine.name}: a LeRobotDataset is "
                          "loaded by the native engine only; allowed an integer (scripted-expert episodes)")
    try:
        check_dataset(cfg.demos, 1.0 / task.frame_skip_dt, task.action_mode, task.cameras, task.image_size,
                      task.pixels)
    except ConfigError as e:
        raise ConfigError(f"demos={cfg.demos!r} is invalid: {e}") from None


# Task options that do not live under `task.` in the run config.
TASK_PATHS = {"curriculum_stage": "curriculum_stage", "reward_version": "reward_version", "pixels": "pixels",
              "episode_length": "env.episode_length", "image_size": "visual_observation_shape"}


def full_key_path(message: str, cfg: DictConfig) -> str:
    """A task error names the option as gym.make takes it (`hold_steps=...`); on the command line
    it is `task.hold_steps` (or `env.episode_length`, ...): name it so."""
    key, sep, rest = message.partition("=")
    if not sep or " " in key:
        return message
    root = key.split(".", 1)[0]
    if root in TASK_PATHS:
        return TASK_PATHS[root] + key[len(root):] + sep + rest
    in_env = OmegaConf.select(cfg, f"env.task.{key}", default=None) is not None
    return ("env.task." if in_env else "task.") + message


def check_resume_fits(resume: Resume, cfg: DictConfig, task: TaskConfig) -> None:
    """The snapshot's observations and action size are the ones this config's env will give: both
    follow from the task options and the frame stack, so no simulator is needed to know them."""
    space = stacked_space(observation_space(task), int(cfg.frame_stack))
    try:
        check_obs_spec(resume.payload["obs_spec"], envio.spec_signature(*envio.obs_spec(space)), resume.path)
    except SnapshotError as e:
        raise ConfigError(str(e)) from None
    if int(resume.payload.get("action_dim", task.action_dim)) != task.action_dim:
        raise ConfigError(f"cannot resume {resume.path}: its action_dim {resume.payload['action_dim']} is not the "
                          f"task's {task.action_dim} (task.action_mode={task.action_mode})")


def check_env_keys(cfg: DictConfig) -> None:
    """What the env group's keys need of this machine (their values are checked by runconfig.rules)."""
    if cfg.env.name == "genesis_lift" and cfg.env.sim_device == "gpu":
        if not torch.cuda.is_available():
            raise ConfigError("env.sim_device='gpu' is invalid here: CUDA is not available (allowed: cpu, auto)")


def check_device(cfg: DictConfig) -> None:
    dev = str(cfg.device)
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={dev!r} is invalid here: this torch ({torch.__version__}) sees no CUDA device; "
                          "allowed auto or cpu")


def update_bytes_per_sample(cfg: DictConfig, image_size: int, cameras: int = 1) -> int:
    """Rough peak bytes one batch row costs an update: obs and next obs as uint8, float and
    shifted copies; conv activations and their gradients; the MLPs' activations."""
    f, hidden = int(cfg.frame_stack), int(cfg.agent.hidden_dim)
    per = 2 * 4 * (f * 21 + 4) + 6 * 3 * 4 * hidden               # low-dim + action; 3 MLPs fwd/bwd
    if image_size:
        per += 2 * f * 3 * cameras * image_size ** 2 * (1 + 4 + 4)    # (F*3*cameras, H, W) obs and next obs
        per += 3 * 4 * 4 * 32 * (image_size // 2) ** 2                # 4 conv layers x 32 ch, act + grad
    return per


def check_memory_fits(cfg: DictConfig, image_size: int, cameras: int = 1) -> None:
    """The native replay is allocated up front and an update's batch at once: refuse what
    cannot fit, before starting. (A 1M-transition pixel replay is ~21 GB; batch_size=1e8 grew
    to 13 GB before it was killed.)"""
    size = ring_capacity(cfg)
    per = 3 * cameras * image_size ** 2 + 4 * (21 + 4 + 4) + 16  # frames (0 if state only) + low-dim + action + flags
    dev = str(cfg.device)
    if dev.startswith("cuda") or (dev == "auto" and torch.cuda.is_available()):
        free = torch.cuda.mem_get_info()[0]
        where = "free GPU memory"
    else:
        free = psutil.virtual_memory().available
        where = "available RAM"
    if size * per > 0.8 * free:
        fits = int(0.8 * free / per)
        raise ConfigError(f"replay.size={int(cfg.replay.size)} is invalid here: {size} transitions need "
                          f"{size * per / 2**30:.1f} GiB but {where} is {free / 2**30:.1f} GiB; allowed at most "
                          f"about {fits} transitions on this machine")
    batch, row = int(cfg.batch_size), update_bytes_per_sample(cfg, image_size, cameras)
    left = 0.8 * free - size * per
    if batch * row > left:
        raise ConfigError(f"batch_size={batch} is invalid here: one update needs about {batch * row / 2**30:.1f} GiB "
                          f"({row / 2**20:.2f} MiB per row) but {left / 2**30:.1f} GiB of {where} is left after "
                          f"the replay; allowed at most about {max(1, int(left / row))}")


def check_output_dir(work_dir: Path) -> None:
    """A full or read-only output directory fails now, not hours into the run."""
    work_dir.mkdir(parents=True, exist_ok=True)
    probe = work_dir / ".write_test"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 1024 * 1024)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise ConfigError(f"output directory {str(work_dir)!r} is not writable ({e.strerror}): "
                          "choose another with hydra.run.dir=...") from None
    finally:
        probe.unlink(missing_ok=True)


def announce(cfg: DictConfig, task: TaskConfig, work_dir: Path, overrides: list[str]) -> None:
    """Say what runs (the overrides and the key facts) and the reward terms; the full resolved
    config goes to the run directory, not the screen."""
    reward = rewards.get(task.reward_version, task.lift_height, task.gripper_closed_below)
    text = OmegaConf.to_yaml(cfg, resolve=True)
    obs = f"pixels {task.image_size}x{task.image_size}" if task.pixels else "state"
    demos = f", demos from {cfg.demos}" if isinstance(cfg.demos, str) else f", {cfg.demos} demos" if cfg.demos else ""
    say(f"[run] {work_dir.resolve()}\n"
        f"[run] overrides: {' '.join(overrides) if overrides else '(none)'}\n"
        f"[run] {cfg.engine.name} engine, {cfg.agent.name} from {obs} (frame stack {cfg.frame_stack}), "
        f"{cfg.env.name} x {cfg.num_train_envs}, stage {task.curriculum_stage}, reward {task.reward_version}{demos}, "
        f"{cfg.num_train_frames:,} frames, batch {cfg.batch_size}, seed {cfg.seed}, device {cfg.device}\n"
        f"[run] full config: {work_dir.resolve() / 'config_resolved.yaml'}")
    say(reward.table())
    (work_dir / "config_resolved.yaml").write_text(text)
    (work_dir / "reward_terms.txt").write_text(reward.table() + "\n")
    (work_dir / "reward_terms.json").write_text(json.dumps(reward.as_dict(), indent=2))


def resume_config(cfg: DictConfig, cli_overrides: list[str]) -> tuple[DictConfig, Path | None]:
    """`resume=<run dir or snapshot>` continues THAT run: its saved config, plus only what the
    user overrode on this command line (e.g. a larger num_train_frames). Returns the config
    and the original run directory (None when the snapshot lives outside a run directory)."""
    if not cfg.resume:
        return cfg, None
    snap = resolve_snapshot_path(cfg.resume)
    run_dir = snap.parent.parent if snap.parent.name == "snapshots" else None
    saved_file = run_dir / SAVED / "config.yaml" if run_dir else None
    if saved_file is None or not saved_file.is_file():
        return cfg, run_dir  # no saved composition: the live config is all there is
    saved = OmegaConf.load(saved_file)
    OmegaConf.set_struct(saved, False)
    _fill_missing(saved, cfg)
    for ov in cli_overrides:
        key = ov.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra") or key == "experiment":
            continue
        ident = GROUP_IDS.get(key)
        if ident and OmegaConf.select(saved, f"{key}.{ident}") == OmegaConf.select(cfg, f"{key}.{ident}"):
            continue  # the group the run already uses: keep its saved node, overrides inside included
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
    saved.resume = cfg.resume
    return saved, run_dir


def _fill_missing(saved: DictConfig, live: DictConfig) -> None:
    """Keys added to conf/ after the run was saved take today's defaults (the live composition's)."""
    for key in live:
        if key not in saved:
            saved[key] = OmegaConf.select(live, str(key))
        elif isinstance(live.get(key), DictConfig) and isinstance(saved.get(key), DictConfig):
            ident = GROUP_IDS.get(str(key))
            if ident is None or saved[key].get(ident) == live[key].get(ident):  # not another option's keys
                _fill_missing(saved[key], live[key])


def run(cfg: DictConfig, work_dir: str | Path, cli_overrides: list[str] | None = None,
        wall_before: float = 0.0) -> dict[str, Any]:
    """Validate, announce and train. ConfigError on bad input (SweepJobError inside a multirun).
    `wall_before`: seconds an earlier phase trained (launch.pipeline), counted in the run's wall_s."""
    job = _multirun_job()
    if job is not None and not job_may_start(str(_hydra_node().sweep.dir)):
        remove_if_untouched(Path(work_dir))
        return {}
    started = time.perf_counter()
    lock = RunLock(Path(work_dir))
    try:
        result = _run(cfg, work_dir, cli_overrides, lock, wall_before)
    except NothingToDo as e:
        remove_if_untouched(Path(work_dir))
        say(str(e))
        return {}
    except ConfigError as e:
        remove_if_untouched(Path(work_dir))  # a refusal leaves no empty run directory behind
        if job is None:
            raise
        print(f"error: job {job} failed: {e}", file=sys.stderr, flush=True)
        raise SweepJobError(f"job {job} failed: {e}") from None
    finally:
        lock.release()
    stop = result.get("stop_signal") if isinstance(result, dict) else None
    if isinstance(result, dict):
        say(closing_block(Path(work_dir), result, time.perf_counter() - started))
    if stop and job is None:
        # Pre-empted: the snapshot is written; a non-zero status (128 + signal) tells a scheduler
        # or `train.py && next-step` that the run did not finish.
        code = 128 + int(signal.Signals[stop])
        print(f"[run] stopped by {stop} after {result.get('frames')} frames: exiting with status {code}; "
              f"resume with resume={work_dir}", file=sys.stderr, flush=True)
        raise SystemExit(code)
    return result


def _run(cfg: DictConfig, work_dir: str | Path, cli_overrides: list[str] | None, lock: RunLock,
         wall_before: float = 0.0) -> dict[str, Any]:
    work_dir = Path(work_dir)
    hc = _hydra_node()
    if hc is not None and hc.mode == RunMode.MULTIRUN and cfg.resume:  # resume=<sweep dir>: this job's own dir
        OmegaConf.update(cfg, "resume", job_resume(str(cfg.resume), work_dir, str(hc.sweep.dir),
                                                   list(cli_overrides or [])))
    live = cfg
    try:  # a missing resume= target fails before anything is written
        cfg, resumed_from = resume_config(cfg, cli_overrides or [])
    except SnapshotError as e:
        raise ConfigError(str(e)) from None
    resume = None
    if cfg.resume and cfg.engine.name == "native":  # read, checked and merged before anything is written
        try:
            cfg, resume = load_resume(cfg)
        except SnapshotError as e:
            raise ConfigError(str(e)) from None
    task = validate(cfg)
    if cfg.teacher and cfg.engine.name != "native":
        raise ConfigError(f"teacher={cfg.teacher} is invalid with engine={cfg.engine.name}: allowed engine=native")
    if cfg.teacher:
        check_teacher_run(cfg, task)
    if resume is not None:
        check_resume_fits(resume, cfg, task)
        done = resume.payload["counters"].get("frames")
        if done is not None and int(done) >= int(cfg.num_train_frames):
            raise NothingToDo(f"[run] {cfg.resume} has already trained {done} frames (num_train_frames="
                              f"{cfg.num_train_frames}): nothing to do. To train further, pass a larger "
                              "num_train_frames=...")
    if cfg.torch_threads is not None:
        # Small networks on a shared CPU: more intra-op threads than free cores stall each update.
        torch.set_num_threads(cfg.torch_threads)
    # overwrite is never taken from a resumed run's saved config: only typed now
    replace = claim_run_dir(work_dir, resumed_from, bool(live.overwrite))
    check_output_dir(work_dir)
    lock.acquire()
    if replace:
        clear_run_dir(work_dir)
    remove_stale_temp_files(work_dir)
    overrides = list(cli_overrides or [])
    into_new_dir = resumed_from is not None and resumed_from.resolve() != work_dir.resolve()
    if into_new_dir:  # the original's overrides plus what was typed now
        typed = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
        saved = [o for o in saved_overrides(resumed_from) if o.split("=", 1)[0].lstrip("+~") not in typed]
        overrides = saved + overrides
    save_composition(cfg if resumed_from is not None else live, work_dir, overrides, _hydra_node())
    announce(cfg, task, work_dir, overrides)
    record_machine(work_dir, str(cfg.device))
    if into_new_dir and not (work_dir / "resumed_from").exists():
        (work_dir / "resumed_from").symlink_to(resumed_from.resolve(), target_is_directory=True)
    factory = make_factory(cfg)
    if cfg.engine.name == "robobase":
        return run_robobase(cfg, factory, work_dir)
    return NativeTrainer(cfg, factory, work_dir, checked=(cfg, resume), wall_before=wall_before).train()
