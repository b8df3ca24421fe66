"""What the task layer costs per batched step, apart from the physics, in one process.

    python -m bench.task_layer 16            # the layer between physics steps
    python -m bench.task_layer 16 --alone    # also the same layer with the physics call skipped
    python -m bench.task_layer 16 --compile  # also the layer with task.compile=true

Steps the native engine's batched env (`WrappedGenesisVectorEnv(...).env`, Genesis on CPU, stage 3,
state only) through the same 190 random actions five times and splits each step's wall time into
the backend's physics call (control + `scene.step`) and everything else (state read-out, IK,
predicates, reward terms, observation, frame stacks). Prints the medians in ms per step.
Why: the genesis section's "batched over bare" ratio compares two loops whose physics time
drifts by 10-30 % between processes on a shared 2-core machine; the layer's own cost, timed
inside one loop, is what a change to the task layer moves.

`--alone` takes turns with a second loop in which the backend's physics call does nothing (the
state stays at the reset pose): the same torch ops on the same actions, run back to back. The
difference says how much of the layer's time is the CPU coming back from a physics step to it
rather than the ops themselves. `--compile` takes turns with a second batched env on the same scene
whose task has `compile=True` (compiled before timing).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main(n: int, rounds: int = 5, alone: bool = False, compile: bool = False) -> dict[str, tuple[float, float]]:
    """{"loop": (layer, physics) ms per step, medians over rounds; "alone": (layer, 0.0) with --alone;
    "compiled": (layer, physics) with --compile}."""
    from dataclasses import replace

    import envs  # noqa: F401
    from envs.batched import BatchedLiftEnv
    from envs.task import LiftTask
    from factories.vector_env import WrappedGenesisVectorEnv

    vec = WrappedGenesisVectorEnv({"curriculum_stage": 3, "pixels": False}, num_envs=n, frame_stack=3,
                                  action_sequence=1, sim_device="cpu", seed=0, as_torch=False)
    env, be = vec.env, vec.task.backend
    acts = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (190, n, 4)).astype(np.float32))  # (T, N, 4)
    physics = [0.0]
    real_step = be.step

    def timed(step):
        def run(*args, **kw) -> None:
            t = time.perf_counter()
            step(*args, **kw)
            physics[0] += time.perf_counter() - t
        return run

    variants = {"loop": (env, timed(real_step))}
    if alone:
        variants["alone"] = (env, timed(lambda *args, **kw: None))
    if compile:
        compiled = BatchedLiftEnv(LiftTask(be, replace(vec.task.cfg, compile=True), 0), 3)
        compiled.reset(seed=0)
        for a in acts:  # the first steps compile
            compiled.step(a)
        variants["compiled"] = (compiled, timed(real_step))
    rows: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, (env, step) in variants.items():
            be.step = step
            env.reset(seed=0)
            physics[0] = 0.0
            t = time.perf_counter()
            for a in acts:
                env.step(a)
            total = time.perf_counter() - t
            rows[name].append(((total - physics[0]) / len(acts) * 1e3, physics[0] / len(acts) * 1e3))
    be.step = real_step
    return {name: sorted(r)[len(r) // 2] for name, r in rows.items()}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("n", type=int, nargs="?", default=16)
    p.add_argument("--alone", action="store_true", help="also time the layer with the physics call skipped")
    p.add_argument("--compile", action="store_true", help="also time the layer with task.compile=true")
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(1)  # as in training (launch/run.py torch_threads)
    out = main(a.n, a.rounds, a.alone, a.compile)
    layer, phys = out["loop"]
    print(f"task layer {layer:.3f} ms/step, physics {phys:.3f} ms/step (medians of {a.rounds} rounds)")
    if "alone" in out:
        print(f"task layer alone (physics call skipped) {out['alone'][0]:.3f} ms/step: "
              f"{layer / out['alone'][0]:.2f}x that between physics steps")
    if "compiled" in out:
        c_layer, c_phys = out["compiled"]
        print(f"task layer compiled {c_layer:.3f} ms/step, physics {c_phys:.3f} ms/step: layer / physics "
              f"{layer / phys:.3f} eager, {c_layer / c_phys:.3f} compiled")
