"""The scripted expert on a preset's task, over the trainer's held-out evaluation episodes.

The expert reads the simulator's state (no camera), so the task options are the preset's and the
episodes are those a run of that preset with `--seed` evaluates on (seeds seed + 1e6 + k, apart
from the training and demo seeds).

    python -m bench.expert_bench --experiment pixels_full --seed 1 --episodes 100
"""
from __future__ import annotations

import argparse
import json

import envs  # noqa: F401  (headless GL before mujoco)
from factories import task_kwargs
from launch.evaluate import run_expert_episodes
from learning.trainer import EVAL_SEED_OFFSET
from runconfig.compose import compose_train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", required=True)
    ap.add_argument("--seed", type=int, default=1, help="the training run's seed (its eval episodes)")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--override", nargs="*", default=[], help="more train.py overrides")
    a = ap.parse_args()
    cfg = compose_train([f"experiment={a.experiment}", f"seed={a.seed}", *a.override])
    kw = task_kwargs(cfg)
    kw["pixels"] = False                                  # the expert does not look
    first = a.seed + EVAL_SEED_OFFSET
    s = run_expert_episodes(a.episodes, first, None, 0, **kw)
    out = {k: v for k, v in s.items() if k != "videos"}
    out.update(experiment=a.experiment, seed=a.seed, first_episode_seed=first, overrides=a.override)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
