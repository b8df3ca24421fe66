"""Episodes with a fixed policy on the single (unbatched) eval env, and their statistics.

One episode loop serves the trainer's periodic evaluation (the agent's mean action),
`scripts/eval.py` (a saved agent) and `scripts/record_expert.py` (the scripted expert,
`launch/evaluate.py`), so a success rate or max cube height means the same thing wherever it
is printed.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Protocol

import imageio.v2 as imageio
import numpy as np
import torch

from learning import envio
from learning.agents import make_agent
from learning.replay import as_tensor


class Policy(Protocol):
    def reset(self, info: dict[str, Any]) -> None: ...

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> Any: ...


class AgentPolicy:
    """The agent's mean action, shaped as the env takes it (tensor in, tensor out)."""

    def __init__(self, agent: Any, env: Any, frames: int, keys: Any, device: torch.device) -> None:
        self.agent, self.frames, self.keys, self.device = agent, frames, list(keys), device
        self.action_shape = getattr(env.action_space, "shape", None) or (1, agent.action_dim)

    def reset(self, info: dict[str, Any]) -> None:
        pass

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> Any:
        batch = {k: as_tensor(obs[k], self.device)[None] for k in self.keys}     # (1, F, ...)
        action = self.agent.act(batch, self.frames, eval_mode=True)[0].reshape(self.action_shape)
        return action if isinstance(obs[self.keys[0]], torch.Tensor) else action.cpu().numpy()


def run_episode(policy: Policy, env: Any, seed: int, record: bool = False, max_steps: int = 100_000,
                stop: Callable[[], bool] | None = None) -> dict[str, Any] | None:
    """One episode. Success: `task_success` reached at any step; max cube z counts the rest height.
    None when `stop()` turned true mid-episode (a stop signal: the caller snapshots at once)."""
    obs, info = env.reset(seed=seed)
    policy.reset(info)
    video = [env.render()] if record else []
    total, success, z, grasps, steps, done = 0.0, 0.0, float(info["cube_z"]), 0, 0, False
    while not done and steps < max_steps:
        if stop is not None and stop():
            return None
        obs, reward, terminated, truncated, info = env.step(policy(obs, info))
        total += float(reward)
        success = max(success, float(info["task_success"]))
        z = max(z, float(info["cube_z"]))
        grasps += int(bool(info["is_grasping"]))
        steps += 1
        done = bool(terminated) or bool(truncated)
        if record:
            video.append(env.render())
    return {"return": total, "success": success, "max_cube_z": z, "length": steps, "grasp_steps": grasps,
            "video": video}


def summarize(eps: list[dict[str, Any]]) -> dict[str, Any]:
    """Means (and spreads) over episodes, under the names eval.json and the block use."""
    col = {k: np.array([e[k] for e in eps], dtype=np.float64) for k in
           ("return", "success", "max_cube_z", "grasp_steps", "length")}
    return {"episodes": len(eps), "mean_reward": float(col["return"].mean()), "std_reward": float(col["return"].std()),
            "success_rate": float(col["success"].mean()), "max_cube_z": float(col["max_cube_z"].mean()),
            "std_max_cube_z": float(col["max_cube_z"].std()), "mean_grasp_steps": float(col["grasp_steps"].mean()),
            "mean_length": float(col["length"].mean()), "successes": [bool(s) for s in col["success"]]}


def run_episodes(policy: Policy, env: Any, episodes: int, seed: int, record: int = 0, progress: bool = True,
                 stop: Callable[[], bool] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """`episodes` (>= 1) episodes from seeds seed, seed+1, ..., the first `record` with video frames;
    (statistics, episodes), or None when `stop()` aborted one. With `progress`, a line per episode
    on stderr (the scripts'; the trainer prints one line per evaluation)."""
    eps = []
    for ep in range(episodes):
        e = run_episode(policy, env, seed + ep, record=ep < record, stop=stop)
        if e is None:
            return None
        eps.append(e)
        if progress:
            print(f"episode {ep + 1}/{episodes}: return {e['return']:.1f}, success {bool(e['success'])}, "
                  f"max cube z {e['max_cube_z']:.3f} m, {e['length']} steps", file=sys.stderr, flush=True)
    return summarize(eps), eps


def evaluate(agent: Any, env: Any, num_episodes: int, frames: int, seed: int, keys: Any,
             device: torch.device, video_path: Path | None = None, stop: Callable[[], bool] | None = None
             ) -> tuple[dict[str, float] | None, Path | None]:
    """The trainer's evaluation: (eval/* metrics, written video path or None). Metrics are None
    when `stop()` aborted it (a partial evaluation would mislead)."""
    if num_episodes == 0:
        return {"eval/success_rate": 0.0, "eval/episode_reward": 0.0, "eval/episode_length": 0.0}, None
    out = run_episodes(AgentPolicy(agent, env, frames, keys, device), env, num_episodes, seed,
                       record=int(video_path is not None), progress=False, stop=stop)
    if out is None:
        return None, None
    s, eps = out
    metrics = {"eval/success_rate": s["success_rate"], "eval/episode_reward": s["mean_reward"],
               "eval/episode_length": s["mean_length"], "eval/max_cube_z": s["max_cube_z"]}
    written = write_video(eps[0]["video"], video_path) if video_path is not None else None
    return metrics, written


def snapshot_policy(payload: dict[str, Any], agent_cfg: Any, env: Any, device: torch.device) -> AgentPolicy:
    """A snapshot's agent as the mean-action policy on `env` (whose observations are the snapshot's)."""
    spec, frame_stack = envio.obs_spec(env.observation_space)
    agent = make_agent(agent_cfg, spec, frame_stack, int(env.action_space.shape[-1]), device)
    agent.load_snapshot_state(payload["agent"])
    return AgentPolicy(agent, env, int(payload["counters"]["frames"]), list(spec), device)


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
