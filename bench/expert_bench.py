"""The scripted expert on a preset's task, over the trainer's held-out evaluation episodes.

The expert reads the simulator's state (no camera), so the task options are the preset's and the
episodes are those a run of that preset with `--seed` evaluates on (seeds seed + 1e6 + k, apart
from the training and demo seeds). `--bins` adds success by where the cube starts (its distance
from the arm's base) and by its size, for the expert and for each `--eval-json` (scripts/eval.py's
eval.json of a policy on the same episodes: `seed=<seed + 1e6>`).

    python -m bench.expert_bench --experiment pixels_full --seed 1 --episodes 100 --bins \
        --eval-json outputs/eval/<dir>/eval.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (headless GL before mujoco)
from factories.config import eval_task_kwargs
from launch.evaluate import run_expert_episodes
from learning.trainer import EVAL_SEED_OFFSET
from runconfig.compose import compose_train

DIST_BINS = ((0.0, 0.40), (0.40, 0.43), (0.43, 1.0))      # metres from the base (its reach ends near 0.43)
EDGE_BINS = ((0.0, 0.033), (0.033, 1.0))                  # cube edge, metres


def cube_starts(kw: dict[str, Any], first: int, episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """(episodes,) distance of the cube from the arm's base and (episodes,) cube edge at each episode's start."""
    env = gym.make("LiftCube-MuJoCo-v0", **kw)
    infos = [env.reset(seed=first + k)[1] for k in range(episodes)]
    env.close()
    return (np.array([np.hypot(*i["cube_pos"][:2]) for i in infos]),
            np.array([2 * float(i["cube_half_size"]) for i in infos]))


def bins(successes: list[bool], dist: np.ndarray, edge: np.ndarray) -> dict[str, str]:
    """'successes/episodes' per distance bin and per cube edge bin."""
    s = np.asarray(successes, bool)
    out = {}
    for name, values, edges in (("distance_m", dist, DIST_BINS), ("edge_m", edge, EDGE_BINS)):
        for lo, hi in edges:
            m = (values[: len(s)] >= lo) & (values[: len(s)] < hi)
            out[f"{name} {lo:g}-{hi:g}" if hi < 1 else f"{name} >= {lo:g}"] = f"{int(s[m].sum())}/{int(m.sum())}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", required=True)
    ap.add_argument("--seed", type=int, default=1, help="the training run's seed (its eval episodes)")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--override", nargs="*", default=[], help="more train.py overrides")
    ap.add_argument("--bins", action="store_true", help="success by the cube's distance and size")
    ap.add_argument("--eval-json", nargs="*", default=[], help="policies' eval.json on the same episodes, binned too")
    a = ap.parse_args()
    cfg = compose_train([f"experiment={a.experiment}", f"seed={a.seed}", *a.override])
    kw = eval_task_kwargs(cfg)
    kw["pixels"] = False                                  # the expert does not look
    first = a.seed + EVAL_SEED_OFFSET
    s = run_expert_episodes(a.episodes, first, None, 0, **kw)
    out = {k: v for k, v in s.items() if k != "videos"}
    out.update(experiment=a.experiment, seed=a.seed, first_episode_seed=first, overrides=a.override)
    if a.bins or a.eval_json:
        dist, edge = cube_starts(kw, first, a.episodes)
        out["bins"] = {"expert": bins(out["successes"], dist, edge)}
        for path in a.eval_json:
            e = json.loads(Path(path).read_text())
            out["bins"][path] = bins(e["successes"], dist, edge)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
