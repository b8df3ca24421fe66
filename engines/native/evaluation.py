"""Deterministic-policy evaluation on the single (unbatched) eval env, with an optional mp4."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.native.replay import as_tensor


def write_video(frames: list[np.ndarray], path: Path, fps: int = 25) -> Path | None:
    """HxWx3 uint8 frames -> mp4 (imageio-ffmpeg). Returns None (with a warning) if writing fails."""
    if not frames:
        return None
    try:
        import imageio.v2 as imageio

        path.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimsave(str(path), [np.asarray(f, dtype=np.uint8) for f in frames], fps=fps,
                        macro_block_size=1)
        return path
    except Exception as exc:
        warnings.warn(f"eval video not written ({exc!r})")
        return None


def evaluate(agent: Any, env: Any, num_episodes: int, frames: int, seed: int, keys: Any,
             device: torch.device, video_path: Path | None = None, max_steps: int = 100_000
             ) -> tuple[dict[str, float], Path | None]:
    """Run `num_episodes` with the policy mean. Returns (eval metrics, written video path or None).

    Success is whether `task_success` was reached at any step of the episode.
    """
    returns, successes, max_z, lengths = [], [], [], []
    video: list[np.ndarray] = []
    action_shape = getattr(env.action_space, "shape", None) or (1, agent.action_dim)
    for ep in range(num_episodes):
        obs, info = env.reset(seed=seed + ep)
        record = video_path is not None and ep == 0
        if record:
            video.append(env.render())
        total, success, z, steps, done = 0.0, 0.0, -np.inf, 0, False
        while not done and steps < max_steps:
            batch = {k: as_tensor(obs[k], device)[None] for k in keys}        # (1, F, ...)
            action = agent.act(batch, frames, eval_mode=True)[0]              # (A,)
            if isinstance(obs[next(iter(keys))], torch.Tensor):
                act: Any = action.reshape(action_shape)
            else:
                act = action.reshape(action_shape).cpu().numpy()
            obs, reward, terminated, truncated, info = env.step(act)
            total += float(reward)
            success = max(success, float(info.get("task_success", 0.0)))
            if "cube_z" in info:
                z = max(z, float(info["cube_z"]))
            steps += 1
            done = bool(terminated) or bool(truncated)
            if record:
                video.append(env.render())
        returns.append(total)
        successes.append(success)
        lengths.append(steps)
        if np.isfinite(z):
            max_z.append(z)
    metrics = {"eval/success_rate": float(np.mean(successes)) if successes else 0.0,
               "eval/episode_reward": float(np.mean(returns)) if returns else 0.0,
               "eval/episode_length": float(np.mean(lengths)) if lengths else 0.0}
    if max_z:
        metrics["eval/max_cube_z"] = float(np.mean(max_z))
    written = write_video(video, video_path) if video_path is not None else None
    return metrics, written
