"""engine=robobase: RoboBase's `Workspace` trained on this project's EnvFactory plugin.

RoboBase's own train.py never passes an env factory and its resume is broken (see
docs/robobase.md), so this module is the entry point instead: it composes RoboBase's
own `robobase_config.yaml` with Hydra's compose API, writes our run config onto it (same key
names), and runs a `Workspace` subclass that

* resumes from our `resume=<run dir or snapshot>` key, loading with `weights_only=False`
  and keeping the LIVE config (RoboBase replaces it with the saved one, so a longer
  `num_train_frames` would be ignored);
* logs `train/success_rate` over ALL train envs (RoboBase only reports env 0's).

RoboBase is optional: without it `run_robobase` raises `ConfigError` before any simulator
starts, with the install recipe.
"""
from __future__ import annotations

import collections
import importlib.util
import logging
import os
import re
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from envs.config import ConfigError
from launch.report import eval_line, say
from learning.logger import CsvSink

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "engine=robobase needs RoboBase, which is not on PyPI. Install it next to this project "
    "(details: docs/robobase.md): git clone https://github.com/robobase-org/robobase; "
    "pip install --no-deps ./robobase; pip install natsort termcolor einops hydra-joblib-launcher "
    "'opencv-python-headless<4.12'; pip install --no-deps timm diffusers==0.29.0 torchvision "
    "(--no-deps so torch is never replaced). Or use engine=native")
EVAL_COLUMNS = ("eval/success_rate", "eval/episode_reward", "eval/episode_length")
WINDOW = 100  # finished train episodes in the success/return window (as the native engine)
# Keys copied verbatim: RoboBase uses the same names with the same meaning.
SHARED_KEYS = ("seed", "pixels", "visual_observation_shape", "frame_stack", "action_sequence", "num_train_envs",
               "num_train_frames", "replay_size_before_train", "update_every_steps", "num_eval_episodes",
               "save_snapshot", "batch_size", "demos", "log_eval_video")
# Our cadences count env frames; RoboBase counts loop iterations (N frames each).
FRAME_CADENCES = ("eval_every_steps", "snapshot_every_n", "log_every", "num_explore_steps")


def _make_torchvision_importable() -> None:
    """Let `import torchvision` succeed when its compiled ops cannot load.

    RoboBase imports timm, and timm imports torchvision at module level. PyPI's torchvision
    wheels are CUDA builds: next to a CPU-only torch their `_C` library fails to load, and
    torchvision then dies registering fake kernels for the missing ops ("operator
    torchvision::nms does not exist"). RoboBase's RL methods use none of those ops, so in that
    case only the meta registrations are skipped; a loadable torchvision is left untouched.
    """
    if "torchvision" in sys.modules:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    lib = next(Path(list(spec.submodule_search_locations)[0]).glob("_C*.so"), None)
    if lib is None:
        return
    import torch

    try:
        torch.ops.load_library(str(lib))
    except OSError:
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        warnings.warn("torchvision's compiled ops do not load with this torch build; "
                      "RoboBase's RL methods do not need them", stacklevel=2)


def require_robobase() -> None:
    """ConfigError with the install recipe unless RoboBase and what its methods import load."""
    if importlib.util.find_spec("robobase") is None:
        raise ConfigError(f"RoboBase is not installed. {INSTALL_HINT}")
    _make_torchvision_importable()
    try:
        import robobase.models  # noqa: F401  (pulls timm/torchvision, as the methods do)
        import robobase.workspace  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"RoboBase is installed but cannot be imported ({e}). {INSTALL_HINT}") from None


def _num_gpus(cfg: DictConfig) -> int:
    import torch

    want = str(cfg.device)
    return int(want != "cpu" and torch.cuda.is_available())


def _scale_schedule(schedule: str, n: int) -> str:
    """`linear(a,b,frames)` -> `linear(a,b,iterations)`: RoboBase steps schedules per iteration."""
    m = re.fullmatch(r"\s*linear\(([^,]+),([^,]+),\s*(\d+)\s*\)\s*", str(schedule))
    return f"linear({m[1]},{m[2]},{max(1, int(m[3]) // n)})" if m and n > 1 else str(schedule)


def compose_robobase_config(cfg: DictConfig, work_dir: Path) -> DictConfig:
    """RoboBase's own config for `method=<engine.method>` with our values written onto it."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    eng = cfg.engine
    method = str(OmegaConf.to_container(eng.methods or {}).get(eng.method, eng.method))
    available = sorted(p.stem for p in (Path(importlib.util.find_spec("robobase.cfgs").origin).parent
                                        / "method").glob("*.yaml"))
    if method not in available:
        raise ConfigError(f"engine.method={eng.method!r} (RoboBase method {method!r}) is invalid: allowed "
                          f"{', '.join(available)}, or a name mapped in engine.methods")
    backup = get_gh_backup()  # inside @hydra.main the global Hydra is taken: compose beside it
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="robobase.cfgs", version_base="1.3"):
            rb = compose("robobase_config", overrides=[f"method={method}", *list(eng.overrides or [])])
    finally:
        GlobalHydra.instance().clear()
        restore_gh_from_backup(backup)
    OmegaConf.set_struct(rb, False)
    ours = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    n = int(ours.num_train_envs)
    per_iter = n if eng.cadence_in_frames else 1
    for k in SHARED_KEYS:
        rb[k] = ours[k]
    for k in FRAME_CADENCES:
        rb[k] = max(1, int(ours[k]) // per_iter) if int(ours[k]) > 0 else 0
    rb.env = ours.env  # the factory reads env.*; RoboBase needs episode_length and stddev_schedule
    rb.env.env_name = "liftbase"
    rb.env.stddev_schedule = _scale_schedule(ours.env.stddev_schedule, per_iter)
    for k in ("reward_version", "curriculum_stage", "agent", "engine"):  # read by the factory / kept for the record
        if k in ours:
            rb[k] = ours[k]
    rb.replay.merge_with({k: ours.replay[k] for k in ("size", "nstep", "gamma")})
    rb.replay.num_workers = int(eng.replay_num_workers)
    rb.replay.pin_memory = bool(eng.pin_memory)
    a, m = ours.agent, rb.method
    for k in ("actor_lr", "critic_lr", "encoder_lr", "critic_target_tau", "stddev_clip", "init_temperature",
              "alpha_lr"):
        if k in a and k in m:
            m[k] = a[k]
    if "encoder_lr" in a and "view_fusion_lr" in m:
        m.view_fusion_lr = a.encoder_lr
    for net in ("actor_model", "critic_model"):
        if net in m and "hidden_dim" in a:
            m[net].mlp_nodes = [int(a.hidden_dim)] * len(m[net].mlp_nodes)
        if net in m and "feature_dim" in a:
            m[net].bottleneck_size = int(a.feature_dim)
    rb.num_gpus = _num_gpus(cfg)
    rb.save_csv = False  # crashes when new metric keys appear (robobase.md)
    rb.snapshot_every_n = rb.snapshot_every_n if rb.save_snapshot else 0
    use_wandb = bool(ours.wandb.use)
    rb.wandb = {"use": use_wandb, "project": ours.wandb.project, "entity": ours.wandb.entity, "name": ours.wandb.name}
    rb.tb = {"use": bool(ours.tb.use) and not use_wandb,  # RoboBase allows one
             "log_dir": str(work_dir / "tb"), "name": "robobase"}
    rb.resume = ours.resume
    if rb.replay_size_before_train * rb.action_repeat * rb.action_sequence < rb.env.episode_length:
        raise ConfigError(f"replay_size_before_train={rb.replay_size_before_train} is invalid for engine=robobase: "
                          f"allowed >= env.episode_length ({rb.env.episode_length})")
    return rb


def read_robobase_snapshot(resume: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """Load a RoboBase snapshot (a run dir or a .pt); ConfigError if missing or not RoboBase's.

    `weights_only=False`: the payload holds a DictConfig, which torch>=2.6 refuses by default.
    """
    import torch

    from learning.snapshot import resolve_snapshot_path

    try:
        path = resolve_snapshot_path(resume)
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001  one clear message for any unreadable resume target
        raise ConfigError(f"resume={str(resume)!r} cannot be loaded ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or "_main_loop_iterations" not in payload or "agent" not in payload:
        raise ConfigError(f"resume={str(resume)!r}: {path} is not a RoboBase snapshot (engine=robobase writes "
                          "snapshots/latest_snapshot.pt); a native snapshot resumes with engine=native")
    return path, payload


def _workspace_class() -> type:
    """Defined lazily: the base class exists only when RoboBase is importable."""
    from robobase.workspace import Workspace

    class LiftWorkspace(Workspace):
        """Workspace with a working resume and a train success rate over all envs."""

        def __init__(self, cfg: DictConfig, env_factory: Any, work_dir: Path,
                     resume: tuple[Path, dict[str, Any]] | None = None) -> None:
            super().__init__(cfg, env_factory=env_factory, work_dir=str(work_dir))
            n = self.train_envs.num_envs
            self._returns = np.zeros(n, dtype=np.float64)
            self._success_window: collections.deque = collections.deque(maxlen=WINDOW)
            self._return_window: collections.deque = collections.deque(maxlen=WINDOW)
            self.train_episodes = self.train_successes = 0
            self.last_eval: dict[str, float] = {}
            self._eval_csv = CsvSink(Path(work_dir) / "eval.csv")
            self.last_train: dict[str, float] = {}
            self._log_metrics = self.logger.log_metrics
            self.logger.log_metrics = self._log_with_all_envs  # every train log gains the all-env rates
            mg = getattr(self.logger, "_train_mg", None)
            if mg is not None and hasattr(mg, "_formating"):  # show them on the console too
                mg._formating = [*mg._formating, ("success_rate", "SR", "float"), ("episode_return", "R", "float")]
            if resume is not None:
                self.load_snapshot(*resume)

        def _add_to_replay(self, actions, observations, rewards, terminations, truncations, infos, next_infos):
            """Count every env's finished episode before RoboBase consumes the step."""
            self._returns += np.asarray(rewards, dtype=np.float64)
            for i in np.flatnonzero(np.logical_or(terminations, truncations)):
                success = float(np.asarray(next_infos["final_info"][i].get("task_success", 0)).item() > 0)
                self._success_window.append(success)
                self._return_window.append(float(self._returns[i]))
                self.train_episodes += 1
                self.train_successes += int(success)
                self._returns[i] = 0.0
            super()._add_to_replay(actions, observations, rewards, terminations, truncations, infos, next_infos)

        def _all_env_metrics(self) -> dict[str, float]:
            if not self._success_window:
                return {}
            return {"success_rate": float(np.mean(self._success_window)),
                    "episode_return": float(np.mean(self._return_window)),
                    "episodes_all_envs": float(self.train_episodes)}

        def _log_with_all_envs(self, metrics: dict[str, Any], step: int, prefix: str) -> None:
            if prefix == "train":
                metrics = {**metrics, **self._all_env_metrics()}
                self.last_train = {f"train/{k}": float(v) for k, v in metrics.items() if np.isscalar(v)}
            elif prefix == "eval":
                self.last_eval = {f"eval/{k}": float(v) for k, v in metrics.items() if np.isscalar(v)}
                if "episode_success" in metrics:
                    self.last_eval["eval/success_rate"] = float(metrics["episode_success"])
                row = {k: self.last_eval[k] for k in EVAL_COLUMNS if k in self.last_eval}
                self._eval_csv.write({"frames": step, **row})  # the native engine's eval.csv, for compare.py
                say(eval_line(row, step, int(self.cfg.num_eval_episodes)))
            self._log_metrics(metrics, step, prefix)

        def load_snapshot(self, path: Path | None = None, payload: dict[str, Any] | None = None) -> None:
            """Weights and counters only; the live config stays (RoboBase overwrote it with the saved one)."""
            if payload is None:
                path, payload = read_robobase_snapshot(path or self.work_dir)
            saved = payload.get("cfg")
            if saved is not None and int(saved.num_train_envs) != int(self.cfg.num_train_envs):
                warnings.warn(f"{path} was trained with num_train_envs={saved.num_train_envs}, this run has "
                              f"{self.cfg.num_train_envs}: frame counters continue from its iterations", stacklevel=2)
            self.agent.load_state_dict(payload["agent"])
            for k in ("_pretrain_step", "_main_loop_iterations", "_global_env_episode"):
                setattr(self, k, int(payload.get(k, 0)))
            say(f"[robobase] resumed {path}: iteration {self.main_loop_iterations}, "
                  f"{self.global_env_steps} frames; replay refills before updates restart")

    return LiftWorkspace


def run_robobase(cfg: DictConfig, factory: Any, work_dir: str | Path) -> dict[str, Any]:
    """Train RoboBase's Workspace on `factory`; returns the final metrics (train/*, eval/*, counters)."""
    require_robobase()
    work_dir = Path(work_dir)
    rb_cfg = compose_robobase_config(cfg, work_dir)
    resume = read_robobase_snapshot(cfg.resume) if cfg.resume else None  # before any simulator
    if cfg.wandb.use and cfg.wandb.mode:
        os.environ.setdefault("WANDB_MODE", str(cfg.wandb.mode))  # RoboBase's wandb.init takes no mode
        if cfg.wandb.entity:
            os.environ.setdefault("WANDB_ENTITY", str(cfg.wandb.entity))
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "robobase_config.yaml").write_text(OmegaConf.to_yaml(rb_cfg))
    ws = _workspace_class()(rb_cfg, factory, work_dir, resume)
    start_frames, t0 = ws.global_env_steps, time.perf_counter()
    ws.train()
    wall = time.perf_counter() - t0
    frames = ws.global_env_steps
    result: dict[str, Any] = {**ws.last_train, **ws.last_eval, "frames": frames,
                              "iterations": ws.main_loop_iterations, "episodes": ws.global_env_episodes,
                              "wall_s": wall, "samples_per_s": (frames - start_frames) / max(wall, 1e-9)}
    if ws.train_episodes:
        result["train/success_rate"] = ws._all_env_metrics()["success_rate"]
        result["train/episode_return"] = ws._all_env_metrics()["episode_return"]
    say(f"[robobase] done: {frames} frames, {result['samples_per_s']:.1f} samples/s, "
          f"train success {result.get('train/success_rate', float('nan')):.2f}")
    return result
