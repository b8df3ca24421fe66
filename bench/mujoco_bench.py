"""MuJoCo env steps/s with and without the wrist camera, and what a batched step costs over its physics.

    python -m bench.mujoco_bench --ns 1 4 16 --steps 100 --rounds 5   # prints RESULT {...}

`step_costs` times, per N and in one process, three loops over the same trajectory: the bare
physics (the `mj_step` calls of each env step, `n_substeps` per env, on the batch's own `MjData`s),
the backend's `step` + `read`, and the native engine's `BatchedLiftEnv.step` (state only, stage 3).
The env loop runs first in each round and records its joint targets; the other two replay them
from the same reset, so all three step the same states. The loops take turns, round after round,
and the ratios are taken within each round (then the median over rounds): the machine's speed
drifts between rounds, much less within one.
"""
from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

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


class _CountOps(TorchDispatchMode):
    """Counts the ATen operators run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def step_costs(n: int, steps: int = 100, rounds: int = 5) -> dict[str, float]:
    """Per-env ms of one env step's bare physics, backend step + read and batched env step, with N envs,
    and the ratios to the physics (medians of the per-round ratios)."""
    import mujoco

    from envs.batched import BatchedLiftEnv
    from envs.config import make_task_config
    from envs.lift_env import make_mujoco_backend
    from envs.task import LiftTask

    # No episode ends within a round: every loop times steady steps, none of the resets.
    cfg = make_task_config(curriculum_stage=3, pixels=False, episode_length=steps + 1)
    backend = make_mujoco_backend(cfg, n)
    env = BatchedLiftEnv(LiftTask(backend, cfg, 0), frame_stack=3)  # as the factory's make_batched_env
    pairs = list(zip(backend.models, backend.datas))
    assert all(m.nu == 6 for m, _ in pairs), "the bare loop sets the 6 arm actuators' controls"
    sub = cfg.n_substeps
    actions = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (steps, n, 4)).astype(np.float32))
    targets: list[torch.Tensor] = []  # (N, 6) per step, recorded by the env loop

    def env_loop() -> float:
        targets.clear()
        t = time.perf_counter()
        for a in actions:
            env.step(a)
            targets.append(env.task.q_cmd)  # a new tensor each step; a reset writes into the last one
        elapsed = time.perf_counter() - t
        targets[:] = [q.clone() for q in targets]
        return elapsed

    def backend_loop() -> float:
        t = time.perf_counter()
        for q in targets:
            backend.step(q, sub)
            backend.read()
        return time.perf_counter() - t

    def physics_loop() -> float:
        total = 0.0
        for q in targets:
            for (_, d), row in zip(pairs, q.numpy()):
                d.ctrl[:] = row
            t = time.perf_counter()
            for m, d in pairs:
                mujoco.mj_step(m, d, nstep=sub)
            total += time.perf_counter() - t
        return total

    env.reset(seed=0)
    env_loop()  # warm-up; records the targets the first round's other loops replay
    env.reset(seed=0)
    with _CountOps() as ops:
        env.step(actions[0])
    times: dict[str, list[float]] = {"physics": [], "backend": [], "env": []}
    loops = {"env": env_loop, "backend": backend_loop, "physics": physics_loop}
    for r in range(rounds):
        order = ["env", *(("backend", "physics") if r % 2 else ("physics", "backend"))]
        for name in order:
            env.reset(seed=0)  # the same initial state for every loop (seeded reset)
            times[name].append(loops[name]())
    env.close()
    med = lambda xs: float(sorted(xs)[len(xs) // 2])  # noqa: E731
    per_env = steps * n / 1e3
    return {
        "n": n, "steps": steps, "rounds": rounds, "n_substeps": sub,
        "physics_ms": med(times["physics"]) / per_env, "backend_ms": med(times["backend"]) / per_env,
        "env_ms": med(times["env"]) / per_env,
        "backend_over_physics": med([b / p for b, p in zip(times["backend"], times["physics"])]),
        "env_over_physics": med([e / p for e, p in zip(times["env"], times["physics"])]),
        # Per env step (not per env): what the torch layer above the backend costs, and its operator count.
        "layer_ms_per_step": med([(e - b) / steps * 1e3 for e, b in zip(times["env"], times["backend"])]),
        "torch_ops_per_step": ops.count,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--ns", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(1)  # as in training (launch/run.py torch_threads)
    rows = []
    for n in a.ns:
        rows.append(step_costs(n, a.steps, a.rounds))
        print(rows[-1], flush=True)
    print("RESULT " + json.dumps({"step_costs": rows}))
