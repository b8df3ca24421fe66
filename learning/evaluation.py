"""Episodes with a fixed policy on the batched eval env, and their statistics.

One episode loop serves the trainer's periodic evaluation (the agent's mean action),
`scripts/eval.py` (a saved agent) and `scripts/record_expert.py` (the scripted expert,
`launch/evaluate.py`), so a success rate or max cube height means the same thing wherever it
is printed.

The env is the batched contract the trainer steps (`envs.batched.BatchedLiftEnv`): its N envs
run N episodes at once. Episode k is seeded with `seed + k` (`seed_envs`), whichever env runs it,
so its start state, and with a deterministic policy the whole episode, is that of a single
env's `reset(seed=seed + k)`. An env whose episode ends takes the next seed from the queue and
starts it on the next step (the env's one-step-late auto-reset); the per-episode sums are (N,)
tensors updated for all envs at once, and Python only looks at an env when its episode ends.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import imageio.v2 as imageio
import numpy as np
import torch

from envs.batched import rescale_from_tanh
from learning import envio
from learning.agents import make_agent

Obs = Mapping[str, torch.Tensor]
Info = Mapping[str, torch.Tensor]


class Policy(Protocol):
    def reset(self, info: Info, mask: torch.Tensor) -> None:
        """The envs in `mask` (N,) start an episode; `info` holds their reset info (N, ...)."""

    def __call__(self, obs: Obs, info: Info) -> torch.Tensor:
        """(N, 4) actions in [-1, 1] for the observations (N, F, ...) and the latest info (N, ...)."""


class AgentPolicy:
    """The agent's mean action for the N envs, passed through RoboBase's RescaleFromTanh as an
    agent's actions are at evaluation (the single eval env of RoboBase's wrapper chain).

    `per_env` (the default) runs the agent on each env's observation as a batch of one. A CPU
    matrix product's rounding depends on the batch's row count (BLAS picks its kernel by it),
    and a policy turns a last-bit difference in one action into a different next frame, so a
    batched forward pass would make an episode depend on how many envs share the batch. One row
    at a time, an episode is a function of its seed alone, equal to a single env's and the same
    for any num_eval_envs; the env steps, the task and the renders stay batched. `per_env=False`
    acts for the whole batch at once: faster where the forward pass dominates (a GPU, many envs),
    reproducible for a fixed num_eval_envs only.
    """

    def __init__(self, agent: Any, frames: int, keys: Any, device: torch.device, per_env: bool = True) -> None:
        self.agent, self.frames, self.keys, self.device = agent, frames, list(keys), device
        self.per_env = per_env

    def reset(self, info: Info, mask: torch.Tensor) -> None:
        pass

    def __call__(self, obs: Obs, info: Info) -> torch.Tensor:
        batch = {k: obs[k].to(self.device, non_blocking=True) for k in self.keys}   # (N, F, ...)
        if not self.per_env:
            return rescale_from_tanh(self.agent.act(batch, self.frames, eval_mode=True))  # (N, A)
        n = next(iter(batch.values())).shape[0]
        rows = [self.agent.act({k: v[i:i + 1] for k, v in batch.items()}, self.frames, eval_mode=True)
                for i in range(n)]                                                 # N x (1, A)
        return rescale_from_tanh(torch.cat(rows))                                  # (N, A)


class _Sums:
    """Per-env running sums of the episodes in progress, (N,) tensors on the env's device."""

    def __init__(self, info: Info) -> None:
        z = info["cube_z"].double()
        self.ret, self.success = torch.zeros_like(z), torch.zeros_like(z)
        self.z = z.clone()                                   # max cube z counts the rest height
        self.grasps = torch.zeros(z.shape, dtype=torch.long, device=z.device)
        self.length = torch.zeros_like(self.grasps)

    def add(self, reward: torch.Tensor, info: Info, reset: torch.Tensor) -> None:
        """One step of all envs; a `reset` row (N,) made no transition and starts its sums afresh."""
        z = info["cube_z"].double()
        zero = torch.zeros_like(z)
        self.ret = torch.where(reset, zero, self.ret + reward.double())
        self.success = torch.where(reset, zero, torch.maximum(self.success, info["task_success"].double()))
        self.z = torch.where(reset, z, torch.maximum(self.z, z))
        self.grasps = torch.where(reset, 0, self.grasps + info["is_grasping"].long())
        self.length = torch.where(reset, 0, self.length + 1)

    def episodes(self, ids: list[int]) -> list[dict[str, Any]]:
        """The finished episodes of envs `ids`: one host copy of the (N, 5) sums."""
        table = torch.stack([self.ret, self.success, self.z, self.grasps.double(), self.length.double()], 1).cpu()
        return [{"return": float(table[i, 0]), "success": float(table[i, 1]), "max_cube_z": float(table[i, 2]),
                 "grasp_steps": int(table[i, 3]), "length": int(table[i, 4])} for i in ids]


def run_episodes(policy: Policy, env: Any, episodes: int, seed: int, record: int = 0, progress: bool = True,
                 stop: Callable[[], bool] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """`episodes` (>= 1) episodes from seeds seed, seed+1, ..., on the N envs of `env` at once, the
    first `record` with video frames (`env.render(i)` of the env running them); (statistics,
    episodes in episode order), or None when `stop()` aborted the evaluation. With `progress`, a
    line per episode on stderr, in episode order (the scripts'; the trainer prints one line per
    evaluation). Envs beyond the episodes still to run step on idle; their episodes are not counted."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes!r} is invalid: allowed an integer >= 1")
    n = int(env.num_envs)
    slot_episode = list(range(n))                        # the episode each env runs; >= episodes: idle
    obs, info = env.reset(seed=[seed + k for k in slot_episode])
    policy.reset(info, torch.ones(n, dtype=torch.bool, device=info["cube_z"].device))
    sums = _Sums(info)
    results: list[dict[str, Any] | None] = [None] * episodes
    videos: dict[int, list[np.ndarray]] = {k: [env.render(k)] for k in range(min(record, n, episodes))}
    filming = {k: k for k in videos}                     # env -> the recorded episode it runs
    queued, finished, printed = n, 0, 0
    while finished < episodes:
        if stop is not None and stop():
            return None
        step = env.step(policy(obs, info))
        obs, info = step.obs, step.info
        sums.add(step.reward, info, step.reset)
        if bool(step.reset.any()):
            policy.reset(info, step.reset)
        for i, k in filming.items():                     # the final frame of an ending episode too
            videos[k].append(env.render(i))
        if not bool(step.done.any()):
            continue
        ended = [i for i in torch.nonzero(step.done).flatten().tolist() if slot_episode[i] < episodes]
        for i, e in zip(ended, sums.episodes(ended)):
            k = slot_episode[i]
            results[k] = {**e, "video": videos.pop(k, [])}
            finished += 1
            filming.pop(i, None)
            slot_episode[i] = queued                     # the next episode: the next step starts it
            queued += 1
            if queued <= min(record, episodes):          # its first frame is the next step's
                videos[queued - 1], filming[i] = [], queued - 1
        env.seed_envs(ended, [seed + slot_episode[i] for i in ended])
        while progress and printed < episodes and results[printed] is not None:
            e = results[printed]
            printed += 1
            print(f"episode {printed}/{episodes}: return {e['return']:.1f}, success {bool(e['success'])}, "
                  f"max cube z {e['max_cube_z']:.3f} m, {e['length']} steps", file=sys.stderr, flush=True)
    eps = [e for e in results if e is not None]
    return summarize(eps), eps


def summarize(eps: list[dict[str, Any]]) -> dict[str, Any]:
    """Means (and spreads) over episodes, under the names eval.json and the block use."""
    col = {k: np.array([e[k] for e in eps], dtype=np.float64) for k in
           ("return", "success", "max_cube_z", "grasp_steps", "length")}
    return {"episodes": len(eps), "mean_reward": float(col["return"].mean()), "std_reward": float(col["return"].std()),
            "success_rate": float(col["success"].mean()), "max_cube_z": float(col["max_cube_z"].mean()),
            "std_max_cube_z": float(col["max_cube_z"].std()), "mean_grasp_steps": float(col["grasp_steps"].mean()),
            "mean_length": float(col["length"].mean()), "successes": [bool(s) for s in col["success"]]}


def evaluate(agent: Any, env: Any, num_episodes: int, frames: int, seed: int, keys: Any,
             device: torch.device, video_path: Path | None = None, stop: Callable[[], bool] | None = None,
             per_env: bool = True) -> tuple[dict[str, float] | None, Path | None]:
    """The trainer's evaluation: (eval/* metrics, written video path or None). Metrics are None
    when `stop()` aborted it (a partial evaluation would mislead). `per_env`: see AgentPolicy."""
    if num_episodes == 0:
        return {"eval/success_rate": 0.0, "eval/episode_reward": 0.0, "eval/episode_length": 0.0}, None
    out = run_episodes(AgentPolicy(agent, frames, keys, device, per_env), env, num_episodes, seed,
                       record=int(video_path is not None), progress=False, stop=stop)
    if out is None:
        return None, None
    s, eps = out
    metrics = {"eval/success_rate": s["success_rate"], "eval/episode_reward": s["mean_reward"],
               "eval/episode_length": s["mean_length"], "eval/max_cube_z": s["max_cube_z"]}
    written = write_video(eps[0]["video"], video_path) if video_path is not None else None
    return metrics, written


def snapshot_policy(payload: dict[str, Any], agent_cfg: Any, env: Any, device: torch.device) -> AgentPolicy:
    """A snapshot's agent as the mean-action policy on the batched `env` (whose observations are the
    snapshot's)."""
    spec, frame_stack = envio.obs_spec(env.single_observation_space)
    agent = make_agent(agent_cfg, spec, frame_stack, int(env.action_dim), device)
    agent.load_snapshot_state(payload["agent"])
    return AgentPolicy(agent, int(payload["counters"]["frames"]), list(spec), device)


def write_video(frames: list[np.ndarray], path: Path, fps: int = 50) -> Path | None:
    """HxWx3 uint8 frames -> mp4 (imageio-ffmpeg) at the 50 Hz control rate, so it plays in real time.
    Returns None (with a warning) if writing fails."""
    if not frames:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimsave(str(path), [np.asarray(f, dtype=np.uint8) for f in frames], fps=fps,
                        macro_block_size=1)
        return path
    except Exception as exc:
        warnings.warn(f"eval video not written ({exc!r})")
        return None
