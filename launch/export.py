"""What `scripts/export_dataset.py` runs: the scripted expert (or a snapshot's policy) on the batched
MuJoCo env, each finished episode appended to a LeRobotDataset v3.0 (learning.lerobot_io).

Episode k is seeded with seed + k, as in the evaluation loop (learning.evaluation): the N envs run
N episodes at once, an env that finishes takes the next seed. Episodes are written in seed order
(a finished episode waits for the ones before it, at most N of them), so a dataset depends on its
seed, not on the number of envs. Row t of an episode holds the observation at step t, the action
taken from it (the joint targets sent that step, in the follower's units; `ee_delta` when the actor
produced an end-effector action) and the step's outcome (`next.reward`, `next.done`, `next.success`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

import envs  # noqa: F401  (headless GL before mujoco/genesis)
from envs.batched import BatchedLiftEnv
from envs.config import make_task_config
from envs.expert import ScriptedExpert
from envs.lift_env import make_mujoco_backend
from envs.task import LiftTask
from factories import MujocoLiftFactory, make_factory
from learning import envio
from learning.evaluation import snapshot_policy
from learning.lerobot_format import DEFAULT_TASK, to_follower
from learning.lerobot_io import DatasetWriter
from learning.snapshot import check_obs_spec, read_snapshot


class _Expert:
    """The scripted expert in the env's action_mode; keeps its end-effector action of the last call."""

    def __init__(self, env: BatchedLiftEnv) -> None:
        c = env.task.cfg
        self.env, self.expert = env, ScriptedExpert(env.num_envs, c.action_scale, c.lift_height, c.gripper_closed_below)
        self.ee: torch.Tensor | None = None

    def reset(self, info: Any, mask: torch.Tensor) -> None:
        self.expert.reset(info, mask)

    def __call__(self, obs: Any, info: Any) -> torch.Tensor:
        self.ee = self.expert.act(info)                                  # (N, 4)
        return self.env.from_ee_delta(self.ee)                           # (N, A)


class _Agent:
    """A snapshot's policy; its actions are the end-effector ones when its task is ee_delta."""

    def __init__(self, policy: Any, ee: bool) -> None:
        self.policy, self.is_ee, self.ee = policy, ee, None

    def reset(self, info: Any, mask: torch.Tensor) -> None:
        self.policy.reset(info, mask)

    def __call__(self, obs: Any, info: Any) -> torch.Tensor:
        a = self.policy(obs, info)
        self.ee = a if self.is_ee else None
        return a


def _build(checkpoint: str | None, n: int, seed: int, image_size: int, cameras: tuple[str, ...],
           task_kwargs: dict[str, Any]) -> tuple[BatchedLiftEnv, Any, bool]:
    if checkpoint is None:
        cfg = make_task_config(pixels=True, image_size=image_size, cameras=cameras, **task_kwargs)
        env = BatchedLiftEnv(LiftTask(make_mujoco_backend(cfg, n), cfg, seed), 1)
        return env, _Expert(env), True
    path, payload = read_snapshot(checkpoint, key="checkpoint")
    cfg = OmegaConf.create(payload["config"])
    env = make_factory(cfg).make_batched_eval_env(cfg, n)
    spec, frame_stack = envio.obs_spec(env.single_observation_space)
    check_obs_spec(payload["obs_spec"], envio.spec_signature(spec, frame_stack), path)
    ee = env.task.cfg.action_mode == "ee_delta"
    return env, _Agent(snapshot_policy(payload, cfg.agent, env, torch.device("cpu")), ee), ee


def export_dataset(out: str | Path, episodes: int, seed: int = 0, checkpoint: str | None = None,
                   only_success: bool = True, num_envs: int | None = None, image_size: int = 84,
                   cameras: tuple[str, ...] = ("wrist",), task: str = DEFAULT_TASK,
                   **task_kwargs: Any) -> dict[str, Any]:
    """Roll out `episodes` episodes and write those kept (all, or the successful ones with
    `only_success`) to a new dataset at `out`; returns a summary."""
    t0 = time.perf_counter()
    n = max(1, min(num_envs or MujocoLiftFactory.default_eval_envs, episodes))
    env, policy, has_ee = _build(checkpoint, n, seed, image_size, tuple(cameras), task_kwargs)
    tc = env.task.cfg
    cams = tuple(tc.cameras) if tc.pixels else ()
    fps = round(1.0 / tc.frame_skip_dt)
    low, high = env.task.joint_low.cpu(), env.task.joint_high.cpu()
    writer = DatasetWriter(out, fps, cams, tc.image_size, has_ee, task)
    kept = successes = 0
    try:
        slot = list(range(n))                            # the episode each env runs; >= episodes: idle
        obs, info = env.reset(seed=[seed + k for k in slot])
        policy.reset(info, torch.ones(n, dtype=torch.bool, device=env.device))
        rows: list[dict[str, list[np.ndarray]]] = [{} for _ in range(n)]
        done_eps: dict[int, tuple[dict[str, list[np.ndarray]], bool]] = {}
        queued, written = n, 0
        while written < episodes:
            state = to_follower(obs["low_dim_state"][:, -1, :6].cpu(), low, high).numpy()        # (N, 6)
            now = {"observation.state": state, "cube_pos": info["cube_pos"].cpu().numpy()}
            now.update({f"img:{c}": obs[f"rgb_{c}"][:, -1].permute(0, 2, 3, 1).cpu().numpy() for c in cams})
            action = policy(obs, info)
            step = env.step(action)
            sent = to_follower(step.info["joint_target"].cpu(), low, high).numpy()              # (N, 6)
            now.update({"action": sent, "next.reward": step.reward.cpu().numpy(),
                        "next.done": step.done.cpu().numpy(), "next.success": step.info["is_success"].cpu().numpy()})
            if has_ee:
                now["ee_delta"] = policy.ee.cpu().numpy()
            live = (~step.reset).cpu().numpy()
            for i in range(n):
                if live[i] and slot[i] < episodes:
                    for k, v in now.items():
                        rows[i].setdefault(k, []).append(v[i])
            obs, info = step.obs, step.info
            if bool(step.reset.any()):
                policy.reset(info, step.reset)
            ended = [i for i in torch.nonzero(step.done).flatten().tolist() if slot[i] < episodes]
            for i in ended:
                done_eps[slot[i]] = (rows[i], bool(rows[i]["next.success"][-1]))
                rows[i], slot[i] = {}, queued
                queued += 1
            if ended:
                env.seed_envs(ended, [seed + slot[i] for i in ended])
            while written in done_eps:                   # in seed order
                ep, won = done_eps.pop(written)
                written += 1
                successes += won
                if won or not only_success:
                    cols = {k: np.stack(v) for k, v in ep.items() if not k.startswith("img:")}
                    writer.add_episode(cols, {c: np.stack(ep[f"img:{c}"]) for c in cams})
                    kept += 1
    finally:
        env.close()
        info_json = writer.close()
    return {"out": str(out), "episodes": episodes, "kept": kept, "successes": successes,
            "frames": info_json["total_frames"], "fps": fps, "cameras": list(cams),
            "wall_s": round(time.perf_counter() - t0, 2)}
