"""RoboBase EnvFactory plugin for the lift task (Genesis and MuJoCo backends).

Subclasses RoboBase's `EnvFactory` when RoboBase is importable and works without it, so
nothing here needs RoboBase at import time. All parameters come from the config: the task
options live under `cfg.task` (the `task` group); RoboBase's own keys (`num_train_envs`, `frame_stack`,
`action_sequence`, `pixels`, `visual_observation_shape`, `seed`, `demos`) keep their meaning.
"""
from __future__ import annotations

import copy
import logging
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from envs.backend import Backend
from envs.batched import BatchedLiftEnv
from envs.config import ConfigError, TaskConfig, make_task_config
from envs.expert import ScriptedExpert, batch_info
from envs.genesis_env import make_genesis_backend
from envs.lift_env import LiftCubeEnv, make_mujoco_backend
from envs.task import LiftTask
from factories.vector_env import WrappedGenesisVectorEnv
from runconfig.rules import WRAPPER_KEYS, check_keys, check_value

try:  # RoboBase is optional: see README
    from robobase.envs.env import EnvFactory as _EnvFactoryBase
except ImportError:  # pragma: no cover - exercised when RoboBase is absent
    class _EnvFactoryBase:  # type: ignore[no-redef]
        """Stand-in with RoboBase's EnvFactory interface."""

log = logging.getLogger(__name__)


def task_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """TaskConfig kwargs from the run config: the `task` group (and `env.task`, if an env sets
    any), plus RoboBase's shared keys and the stage/reward groups."""
    kw: dict[str, Any] = {}
    for node in (cfg.get("task"), cfg.env.get("task") if "env" in cfg else None):
        if node is not None:
            kw.update(OmegaConf.to_container(node, resolve=True) or {})
    # Hydra groups each write their own node; the task sees them as plain options.
    if isinstance(cfg.get("curriculum_stage"), DictConfig | dict):
        kw["curriculum_stage"] = cfg.curriculum_stage.stage
    if isinstance(cfg.get("reward_version"), DictConfig | dict):
        kw["reward_version"] = cfg.reward_version.name
    if "episode_length" in cfg.env:
        kw["episode_length"] = cfg.env.episode_length
    kw["pixels"] = bool(cfg.pixels)
    shape = cfg.get("visual_observation_shape", None)
    if shape is not None:
        items = list(shape) if isinstance(shape, (list, tuple, ListConfig)) else None
        if items is None or len(items) != 2 or not all(isinstance(s, int) and not isinstance(s, bool)
                                                       for s in items) or items[0] != items[1]:
            shown = OmegaConf.to_container(shape) if OmegaConf.is_config(shape) else shape
            raise ConfigError(f"visual_observation_shape={shown!r} is invalid: allowed [S, S] (a square, S an "
                              "integer)")
        kw["image_size"] = items[0]
    return kw


class _LiftFactory(_EnvFactoryBase):
    """Shared demo hooks: scripted-expert demonstrations in RoboBase's demo format."""

    def _single_env(self, cfg: DictConfig) -> LiftCubeEnv:
        """One env in RoboBase's wrapper-chain form: its eval env, and what demos are recorded in."""
        return LiftCubeEnv(lambda tcfg: self._backend(cfg, tcfg, 1), frame_stack=int(cfg.frame_stack),
                           action_sequence=int(cfg.get("action_sequence", 1)), seed=int(cfg.seed) + 10_000,
                           **task_kwargs(cfg))

    def _backend(self, cfg: DictConfig, tcfg: TaskConfig, num_envs: int) -> Backend:
        raise NotImplementedError

    def make_batched_env(self, cfg: DictConfig) -> BatchedLiftEnv:
        """The native engine's train env: num_train_envs envs as one batch in this process, torch
        tensors on the sim device, one render per step (envs.batched). RoboBase gets make_train_env."""
        check_keys(cfg, WRAPPER_KEYS)
        tcfg = make_task_config(**task_kwargs(cfg))  # validated before any simulator starts
        backend = self._backend(cfg, tcfg, int(cfg.num_train_envs))
        return BatchedLiftEnv(LiftTask(backend, tcfg, int(cfg.seed)), int(cfg.frame_stack))

    def make_eval_env(self, cfg: DictConfig) -> gym.Env:
        """RoboBase's eval env: one gymnasium env in its wrapper-chain form (the native engine and the
        scripts evaluate on `make_batched_eval_env`)."""
        check_keys(cfg, WRAPPER_KEYS)
        return self._single_env(cfg)

    # Envs an evaluation runs at once when num_eval_envs is null (see eval_envs).
    default_eval_envs = 1

    def eval_envs(self, cfg: DictConfig, episodes: int | None = None) -> int:
        """How many envs evaluate `episodes` (default num_eval_episodes): num_eval_envs, or with null
        the backend's `default_eval_envs`, never more than the episodes (an env beyond them would idle)."""
        episodes = int(cfg.num_eval_episodes if episodes is None else episodes)
        n = check_value("num_eval_envs", cfg.get("num_eval_envs", None))
        return max(1, min(int(n) if n is not None else self.default_eval_envs, episodes))

    def make_batched_eval_env(self, cfg: DictConfig, episodes: int | None = None) -> BatchedLiftEnv:
        """The evaluation env of the native engine and the scripts: `eval_envs(cfg, episodes)` envs as one
        batch, the train env's contract (envs.batched) and observations. The evaluation seeds every
        episode itself (`BatchedLiftEnv.seed_envs`); the seed given here is only the task's initial one."""
        check_keys(cfg, ("frame_stack",))
        tcfg = make_task_config(**task_kwargs(cfg))  # validated before any simulator starts
        backend = self._backend(cfg, tcfg, self.eval_envs(cfg, episodes))
        return BatchedLiftEnv(LiftTask(backend, tcfg, int(cfg.seed) + 10_000), int(cfg.frame_stack))

    def make_expert(self, cfg: DictConfig, num_envs: int) -> ScriptedExpert:
        """The scripted expert for `num_envs` envs of this config's task (the native engine's demos)."""
        t = make_task_config(**task_kwargs(cfg))
        return ScriptedExpert(num_envs, t.action_scale, t.lift_height, t.gripper_closed_below,
                              noise=float(cfg.get("demo_noise", 0.0)), seed=int(cfg.seed))

    def collect_or_fetch_demos(self, cfg: DictConfig, num_demos: int) -> None:
        """Roll out the scripted expert; each demo is a list of RoboBase transitions."""
        env = self._single_env(cfg)
        task = env.task
        self._demos: list[list[tuple]] = []
        n = int(num_demos) if np.isfinite(num_demos) else 10
        for ep in range(n):
            obs, info = env.reset(seed=int(cfg.seed) * 1000 + ep)
            expert = ScriptedExpert(1, task.cfg.action_scale, task.cfg.lift_height, task.cfg.gripper_closed_below,
                                    noise=float(cfg.get("demo_noise", 0.0)), seed=int(cfg.seed) * 1000 + ep)
            binfo = task.reset_info()  # batched (1, ...) info the expert reads
            expert.reset(binfo)
            steps, done = [], False
            while not done:
                action = env.env.from_ee_delta(expert.act(binfo))[0].cpu().numpy()[None]  # (1, A): a sequence of one
                nobs, r, term, trunc, ninfo = env.step(action)
                binfo = batch_info(ninfo)
                steps.append((obs, action.astype(np.float32), r, term, trunc, info))
                obs, info, done = nobs, ninfo, term or trunc
            success = bool(info["is_success"])
            self._demos.append([(o, a, r, te, tr, {**i, "demo": int(success)}) for o, a, r, te, tr, i in steps]
                               + [(obs, None, None, None, None, info)])
            log.info("demo %d/%d: success=%s, %d steps", ep + 1, n, success, len(steps))
        env.close()

    def post_collect_or_fetch_demos(self, cfg: DictConfig) -> None:
        """Nothing to post-process: demo actions are already in [-1, 1]."""

    def load_demos_into_replay(self, cfg: DictConfig, buffer, is_demo_buffer: bool = False) -> None:
        """Adds the demos as RoboBase's replay buffer takes transitions: ONE frame per observation
        key (the buffer stacks frames itself) and the action without its sequence axis, (A,),
        as the Workspace's own adds strip them (`v[-1]`, `act[0]`)."""
        if not hasattr(self, "_demos"):
            raise RuntimeError("call collect_or_fetch_demos before load_demos_into_replay")
        for demo in copy.deepcopy(self._demos):
            if is_demo_buffer and demo[0][5]["demo"] != 1:
                continue  # a separate demo buffer keeps successful demos only
            for obs, action, rew, term, trunc, info in demo[:-1]:
                buffer.add(_last_frame(obs), action[0], rew, term, trunc, demo=info["demo"])
            if not getattr(buffer, "sequential", False):
                buffer.add_final(_last_frame(demo[-1][0]))


def _last_frame(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A frame-stacked single-env observation {key: (F, ...)} -> its newest frame {key: (...)}."""
    return {k: v[-1] for k, v in obs.items()}


def wants_torch(cfg: DictConfig) -> bool:
    """env.as_torch for make_train_env's gymnasium VectorEnv: `auto` gives tensors on the sim device
    when the config's engine is native, NumPy to RoboBase or anyone else. (The native engine itself
    trains on make_batched_env, always tensors.)"""
    value = cfg.env.get("as_torch", "auto")
    return OmegaConf.select(cfg, "engine.name") == "native" if value == "auto" else bool(value)


class GenesisLiftFactory(_LiftFactory):
    """N envs in one Genesis scene (WrappedGenesisVectorEnv); RoboBase's eval env: the same with N = 1;
    the native evaluation: one scene of `eval_envs` envs."""

    backend = "Genesis"
    # One scene steps all its envs in one call: on a 2-core CPU 16 envs step ~7x as many env-steps/s
    # as one (docs/benchmarks.md, genesis-env), so an evaluation of 10-50 episodes runs them 16 at a
    # time; more envs would mostly idle through the last round (they are stepped all the same).
    default_eval_envs = 16

    def make_train_env(self, cfg: DictConfig) -> WrappedGenesisVectorEnv:
        check_keys(cfg, WRAPPER_KEYS)
        return WrappedGenesisVectorEnv(
            task_kwargs(cfg), num_envs=int(cfg.num_train_envs), frame_stack=int(cfg.frame_stack),
            action_sequence=int(cfg.get("action_sequence", 1)), sim_device=str(cfg.env.get("sim_device", "cpu")),
            seed=int(cfg.seed), as_torch=wants_torch(cfg),
            renderer=str(cfg.env.get("renderer", "auto")))

    def _backend(self, cfg: DictConfig, tcfg: TaskConfig, num_envs: int) -> Backend:
        return make_genesis_backend(tcfg, num_envs, str(cfg.env.get("sim_device", "cpu")),
                                    str(cfg.env.get("renderer", "auto")))


def _mujoco_single(kw: dict[str, Any], frame_stack: int, action_sequence: int, seed: int) -> LiftCubeEnv:
    return LiftCubeEnv(make_mujoco_backend, frame_stack=frame_stack, action_sequence=action_sequence, seed=seed, **kw)


def _mujoco_worker(kw: dict[str, Any], frame_stack: int, action_sequence: int, seed: int) -> LiftCubeEnv:
    """In an AsyncVectorEnv worker process: one torch thread (the task's tensors are tiny, and
    N workers with 2 threads each oversubscribe the cores the learner needs)."""
    torch.set_num_threads(1)
    return _mujoco_single(kw, frame_stack, action_sequence, seed)


class MujocoLiftFactory(_LiftFactory):
    """MuJoCo. For RoboBase: an AsyncVectorEnv of single envs carrying the same transforms, in the
    same order. For the native engine: the N envs as one batch in this process."""

    backend = "MuJoCo"
    # MuJoCo steps (and renders) its envs one after another, so more envs do not make the physics
    # or the camera cheaper: the gain is the task's few hundred small torch ops per step, done once
    # for all envs, and no NumPy round trip. Ten share those well already; beyond that an env idles
    # (stepped all the same) more often in the last round of an evaluation.
    default_eval_envs = 10

    def _backend(self, cfg: DictConfig, tcfg: TaskConfig, num_envs: int) -> Backend:
            return make_mujoco_backend(tcfg, num_envs)

    def make_train_env(self, cfg: DictConfig) -> gym.vector.VectorEnv:
        check_keys(cfg, WRAPPER_KEYS)
        kw = task_kwargs(cfg)
        make_task_config(**kw)  # validate in this process, before any worker starts
        fs, t, seed = int(cfg.frame_stack), int(cfg.get("action_sequence", 1)), int(cfg.seed)
        if int(cfg.num_train_envs) == 1:  # in this process: leave the learner's torch_threads alone
            return gym.vector.SyncVectorEnv([lambda: _mujoco_single(kw, fs, t, seed)])
        fns = [lambda i=i: _mujoco_worker(kw, fs, t, seed + i) for i in range(int(cfg.num_train_envs))]
        return gym.vector.AsyncVectorEnv(fns, context="spawn")
