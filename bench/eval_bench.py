"""How long an evaluation takes: the batched episode loop against the one-env loop it replaced.

For each preset (a pixels_cpu-shaped DrQ-v2 and a sac_stage2-shaped SAC, freshly initialised:
only the time per episode matters here) the trainer's evaluation of `--episodes` episodes on
its eval seeds is timed three ways, taking turns round after round in one process:
- old: one episode after another on the single gymnasium env (`make_eval_env`, RoboBase's
  wrapper-chain form) with NumPy observations and info, the loop the project used before; kept
  here only as the baseline;
- new: `learning.evaluation.evaluate` on `make_batched_eval_env` (num_eval_envs at once), the
  agent acting one env at a time (the default, episodes independent of the number of envs);
- new_batched_forward: the same with the agent acting for the whole batch at once.
Per-episode success and return of old and new are compared on the same seeds.

    python -m bench.eval_bench --episodes 50 --rounds 1
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

import numpy as np
import torch

import envs  # noqa: F401  (headless GL before mujoco)
from factories import make_factory
from learning import envio
from learning.agents import make_agent
from learning.evaluation import AgentPolicy, run_episodes
from learning.trainer import EVAL_SEED_OFFSET
from runconfig.compose import compose_train
from runconfig.rules import validate_config

PRESETS = {"pixels_cpu": ["experiment=pixels_cpu"], "sac_stage2": ["experiment=sac_stage2"]}
VARIANTS = ("old", "new", "new_batched_forward")


def old_episode(agent: Any, env: Any, keys: list[str], seed: int) -> dict[str, Any]:
    """One episode on the single env, as the one-env loop ran it: NumPy observations to a batch of
    one, the (1, 4) mean action back to NumPy, the NumPy info read per step."""
    obs, info = env.reset(seed=seed)
    total, success, z, grasps, steps, done = 0.0, 0.0, float(info["cube_z"]), 0, 0, False
    while not done:
        batch = {k: torch.as_tensor(np.asarray(obs[k]))[None] for k in keys}       # (1, F, ...)
        action = agent.act(batch, 0, eval_mode=True)[0].reshape(env.action_space.shape).cpu().numpy()
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        success = max(success, float(info["task_success"]))
        z = max(z, float(info["cube_z"]))
        grasps += int(bool(info["is_grasping"]))
        steps += 1
        done = bool(terminated) or bool(truncated)
    return {"return": total, "success": success, "max_cube_z": z, "length": steps, "grasp_steps": grasps}


def measure(preset: str, episodes: int, rounds: int) -> dict[str, Any]:
    cfg = compose_train(PRESETS[preset])
    validate_config(cfg)
    torch.set_num_threads(int(cfg.torch_threads or torch.get_num_threads()))  # as launch/run.py sets it
    factory = make_factory(cfg)
    old_env, new_env = factory.make_eval_env(cfg), factory.make_batched_eval_env(cfg, episodes)
    spec, frame_stack = envio.obs_spec(new_env.single_observation_space)
    keys, device, seed = list(spec), torch.device("cpu"), int(cfg.seed) + EVAL_SEED_OFFSET
    torch.manual_seed(int(cfg.seed))
    agent = make_agent(cfg.agent, spec, frame_stack, int(new_env.action_dim), device)

    def run(variant: str, n: int) -> list[dict[str, Any]]:
        if variant == "old":
            return [old_episode(agent, old_env, keys, seed + k) for k in range(n)]
        policy = AgentPolicy(agent, 0, keys, device, per_env=variant == "new")
        return run_episodes(policy, new_env, n, seed, progress=False)[1]

    for variant in VARIANTS:  # warm-up: renderer contexts, first-call allocations
        run(variant, 1)
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    eps: dict[str, list[dict[str, Any]]] = {}
    for _ in range(rounds):
        for variant in VARIANTS:
            t = time.perf_counter()
            eps[variant] = run(variant, episodes)
            seconds[variant].append(time.perf_counter() - t)
            print(f"{preset} {variant}: {seconds[variant][-1]:.1f} s", flush=True)
    old_env.close()
    new_env.close()
    same: Callable[[str, str], bool] = lambda a, b: all(  # noqa: E731
        (x["success"], x["return"], x["length"]) == (y["success"], y["return"], y["length"])
        for x, y in zip(eps[a], eps[b]))
    med = {v: float(np.median(s)) for v, s in seconds.items()}
    return {"preset": preset, "episodes": episodes, "rounds": rounds, "eval_envs": new_env.num_envs,
            "torch_threads": torch.get_num_threads(), "image": int(cfg.visual_observation_shape[0]) if cfg.pixels
            else None, "episode_length": int(cfg.env.episode_length), "seconds": seconds, "median_s": med,
            "steps": {v: int(sum(e["length"] for e in eps[v])) for v in VARIANTS},
            "success": {v: float(np.mean([e["success"] for e in eps[v]])) for v in VARIANTS},
            "speedup": med["old"] / med["new"], "speedup_batched_forward": med["old"] / med["new_batched_forward"],
            "same_episodes": same("old", "new"), "same_episodes_batched_forward": same("old", "new_batched_forward"),
            "same_success": [e["success"] for e in eps["old"]] == [e["success"] for e in eps["new"]],
            "same_success_batched_forward": [e["success"] for e in eps["old"]]
            == [e["success"] for e in eps["new_batched_forward"]]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    res = [measure(p, a.episodes, a.rounds) for p in a.presets]
    print("RESULT " + json.dumps({"presets": res}), flush=True)


if __name__ == "__main__":
    main()
