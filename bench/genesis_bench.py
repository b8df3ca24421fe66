"""Genesis throughput for one N, in its own process (gs.init once per process).

    python -m bench.genesis_bench 16 --pixels --steps 50

Prints one JSON line: env-steps/s of WrappedGenesisVectorEnv, of a bare Genesis
step(+render) loop of the same scene and N replaying the joint targets the wrapped run sent
(so both do the same physics work), of the batched task without the wrapper layer (same
actions), of the renderer alone, and the time of one reset of all N envs.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def _rate(fn, steps: int, n: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return steps * n / (time.perf_counter() - t)


def measure(n: int, pixels: bool, steps: int, device: str = "cpu") -> dict:
    import envs  # noqa: F401
    from factories.vector_env import WrappedGenesisVectorEnv

    t0 = time.perf_counter()
    vec = WrappedGenesisVectorEnv({"curriculum_stage": 3, "pixels": pixels}, num_envs=n, frame_stack=3,
                                  action_sequence=1, sim_device=device, seed=0, as_torch=device != "cpu")
    vec.reset(seed=0)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (steps + 3, n, 1, 4)).astype(np.float32)
    it = iter(acts)
    be = vec.task.backend
    targets: list[torch.Tensor] = []
    real_step = be.step

    def recording_step(q_target: torch.Tensor, n_substeps: int) -> None:
        targets.append(q_target.clone())
        real_step(q_target, n_substeps)

    be.step = recording_step
    wrapped = _rate(lambda: vec.step(next(it)), steps, n)
    be.step = real_step
    replay = iter(targets)
    vec.reset(seed=0)  # same start, same joint targets: the bare loop does the same physics work

    def bare() -> None:  # what any Genesis user must do per step: control, step, (render)
        be.robot.control_dofs_position(next(replay), be.dofs)
        be.scene.step(update_visualizer=False)
        if pixels:
            be.cam.render(rgb=True, depth=False, segmentation=False, normal=False)

    bare_rate = _rate(bare, steps, n)
    # The same batched task without the wrapper layer (RoboBase's transforms, frame stacks,
    # info conversion): what WrappedGenesisVectorEnv itself adds.
    vec.reset(seed=0)
    it = iter(acts)
    task = vec.task

    def task_only() -> None:
        task.step(torch.as_tensor(next(it)[:, 0]))
        task.observe()

    task_rate = _rate(task_only, steps, n)
    t = time.perf_counter()
    for _ in range(3):
        vec.reset()
    reset_ms = (time.perf_counter() - t) / 3 * 1e3
    out = {"n": n, "pixels": pixels, "device": device, "wrapped": wrapped, "bare": bare_rate,
           "task_only": task_rate, "reset_ms": reset_ms, "episode_length": task.cfg.episode_length,
           "build_s": build_s}
    if pixels:
        def render_new_frame() -> None:  # the renderer's full cost per frame: sync visuals, then render
            be.scene.visualizer.update(force=True)
            be.cam.render(rgb=True, depth=False, segmentation=False, normal=False)

        out["render_only"] = _rate(render_new_frame, steps, n)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("n", type=int)
    p.add_argument("--pixels", action="store_true")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(1)  # as in training (engines/run.py torch_threads)
    print("RESULT " + json.dumps(measure(a.n, a.pixels, a.steps, a.device)), flush=True)
