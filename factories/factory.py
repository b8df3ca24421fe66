"""RoboBase EnvFactory plugin for the lift task (Genesis and MuJoCo backends).

Subclasses RoboBase's `EnvFactory` when RoboBase is importable and works without it, so
nothing here needs RoboBase at import time. All parameters come from the config, read once per
call as a typed `FactoryConfig` (factories.config: a key RoboBase's own config lacks takes its
declared default): the task options live under `cfg.task` (the `task` group); RoboBase's own keys
(`num_train_envs`, `frame_stack`, `action_sequence`, `pixels`, `visual_observation_shape`, `seed`,
`demos`) keep their meaning.
"""
from __future__ import annotations

import copy
import logging
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig

from envs.backend import Backend
from envs.batched import BatchedLiftEnv
from envs.config import TaskConfig, make_task_config
from envs.expert import ScriptedExpert, batch_info
from envs.genesis_env import make_genesis_backend
from envs.lift_env import LiftCubeEnv, make_mujoco_backend
from envs.task import LiftTask
from factories.config import FactoryConfig, factory_config, task_kwargs  # noqa: F401  (task_kwargs re-exported)
from factories.vector_env import WrappedGenesisVectorEnv

try:  # RoboBase is optional: see README
    from robobase.envs.env import EnvFactory as _EnvFactoryBase
except ImportError:  # pragma: no cover - exercised when RoboBase is absent
    class _EnvFactoryBase:  # type: ignore[no-redef]
        """Stand-in with RoboBase's EnvFactory interface."""

log = logging.getLogger(__name__)


class _LiftFactory(_EnvFactoryBase):
    """Shared demo hooks: scripted-expert demonstrations in RoboBase's demo format."""

    def _single_env(self, fc: FactoryConfig) -> LiftCubeEnv:
        """One env in RoboBase's wrapper-chain form: its eval env, and what demos are recorded in."""
        return LiftCubeEnv(lambda tcfg: self._backend(fc, tcfg, 1), frame_stack=fc.frame_stack,
                           action_sequence=fc.action_sequence, seed=fc.seed + 10_000, **fc.eval_task)

    def _backend(self, fc: FactoryConfig, tcfg: TaskConfig, num_envs: int) -> Backend:
        raise NotImplementedError

    def make_batched_env(self, cfg: DictConfig) -> BatchedLiftEnv:
        """The native engine's train env: num_train_envs envs as one batch in this process, torch
        tensors on the sim device, one render per step (envs.batched). RoboBase gets make_train_env."""
        fc = factory_config(cfg)
        tcfg = fc.task_config()  # validated before any simulator starts
        backend = self._backend(fc, tcfg, fc.num_train_envs)
        return BatchedLiftEnv(LiftTask(backend, tcfg, fc.seed), fc.frame_stack)

    def make_eval_env(self, cfg: DictConfig) -> gym.Env:
        """RoboBase's eval env: one gymnasium env in its wrapper-chain form (the native engine and the
        scripts evaluate on `make_batched_eval_env`)."""
        return self._single_env(factory_config(cfg))

    # Envs an evaluation runs at once when num_eval_envs is null (see eval_envs).
    default_eval_envs = 1

    def eval_envs(self, cfg: DictConfig | FactoryConfig, episodes: int | None = None) -> int:
        """How many envs evaluate `episodes` (default num_eval_episodes): num_eval_envs, or with null
        the backend's `default_eval_envs`, never more than the episodes (an env beyond them would idle)."""
        fc = cfg if isinstance(cfg, FactoryConfig) else factory_config(cfg)
        episodes = fc.num_eval_episodes if episodes is None else int(episodes)
        n = fc.num_eval_envs
        return max(1, min(int(n) if n is not None else self.default_eval_envs, episodes))

    def make_batched_eval_env(self, cfg: DictConfig, episodes: int | None = None) -> BatchedLiftEnv:
        """The evaluation env of the native engine and the scripts: `eval_envs(cfg, episodes)` envs as one
        batch, the train env's contract (envs.batched) and observations. The evaluation seeds every
        episode itself (`BatchedLiftEnv.seed_envs`); the seed given here is only the task's initial one."""
        fc = factory_config(cfg)
        tcfg = make_task_config(**fc.eval_task)  # validated before any simulator starts
        backend = self._backend(fc, tcfg, self.eval_envs(fc, episodes))
        return BatchedLiftEnv(LiftTask(backend, tcfg, fc.seed + 10_000), fc.frame_stack)

    def make_expert(self, cfg: DictConfig, num_envs: int) -> ScriptedExpert:
        """The scripted expert for `num_envs` envs of this config's task (the native engine's demos)."""
        fc = factory_config(cfg)
        t = fc.task_config()
        return ScriptedExpert(num_envs, t.action_scale, t.lift_height, t.gripper_closed_below,
                              noise=fc.demo_noise, seed=fc.seed)

    def collect_or_fetch_demos(self, cfg: DictConfig, num_demos: int) -> None:
        """Roll out the scripted expert; each demo is a list of RoboBase transitions."""
        fc = factory_config(cfg)
        env = self._single_env(fc)
        task = env.task
        self._demos: list[list[tuple]] = []
        n = int(num_demos) if np.isfinite(num_demos) else 10
        for ep in range(n):
            obs, info = env.reset(seed=fc.seed * 1000 + ep)
            expert = ScriptedExpert(1, task.cfg.action_scale, task.cfg.lift_height, task.cfg.gripper_closed_below,
                                    noise=fc.demo_noise, seed=fc.seed * 1000 + ep)
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


def wants_torch(fc: FactoryConfig) -> bool:
    """env.as_torch for make_train_env's gymnasium VectorEnv: `auto` gives tensors on the sim device
    when the config's engine is native, NumPy to RoboBase or anyone else. (The native engine itself
    trains on make_batched_env, always tensors.)"""
    return fc.engine == "native" if fc.as_torch == "auto" else bool(fc.as_torch)


class GenesisLiftFactory(_LiftFactory):
    """N envs in one Genesis scene (WrappedGenesisVectorEnv); RoboBase's eval env: the same with N = 1;
    the native evaluation: one scene of `eval_envs` envs."""

    backend = "Genesis"
    # One scene steps all its envs in one call: on a 2-core CPU 16 envs step ~7x as many env-steps/s
    # as one (docs/benchmarks.md, genesis-env), so an evaluation of 10-50 episodes runs them 16 at a
    # time; more envs would mostly idle through the last round (they are stepped all the same).
    default_eval_envs = 16

    def make_train_env(self, cfg: DictConfig) -> WrappedGenesisVectorEnv:
        fc = factory_config(cfg)
        return WrappedGenesisVectorEnv(
            fc.task, num_envs=fc.num_train_envs, frame_stack=fc.frame_stack, action_sequence=fc.action_sequence,
            sim_device=fc.sim_device, seed=fc.seed, as_torch=wants_torch(fc), renderer=fc.renderer)

    def _backend(self, fc: FactoryConfig, tcfg: TaskConfig, num_envs: int) -> Backend:
        return make_genesis_backend(tcfg, num_envs, fc.sim_device, fc.renderer)


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

    def _backend(self, fc: FactoryConfig, tcfg: TaskConfig, num_envs: int) -> Backend:
        return make_mujoco_backend(tcfg, num_envs)

    def make_train_env(self, cfg: DictConfig) -> gym.vector.VectorEnv:
        fc = factory_config(cfg)
        kw = fc.task
        fc.task_config()  # validate in this process, before any worker starts
        fs, t, seed = fc.frame_stack, fc.action_sequence, fc.seed
        if fc.num_train_envs == 1:  # in this process: leave the learner's torch_threads alone
            return gym.vector.SyncVectorEnv([lambda: _mujoco_single(kw, fs, t, seed)])
        fns = [lambda i=i: _mujoco_worker(kw, fs, t, seed + i) for i in range(fc.num_train_envs)]
        return gym.vector.AsyncVectorEnv(fns, context="spawn")
