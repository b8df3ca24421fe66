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
from engines.native.evaluation import run_episode, write_video
from engines.native.snapshot import check_obs_spec, read_snapshot
from engines.run import make_factory


def evaluate_checkpoint(checkpoint: str, episodes: int, seed: int, out_dir: Path, video_episodes: int,
                        device: str = "cpu", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Roll out the snapshot's policy (mean action) on its own eval env for `episodes` episodes."""
    for key, value, low in (("episodes", episodes, 1), ("seed", seed, 0), ("video_episodes", video_episodes, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{key}={value!r} is invalid: allowed an integer >= {low}")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device={device!r} is invalid: allowed cpu or cuda[:index]")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is invalid here: this torch ({torch.__version__}) sees no CUDA device; "
                         "allowed cpu")
    path, payload = read_snapshot(checkpoint, key="checkpoint")
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
    returns, successes, max_z, grasp_steps, videos = [], [], [], [], []
    for ep in range(episodes):
        e = run_episode(agent, env, frames, seed + ep, list(spec), dev, record=ep < video_episodes)
        z = max(e["reset_cube_z"], e["max_cube_z"])
        returns.append(e["return"]), successes.append(e["success"]), max_z.append(z)
        grasp_steps.append(e["grasp_steps"])
        if ep < video_episodes:
            written = write_video(e["video"], out_dir / f"episode_{ep:03d}.mp4")
            videos.append(str(written) if written else None)
        print(f"episode {ep + 1}/{episodes}: return {e['return']:.1f}, success {bool(e['success'])}, "
              f"max cube z {z:.3f} m", file=sys.stderr, flush=True)
    env.close()
    return {"checkpoint": str(path), "frames": frames, "episodes": episodes,
            "mean_reward": float(np.mean(returns)), "std_reward": float(np.std(returns)),
            "success_rate": float(np.mean(successes)), "max_cube_z": float(np.mean(max_z)),
            "std_max_cube_z": float(np.std(max_z)), "mean_grasp_steps": float(np.mean(grasp_steps)),
            "videos": videos}
