"""Episode statistics and the familiar evaluation block, shared by the scripts."""
from __future__ import annotations

import sys
from typing import Any

import gymnasium as gym
import numpy as np

from envs.expert import ScriptedExpert, batch_info


def run_expert_episodes(episodes: int, seed: int = 0, video_path: str | None = None,
                        video_episodes: int = 1, **task_kwargs: Any) -> dict[str, Any]:
    """Roll out the scripted expert in the MuJoCo env; returns per-episode statistics."""
    env = gym.make("LiftCube-MuJoCo-v0", **task_kwargs)
    cfg = env.unwrapped.cfg
    frames: list[np.ndarray] = []
    returns, successes, max_z, grasp_steps, lengths = [], [], [], [], []
    for ep in range(episodes):
        _, info = env.reset(seed=seed + ep)
        expert = ScriptedExpert(1, cfg.action_scale, cfg.lift_height, cfg.gripper_closed_below)
        expert.reset(batch_info(info))
        ret, zmax, grasps, done, steps = 0.0, float(info["cube_z"]), 0, False, 0
        while not done:
            action = expert.act(batch_info(info))[0].numpy()
            _, r, term, trunc, info = env.step(action)
            ret, steps = ret + r, steps + 1
            zmax = max(zmax, float(info["cube_z"]))
            grasps += int(info["is_grasping"])
            done = term or trunc
            if video_path and ep < video_episodes:
                frames.append(env.render())
        returns.append(ret)
        successes.append(bool(info["is_success"]))
        max_z.append(zmax)
        grasp_steps.append(grasps)
        lengths.append(steps)
        print(f"episode {ep + 1}/{episodes}: return {ret:.1f}, success {successes[-1]}, "
              f"max cube z {zmax:.3f} m, {steps} steps", file=sys.stderr, flush=True)
    env.close()
    if video_path and frames:
        import imageio

        imageio.mimwrite(video_path, frames, fps=50, macro_block_size=1)
    return {
        "episodes": episodes, "curriculum_stage": cfg.curriculum_stage, "reward_version": cfg.reward_version,
        "mean_reward": float(np.mean(returns)), "std_reward": float(np.std(returns)),
        "success_rate": float(np.mean(successes)), "max_cube_z": float(np.mean(max_z)),
        "std_max_cube_z": float(np.std(max_z)), "mean_grasp_steps": float(np.mean(grasp_steps)),
        "mean_length": float(np.mean(lengths)), "successes": successes,
    }


def format_block(s: dict[str, Any]) -> str:
    return "\n".join([
        "=" * 44,
        f"Episodes:          {s['episodes']}",
        f"Mean Reward:       {s['mean_reward']:.2f} +- {s['std_reward']:.2f}",
        f"Success Rate:      {100 * s['success_rate']:.1f} %",
        f"Max Cube Z:        {s['max_cube_z']:.3f} +- {s['std_max_cube_z']:.3f} m",
        f"Mean Grasp Steps:  {s['mean_grasp_steps']:.1f}",
        "=" * 44,
    ])
