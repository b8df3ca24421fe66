"""How often the wrist and the front camera see the cube at the first frame of the pixels_cpu task.

    python -m bench.cube_in_view 40            # light randomisation off
    python -m bench.cube_in_view 40 light      # on

The preset's task with the cube left red (colour randomisation off), so that its pixels can be
counted: red > 120, green and blue < 90. Prints, per camera, the count per start and how many
show >= 4.
"""
from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the ids)


def red_pixels(episodes: int, light: bool) -> dict[str, np.ndarray]:
    """{camera: (episodes,) red pixel counts of the first frame}."""
    env = gym.make("LiftCube-MuJoCo-v0", curriculum_stage=4, image_size=64, reward_version="v20",
                   cameras=["wrist", "front"], randomization={"cube_xy_range": 0.05, "cube_size": True, "cube_color": False, "light": light,
                                  "camera_jitter": True})
    counts: dict[str, list[int]] = {"wrist": [], "front": []}
    for seed in range(episodes):
        obs, _ = env.reset(seed=10_000 + seed)       # held-out seeds, as the probes used
        for cam, c in counts.items():
            img = obs[f"rgb_{cam}"].astype(int)       # (3, H, W)
            c.append(int(((img[0] > 120) & (img[1] < 90) & (img[2] < 90)).sum()))
    env.close()
    return {cam: np.array(c) for cam, c in counts.items()}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    for cam, c in red_pixels(n, light=len(sys.argv) > 2 and sys.argv[2] == "light").items():
        print(f"{cam}: red pixels per first frame: {sorted(c.tolist())}")
        print(f"{cam}: cube in view (>= 4 px) {(c >= 4).sum()}/{n}; at most 3 px {(c <= 3).sum()}/{n}; "
              f"none {(c == 0).sum()}/{n}")
