"""How many starts of a preset's task show the cube to each camera, in the first frame.

The cube is made red (colour randomisation off, every other option the preset's) and a camera
sees it at a start when more than 3 pixels of its image are red; the starts are the evaluation
episodes of a run with `--seed` (seeds seed + 1e6 + k).

    python -m bench.cube_in_view --experiment pixels_full --starts 40
"""
from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (headless GL before mujoco; registers the env ids)
from factories.config import eval_task_kwargs
from learning.trainer import EVAL_SEED_OFFSET
from runconfig.compose import compose_train

SEEN_PX = 3  # more red pixels than this: the camera sees the cube


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--starts", type=int, default=40)
    ap.add_argument("--override", nargs="*", default=[], help="more train.py overrides")
    a = ap.parse_args()
    cfg = compose_train([f"experiment={a.experiment}", "task.randomization.cube_color=false",
                         "task.cameras=[wrist,front]", *a.override])
    env = gym.make("LiftCube-MuJoCo-v0", **eval_task_kwargs(cfg))
    red: dict[str, list[int]] = {"wrist": [], "front": []}
    for k in range(a.starts):
        obs, _ = env.reset(seed=a.seed + EVAL_SEED_OFFSET + k)
        for cam, counts in red.items():
            r, g, b = obs[f"rgb_{cam}"].astype(int)                      # (H, W) each
            counts.append(int(((r > 100) & (r > g + 50) & (r > b + 50)).sum()))
    env.close()
    print(json.dumps({cam: {"starts_seen": int((np.array(v) > SEEN_PX).sum()), "starts": a.starts,
                            "median_red_px": float(np.median(v))} for cam, v in red.items()}))


if __name__ == "__main__":
    main()
