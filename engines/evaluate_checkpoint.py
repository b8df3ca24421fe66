"""Evaluate a saved agent: success rate, max cube z, grasp steps, videos (scripts/eval.py)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from engines.native import envio
from engines.native.agents import make_agent
from engines.native.evaluation import write_video
from engines.native.replay import as_tensor
from engines.native.snapshot import check_obs_spec, read_snapshot
from engines.run import make_factory


def evaluate_checkpoint(checkpoint: str, episodes: int, seed: int, out_dir: Path, video_episodes: int,
                        device: str = "cpu", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Roll out the snapshot's policy (mean action) on its own eval env for `episodes` episodes."""
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes={episodes!r} is invalid: allowed an integer >= 1")
    path, payload = read_snapshot(checkpoint)
    cfg = OmegaConf.create(payload["config"])
    for k, v in (overrides or {}).items():
        OmegaConf.update(cfg, k, v, merge=True)
    env = make_factory(cfg).make_eval_env(cfg)
    spec, frame_stack = envio.obs_spec(env.observation_space)
    check_obs_spec(payload["obs_spec"], envio.spec_signature(spec, frame_stack), path)
    dev = torch.device(device)
    agent = make_agent(cfg.agent, spec, frame_stack, int(env.action_space.shape[-1]), dev)
    agent.load_snapshot_state(payload["agent"])
    frames = int(payload["counters"]["frames"])
    keys = list(spec)
    returns, successes, max_z, grasp_steps, videos = [], [], [], [], []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        record = ep < video_episodes
        frames_v = [env.render()] if record else []
        total, success, z, grasps, done = 0.0, 0.0, float(info.get("cube_z", 0.0)), 0, False
        while not done:
            batch = {k: as_tensor(obs[k], dev)[None] for k in keys}  # (1, F, ...)
            with torch.no_grad():
                action = agent.act(batch, frames, eval_mode=True)[0]  # (A,)
            obs, r, term, trunc, info = env.step(action.reshape(env.action_space.shape).cpu().numpy())
            total += float(r)
            success = max(success, float(info.get("task_success", 0.0)))
            z = max(z, float(info.get("cube_z", 0.0)))
            grasps += int(bool(info.get("is_grasping", False)))
            done = bool(term or trunc)
            if record:
                frames_v.append(env.render())
        returns.append(total), successes.append(success), max_z.append(z), grasp_steps.append(grasps)
        if record:
            written = write_video(frames_v, out_dir / f"episode_{ep:03d}.mp4")
            videos.append(str(written) if written else None)
        print(f"episode {ep + 1}/{episodes}: return {total:.1f}, success {bool(success)}, max cube z {z:.3f} m",
              file=sys.stderr, flush=True)
    env.close()
    return {"checkpoint": str(path), "frames": frames, "episodes": episodes,
            "mean_reward": float(np.mean(returns)), "std_reward": float(np.std(returns)),
            "success_rate": float(np.mean(successes)), "max_cube_z": float(np.mean(max_z)),
            "std_max_cube_z": float(np.std(max_z)), "mean_grasp_steps": float(np.mean(grasp_steps)),
            "videos": videos}
