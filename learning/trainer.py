"""NativeTrainer: the off-policy loop over N batched envs (DrQ-v2 or SAC).

Per iteration: act for all N envs at once; step them while the updates that are due run on
a worker thread (they sample the replay as it stood before this step); then insert the N
transitions as one batched replay write. Counters are in env frames; the number of
updates is a deterministic function of the frames seen with a learn-ready replay, so a run
resumed from a snapshot ends with the same counters as an uninterrupted one.
"""
from __future__ import annotations

import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from learning import demos, envio
from learning.agents import make_agent
from learning.console import eval_line, phase, say
from learning.evaluation import evaluate
from learning.logger import MetricLogger
from learning.networks import SideThread, spare_cpu_core
from learning.replay import ReplayBuffer
from learning.rl_teacher import install_teacher
from learning.signals import StopSignals
from learning.snapshot import (
    BEST,
    FORMAT,
    VERSION,
    DiskFull,
    Resume,
    RunSnapshots,
    SnapshotError,
    check_obs_spec,
    disk_full,
    load_resume,
    rng_state,
    set_rng_state,
)
from learning.train_stats import TrainStats
from runconfig.keys import uses_demos
from runconfig.rules import ring_capacity, validate_config

LONG_EVAL_EPISODES = 20  # evaluations of at least this many episodes announce themselves
# seed + offset: the eval episodes, the demos and the validation episodes are seeded apart from
# training and from each other
EVAL_SEED_OFFSET, DEMO_SEED_OFFSET, VAL_SEED_OFFSET = 1_000_000, 2_000_000, 3_000_000


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available: use device=auto or device=cpu")
    return torch.device(name)


class NativeTrainer:
    """`NativeTrainer(cfg, factory, work_dir).train()`; factory has make_batched_env(cfg) and, when the run
    evaluates, make_batched_eval_env(cfg): the train and eval envs, both of the batched contract.

    Everything that can reject a bad config or a bad `resume=` runs in __init__, before any
    file is created in `work_dir`.
    """

    def __init__(self, cfg: DictConfig, factory: Any, work_dir: str | Path,
                 checked: tuple[DictConfig, Resume | None] | None = None, wall_before: float = 0.0) -> None:
        """`checked`: the config and resume snapshot `launch.run` has already read, merged and
        validated at its door; without it the trainer does the same here, once. `wall_before`:
        seconds trained before this run began (an earlier phase of a pipeline), counted in wall_s."""
        self._wall_start = float(wall_before)
        if checked is None:
            cfg, resume = load_resume(cfg)
            validate_config(cfg)
        else:
            cfg, resume = checked
        self.work_dir = Path(work_dir)
        self._resume_path, self._payload = (resume.path, resume.payload) if resume is not None else (None, None)
        self.cfg = cfg
        self._make_expert = getattr(factory, "make_expert", None)
        self._updater = SideThread(self._overlap(cfg.overlap_env_step), "update")  # the updates beside env steps
        if not isinstance(cfg.demos, str) and cfg.demos > 0 and self._make_expert is None:
            raise ValueError(f"demos={cfg.demos} needs a factory with a scripted expert (make_expert); "
                             f"{type(factory).__name__} has none")
        self.device = resolve_device(cfg.device)
        if self._payload is None:
            random.seed(cfg.seed)
            np.random.seed(cfg.seed)
            torch.manual_seed(cfg.seed)
        if not hasattr(factory, "make_batched_env"):
            raise ValueError(f"{type(factory).__name__} has no make_batched_env(cfg): the native engine trains on "
                             "the batched env contract (envs.batched.BatchedLiftEnv)")
        genesis = getattr(factory, "backend", None) == "Genesis"
        with phase(f"[env] building the train env ({cfg.num_train_envs} x {getattr(factory, 'backend', 'env')}"
                   + ("; Genesis compiles its kernels on first use, ~1 min, cached for later runs" if genesis else "")
                   + ")"):
            self.train_env = factory.make_batched_env(cfg)
        self.eval_env = None
        if cfg.eval_every_steps > 0 and cfg.num_eval_episodes > 0:
            if not hasattr(factory, "make_batched_eval_env"):
                self.close_envs()
                raise ValueError(f"{type(factory).__name__} has no make_batched_eval_env(cfg): the native engine "
                                 "evaluates on the batched env contract (envs.batched.BatchedLiftEnv)")
            with phase("[env] building the eval env"):
                self.eval_env = factory.make_batched_eval_env(cfg)
        try:
            self._build()
        except BaseException:
            self.close_envs()
            raise

    # ------------------------------------------------------------------ setup
    def _build(self) -> None:
        cfg = self.cfg
        self.spec, self.frame_stack = envio.obs_spec(self.train_env.single_observation_space)
        self.keys = list(self.spec)
        self.signature = envio.spec_signature(self.spec, self.frame_stack)
        self.action_dim = int(self.train_env.action_dim)
        self.num_envs = int(self.train_env.num_envs)
        if self._payload is not None:
            check_obs_spec(self._payload["obs_spec"], self.signature, self._resume_path)
            if int(self._payload.get("action_dim", self.action_dim)) != self.action_dim:
                raise SnapshotError(f"cannot resume {self._resume_path}: action_dim {self._payload['action_dim']} "
                                 f"!= {self.action_dim}")
        self.agent = make_agent(cfg.agent, self.spec, self.frame_stack, self.action_dim, self.device)
        if cfg.teacher:  # a trained state policy teaches instead of the clone (learning.rl_teacher)
            install_teacher(self.agent, cfg.teacher, self.signature, self.action_dim, self.device)
        capacity = ring_capacity(cfg)
        saved_replay = (self._payload or {}).get("replay")
        if saved_replay is not None:  # never smaller than the ring being resumed (a shorter num_train_frames)
            capacity = max(capacity, int(saved_replay["rows"]) * int(saved_replay["num_envs"]))
        self.replay = ReplayBuffer(self.spec, self.frame_stack, self.action_dim, self.num_envs, capacity,
                                   cfg.replay.nstep, cfg.replay.gamma, self.device)
        self.demo_replay: ReplayBuffer | None = None
        self.demo_ratio = float(cfg.demo_ratio) if cfg.demo_ratio is not None else (0.5 if uses_demos(cfg.demos) else 0.0)
        self.learn_start = max(cfg.replay_size_before_train, self.num_envs * (cfg.replay.nstep + 1))
        self.frames = self.updates = self.update_credit = 0
        self.bc_steps = 0  # BC pre-training steps done (a stop can cut the phase short; a resume finishes it)
        self._resumed_at: int | None = None
        self.wall_before, self._t0 = self._wall_start, time.perf_counter()  # training wall time of earlier sessions, and now
        self.stats = TrainStats(cfg.num_train_frames, cfg.train_minutes, self.device, self.wall_s)
        self.wandb_run_id: str | None = None
        self.last_eval: dict[str, float] = {}
        self._best_val: list[float] | None = None
        if self._payload is not None:
            self._restore(self._payload)
        self.snapshots = RunSnapshots(self.work_dir, cfg.keep_snapshots, self._resume_path, self._resumed_at,
                                      self._best_val)

    def _restore(self, p: dict[str, Any]) -> None:
        c = p["counters"]
        self.frames, self.updates = int(c["frames"]), int(c["updates"])
        self.wall_before = float(c.get("wall_s", 0.0))
        self._resumed_at = self.frames
        self.bc_steps = int(c.get("bc_steps", self.cfg.agent.bc_pretrain_steps))  # older snapshots: done
        self.update_credit = int(c.get("update_credit", self.updates * self.cfg.update_every_steps))
        self._best_val = c.get("best_val")
        self.agent.load_snapshot_state(p["agent"])
        set_rng_state(p["rng"])
        if self.cfg.resume_replay and p.get("replay") is not None:
            self.replay.load_state_dict(p["replay"])
        elif self.cfg.resume_replay:
            warnings.warn(f"{self._resume_path} holds no replay: updates restart once it refills")
        if p.get("demos") is not None:
            self.demo_replay = demos.restore_demo_replay(p["demos"], self.spec, self.frame_stack, self.action_dim,
                                                         self.cfg.replay.nstep, self.cfg.replay.gamma, self.device)
        self.stats.restore(p.get("windows", {}), int(c["episodes"]))
        self.wandb_run_id = p.get("wandb_run_id")
        self._payload = None  # free the (possibly large) replay copy

    def close_envs(self) -> None:
        for env in (getattr(self, "train_env", None), getattr(self, "eval_env", None)):
            if env is not None and hasattr(env, "close"):
                try:
                    env.close()
                except Exception as exc:
                    warnings.warn(f"env close failed ({exc!r})")

    # ------------------------------------------------------------------- loop
    def train(self) -> dict[str, Any]:
        """Train until num_train_frames, train_minutes or a SIGINT/SIGTERM; returns the final metrics."""
        cfg, N = self.cfg, self.num_envs
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.logger = MetricLogger(cfg, self.work_dir, self.wandb_run_id, self._resumed_at)
        self.wandb_run_id = self.logger.wandb_run_id
        self._signals = StopSignals(self.snapshots.newest)
        self._t0 = time.perf_counter()
        self.stats.start_session(self.frames, self._t0)
        self._signals.install()
        resumed = self.replay.written > 0 or self.frames > 0
        # The demos and BC pre-training honour a stop between env steps / BC steps: the snapshot then
        # holds no demos (collected again on resume) or the BC steps done (a resume does the rest).
        if uses_demos(cfg.demos) and self.frames == 0 and (self.demo_replay is None
                                                           or self.bc_steps < cfg.agent.bc_pretrain_steps):
            if self.demo_replay is None and isinstance(cfg.demos, str):
                self.demo_replay = demos.load_dataset(cfg.demos, self.train_env, self.spec, self.frame_stack,
                                                      cfg.replay.nstep, cfg.replay.gamma, self.device)
            elif self.demo_replay is None:
                self.demo_replay = demos.load_demos(
                    cfg.demos, self.train_env, lambda n: self._make_expert(cfg, n), cfg.seed + DEMO_SEED_OFFSET,
                    self.spec, self.frame_stack, cfg.replay.nstep, cfg.replay.gamma, self.device,
                    stop=lambda: self._stop is not None)
            if self.demo_replay is not None:
                self.bc_steps = demos.pretrain_bc(self.agent, self.demo_replay, cfg.batch_size, self.bc_steps,
                                                  cfg.agent.bc_pretrain_steps, lambda: self._stop)
            if self._stop is None:
                self.agent.end_bc_pretraining()
        if cfg.eval_at_start and self.frames == 0 and self.eval_env is not None and self._stop is None:
            self._evaluate()  # where the (BC pre-trained) policy starts
        self.replay.mark_episode_break()
        obs, _ = self.train_env.reset(seed=cfg.seed + self.frames if resumed else cfg.seed)
        self.stats.start_interval(self.frames)
        metrics: dict[str, Any] = {}
        bar = tqdm(total=cfg.num_train_frames, initial=min(self.frames, cfg.num_train_frames), unit="frame",
                   dynamic_ncols=True, mininterval=1.0, disable=None)
        self._bar_visible = not bar.disable
        start_frames = self.frames
        try:
            while self.frames < cfg.num_train_frames and self._stop is None and not self._out_of_time():
                obs = self._iteration(obs)
                bar.update(N)
                if self._crossed(cfg.log_every):
                    metrics = self._log_train()
                    bar.set_postfix(fps=f"{metrics['fps']:.0f}", success=f"{metrics['success_rate']:.2f}")
                if cfg.eval_every_steps > 0 and self.eval_env is not None and self._crossed(cfg.eval_every_steps):
                    self._evaluate()
                if cfg.save_snapshot and self._crossed(cfg.snapshot_every_n):
                    self.save_snapshot()
            if self.stats.updates_pending or not metrics:
                metrics = self._log_train()
            if self._out_of_time() and self.frames < cfg.num_train_frames and self.frames > start_frames:
                say(f"[native] train_minutes={cfg.train_minutes} reached at {self.frames} frames")
                if self.eval_env is not None and self._stop is None and not self._crossed(cfg.eval_every_steps):
                    self._evaluate()  # the result the budget bought
            if cfg.save_snapshot or self._stop is not None:
                path = self.save_snapshot()
                if self._stop is not None:
                    say(f"[native] {self._stop} received: stopped after {self.frames} frames / {self.updates} "
                          f"updates; snapshot written to {path}. Resume with resume={self.work_dir}")
        except OSError as exc:  # a full disk outside the snapshot (train.csv, eval.csv, train.log)
            if isinstance(exc, DiskFull) or not disk_full(exc):
                raise
            raise self.snapshots.log_disk_full(exc, self.frames, self.save_snapshot) from None
        finally:
            self._updater.close()
            self.agent.close()
            bar.close()
            self._signals.restore()
            self.logger.close()
            self.close_envs()
        return {**metrics, **self.last_eval, "wall_s": self.wall_s(), "wall_s_before": self.wall_before,
                "frames": self.frames, "updates": self.updates,
                "episodes": self.stats.episodes, "interrupted": self._stop is not None, "stop_signal": self._stop}

    @property
    def _stop(self) -> str | None:
        """The first stop signal's name, None until one arrives."""
        return self._signals.name

    @staticmethod
    def _overlap(setting: bool | str) -> bool:
        """overlap_env_step=auto: only when torch's threads leave a core free. With every core in the
        update's thread pool the env step only competes with it."""
        return spare_cpu_core() if setting == "auto" else bool(setting)

    def wall_s(self) -> float:
        """Seconds this run has trained, over all its sessions (resumes add to it)."""
        return self.wall_before + time.perf_counter() - self._t0

    def _out_of_time(self) -> bool:
        """Has the run used its train_minutes of wall clock (over all sessions)?"""
        return self.cfg.train_minutes is not None and self.wall_s() >= 60.0 * float(self.cfg.train_minutes)

    def _crossed(self, every: int) -> bool:
        """Did the last iteration cross a multiple of `every` env frames?"""
        return every > 0 and self.frames // every > (self.frames - self.num_envs) // every

    def _iteration(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Act, then step the envs while the updates due so far run on the worker thread.

        The updates sample the replay as it stood before this step (DrQ-v2's order: act,
        update, step), so stepping and updating share no data and the result is the same
        with `overlap_env_step` on or off; they only stop waiting on each other.
        """
        cfg, N, dev = self.cfg, self.num_envs, self.device
        obs_t = {k: obs[k].to(dev, non_blocking=True) for k in self.keys}  # dict of (N, F, ...)
        if self.frames < cfg.num_explore_steps:
            action = torch.rand((N, self.action_dim), device=dev) * 2.0 - 1.0
        else:
            action = self.agent.act(obs_t, self.frames, eval_mode=False)    # (N, A)
        due = self.update_credit // cfg.update_every_steps - self.updates
        pending = self._updater.start(self._update, due) if due > 0 else None  # done here if not overlapping
        try:
            step = self.train_env.step(action.to(self.train_env.device))
        finally:  # never leave an update running behind an exception
            if pending is not None:
                pending.result()
        # Rows being reset hold no transition (`skip`); an ended row's obs is its final obs.
        self.replay.add(obs_t, action, step.reward, step.terminated, step.truncated, step.obs, cut=step.fault,
                        skip=step.reset)
        done = step.done
        if bool(done.any()):  # the episode bookkeeping runs only on steps where an env ended
            if cfg.use_self_imitation:
                self.replay.mark_success(torch.nonzero(done & (step.info["task_success"] > 0)).flatten())
            self.stats.record_episodes(step, done)
        self.frames += N
        if len(self.replay) >= self.learn_start:
            self.update_credit += N
        return step.obs

    def _update(self, count: int) -> None:
        """`count` agent updates on batches from the replay (and the demos)."""
        for _ in range(count):
            batch = demos.mixed_sample(self.replay, self.demo_replay, self.cfg.batch_size, self.demo_ratio,
                                       self.cfg.use_self_imitation)
            self.stats.add_update(self.agent.update(batch, self.frames))
            self.updates += 1

    # ---------------------------------------------------------------- logging
    def _log_train(self) -> dict[str, float]:
        m = self.stats.row(self.frames, self.updates, len(self.replay),
                           self.replay.success_count() if self.cfg.use_self_imitation else None,
                           progress_line=not self._bar_visible)
        self.logger.log("train", m, self.frames)
        return m

    def _evaluate(self) -> None:
        cfg = self.cfg
        video = self.work_dir / "eval_videos" / f"{self.frames}.mp4" if cfg.log_eval_video else None
        if cfg.num_eval_episodes >= LONG_EVAL_EPISODES:  # a wait of minutes from pixels: say what it is
            say(f"[eval] {cfg.num_eval_episodes} episodes at {self.frames:,} frames ...")
        metrics, written = self._episodes("evaluation", cfg.num_eval_episodes, EVAL_SEED_OFFSET, video)
        if metrics is None:
            return
        val: dict[str, float] = {}
        if cfg.num_val_episodes > 0:
            m, _ = self._episodes("validation", cfg.num_val_episodes, VAL_SEED_OFFSET)
            if m is None:
                return
            val = {"val/" + k.split("/", 1)[1]: v for k, v in m.items()}
        metrics["eval/wall_s"] = self.wall_s()  # when it was reached: the budget a claim is judged on
        self.last_eval = {**metrics, **val}
        self.logger.log("eval", self.last_eval, self.frames)
        say(eval_line(metrics, self.frames, cfg.num_eval_episodes))
        if val and self.snapshots.offer_best([val["val/success_rate"], val["val/episode_reward"]],
                                             self.snapshot_payload):
            say(f"[val] {self.frames:,} frames: success {val['val/success_rate']:.0%} on {cfg.num_val_episodes} "
                f"validation episodes, the best so far: {self.snapshots.dir / BEST}")
        self.stats.warn_if_long(self.frames)
        if written is not None:
            self.logger.log_video(written, self.frames)

    def _episodes(self, what: str, episodes: int, seed_offset: int, video: Path | None = None
                  ) -> tuple[dict[str, float] | None, Path | None]:
        """`evaluate` on the episodes seeded at seed + seed_offset; (None, None) when a stop aborted it."""
        m, written = evaluate(self.agent, self.eval_env, episodes, self.frames, self.cfg.seed + seed_offset, self.keys,
                              self.device, video, stop=lambda: self._stop is not None)
        if m is None:
            say(f"[native] {what} at {self.frames} frames aborted by {self._stop}: not logged")
        return m, written

    # -------------------------------------------------------------- snapshots
    def snapshot_payload(self, with_replay: bool) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "agent_name": self.agent.name, "agent": self.agent.snapshot_state(),
            "obs_spec": self.signature, "action_dim": self.action_dim,
            "counters": {"frames": self.frames, "updates": self.updates, "episodes": self.stats.episodes,
                         "update_credit": self.update_credit, "wall_s": self.wall_s(), "bc_steps": self.bc_steps,
                         "best_val": self.snapshots.best},
            "rng": rng_state(),
            "replay": self.replay.state_dict() if with_replay else None,
            "demos": self.demo_replay.state_dict() if with_replay and self.demo_replay is not None else None,
            "wandb_run_id": self.wandb_run_id,
            "windows": self.stats.windows(),
        }

    def save_snapshot(self) -> Path:
        """latest_snapshot.pt (with replay if resume_replay) and <frames>_snapshot.pt (agent only: small)."""
        return self.snapshots.save(self.snapshot_payload, self.frames, self.cfg.resume_replay)
