"""MuJoCo env steps/s with and without the wrist camera."""
from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

import envs  # noqa: F401


def env_steps_per_second(pixels: bool, steps: int = 400, image_size: int = 84) -> float:
    env = gym.make("LiftCube-MuJoCo-v0", pixels=pixels, image_size=image_size, curriculum_stage=3)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, 4)).astype(np.float32)
    for a in actions[:20]:  # warm-up (renderer context, caches)
        env.step(a)
    t = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    rate = steps / (time.perf_counter() - t)
    env.close()
    return rate
