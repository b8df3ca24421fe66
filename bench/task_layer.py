"""What the task layer costs per batched step, apart from the physics, in one process.

    python -m bench.task_layer 16

Steps the native engine's batched env (`WrappedGenesisVectorEnv(...).env`, Genesis on CPU, stage 3,
state only) through the same 190 random actions five times and splits each step's wall time into
the backend's physics call (control + `scene.step`) and everything else (state read-out, IK,
predicates, reward terms, observation, frame stacks). Prints the medians in ms per step.
Why: the genesis section's "batched over bare" ratio compares two loops whose physics time
drifts by 10-30 % between processes on a shared 2-core machine; the layer's own cost, timed
inside one loop, is what a change to the task layer moves.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch


def main(n: int, rounds: int = 5) -> tuple[float, float]:
    import envs  # noqa: F401
    from factories.vector_env import WrappedGenesisVectorEnv

    vec = WrappedGenesisVectorEnv({"curriculum_stage": 3, "pixels": False}, num_envs=n, frame_stack=3,
                                  action_sequence=1, sim_device="cpu", seed=0, as_torch=False)
    env, be = vec.env, vec.task.backend
    acts = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (190, n, 4)).astype(np.float32))  # (T, N, 4)
    physics = [0.0]
    real_step = be.step

    def timed_step(*args, **kw) -> None:
        t = time.perf_counter()
        real_step(*args, **kw)
        physics[0] += time.perf_counter() - t

    be.step = timed_step
    rows = []
    for _ in range(rounds):
        env.reset(seed=0)
        physics[0] = 0.0
        t = time.perf_counter()
        for a in acts:
            env.step(a)
        total = time.perf_counter() - t
        rows.append(((total - physics[0]) / len(acts) * 1e3, physics[0] / len(acts) * 1e3))
    rows.sort()
    return rows[len(rows) // 2]


if __name__ == "__main__":
    torch.set_num_threads(1)  # as in training (engines/run.py torch_threads)
    layer, phys = main(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
    print(f"task layer {layer:.3f} ms/step, physics {phys:.3f} ms/step (medians of 5 rounds)")
