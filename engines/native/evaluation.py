"""Deterministic-policy evaluation on the single (unbatched) eval env, with an optional mp4."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from engines.native.replay import as_tensor


def write_video(frames: list[np.ndarray], path: Path, fps: int = 50) -> Path | None:
    """HxWx3 uint8 frames -> mp4 (imageio-ffmpeg) at the 50 Hz control rate, so it plays in real time.
    Returns None (with a warning) if writing fails."""
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


def run_episode(agent: Any, env: Any, frames: int, seed: int, keys: Any, device: torch.device,
                record: bool = False, max_steps: int = 100_000, stop: Callable[[], bool] | None = None
                ) -> dict[str, Any] | None:
    """One episode with the policy mean. Success is whether `task_success` was reached at any step.
    None when `stop()` turned true mid-episode (a stop signal: the caller snapshots at once)."""
    action_shape = getattr(env.action_space, "shape", None) or (1, agent.action_dim)
    obs, info = env.reset(seed=seed)
    out: dict[str, Any] = {"reset_cube_z": float(info.get("cube_z", 0.0)), "video": [env.render()] if record else []}
    total, success, z, grasps, steps, done = 0.0, 0.0, -np.inf, 0, 0, False
    while not done and steps < max_steps:
        if stop is not None and stop():
            return None
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
        grasps += int(bool(info.get("is_grasping", False)))
        steps += 1
        done = bool(terminated) or bool(truncated)
        if record:
            out["video"].append(env.render())
    out.update({"return": total, "success": success, "max_cube_z": z, "length": steps, "grasp_steps": grasps})
    return out


def evaluate(agent: Any, env: Any, num_episodes: int, frames: int, seed: int, keys: Any,
             device: torch.device, video_path: Path | None = None, max_steps: int = 100_000,
             stop: Callable[[], bool] | None = None) -> tuple[dict[str, float] | None, Path | None]:
    """Run `num_episodes` with the policy mean. Returns (eval metrics, written video path or None);
    metrics are None when `stop()` aborted the evaluation (a partial one would mislead)."""
    eps = []
    for ep in range(num_episodes):
        e = run_episode(agent, env, frames, seed + ep, keys, device, video_path is not None and ep == 0, max_steps, stop)
        if e is None:
            return None, None
        eps.append(e)
    max_z = [e["max_cube_z"] for e in eps if np.isfinite(e["max_cube_z"])]
    metrics = {"eval/success_rate": float(np.mean([e["success"] for e in eps])) if eps else 0.0,
               "eval/episode_reward": float(np.mean([e["return"] for e in eps])) if eps else 0.0,
               "eval/episode_length": float(np.mean([e["length"] for e in eps])) if eps else 0.0}
    if max_z:
        metrics["eval/max_cube_z"] = float(np.mean(max_z))
    written = write_video(eps[0]["video"], video_path) if video_path is not None and eps else None
    return metrics, written
