"""Genesis throughput for one N, in its own process (gs.init once per process).

    python -m bench.genesis_bench 16 --pixels --steps 30

Prints one JSON line: env-steps/s of WrappedGenesisVectorEnv, of the batched env the native
engine trains on (`envs.batched.BatchedLiftEnv`, the wrapped env's core), of the same batched env
with `task.compile=true` (a second task on the same scene; `compile_s`: its first, untimed pass, compile
included), of a bare Genesis
step(+render) loop of the same scene and N replaying the joint targets the wrapped run sent
(so both do the same physics work), of the batched task without the wrapper layer (same
actions), of the renderer alone on the same frames, and the time of one reset of all N envs.

Every variant replays the same trajectory from the same reset, and the variants take turns
(`--rounds`): on a shared 2-core machine the speed drifts by ~10 % over minutes, which
measuring one variant after the other turned into differences between them. What a frame
costs to render depends on what the camera sees (16 wrist images: ~107 ms at the reset pose,
~135 ms mid-episode), so the renderer alone is timed on the wrapped run's own states.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch


def measure(n: int, pixels: bool, steps: int, device: str = "cpu", rounds: int = 3) -> dict:
    from dataclasses import replace

    import envs  # noqa: F401
    from envs.batched import BatchedLiftEnv
    from envs.task import LiftTask
    from factories.vector_env import WrappedGenesisVectorEnv

    t0 = time.perf_counter()
    vec = WrappedGenesisVectorEnv({"curriculum_stage": 3, "pixels": pixels}, num_envs=n, frame_stack=3,
                                  action_sequence=1, sim_device=device, seed=0, as_torch=device != "cpu")
    vec.reset(seed=0)
    build_s = time.perf_counter() - t0
    task, be = vec.task, vec.task.backend
    per_round = max(1, steps // rounds)
    acts = np.random.default_rng(0).uniform(-1, 1, (per_round, n, 1, 4)).astype(np.float32)  # (T, N, 1, 4)

    # Untimed pass (also the warm-up): record the joint targets the wrapped env sends and the
    # state after each step, for the bare loop and the renderer to replay.
    targets: list[torch.Tensor] = []
    states: list[tuple[torch.Tensor, ...]] = []
    real_step = be.step

    def recording_step(q_target: torch.Tensor, n_substeps: int) -> None:
        targets.append(q_target.clone())
        real_step(q_target, n_substeps)
        states.append((be.robot.get_dofs_position(), be.cube.get_pos(), be.cube.get_quat()))

    be.step = recording_step
    for a in acts:
        vec.step(a)
    be.step = real_step

    def wrapped() -> float:
        vec.reset(seed=0)
        return _timed(lambda: [vec.step(a) for a in acts])

    def batched() -> float:  # the native engine's contract: torch in and out, no gymnasium layer
        vec.reset(seed=0)
        return _timed(lambda: [vec.env.step(torch.as_tensor(a[:, 0], device=task.device)) for a in acts])

    compiled_env = BatchedLiftEnv(LiftTask(be, replace(task.cfg, compile=True), 0), 3)

    def compiled() -> float:  # the batched env with task.compile=true
        compiled_env.reset(seed=0)
        return _timed(lambda: [compiled_env.step(torch.as_tensor(a[:, 0], device=task.device)) for a in acts])

    compile_s = compiled()  # not a timed round: the first pass compiles

    def task_only() -> float:  # the batched task without the wrapper layer (transforms, stacks, info)
        vec.reset(seed=0)
        return _timed(lambda: [(task.step(torch.as_tensor(a[:, 0], device=task.device)), task.observe())
                               for a in acts])

    def bare() -> float:  # what any Genesis user must do per step: control, step, (render)
        vec.reset(seed=0)

        def loop() -> None:
            for q in targets:
                be.robot.control_dofs_position(q, be.dofs)
                be.scene.step(update_visualizer=False)
                if pixels:
                    _render(be)
        return _timed(loop)

    def render_only() -> float:  # teleport (untimed) to each recorded state, then sync visuals + render
        spent = 0.0
        for qpos, pos, quat in states:
            be.robot.set_dofs_position(qpos, zero_velocity=True)
            be.cube.set_pos(pos, zero_velocity=True)
            be.cube.set_quat(quat, zero_velocity=True)
            spent += _timed(lambda: (be.scene.visualizer.update(force=True), _render(be)))
        return spent

    variants: dict[str, Callable[[], float]] = {"wrapped": wrapped, "batched": batched, "compiled": compiled,
                                                "bare": bare, "task_only": task_only}
    if pixels:
        variants["render_only"] = render_only
    spent = dict.fromkeys(variants, 0.0)
    for _ in range(rounds):
        for name, run in variants.items():
            spent[name] += run()
    out = {name: rounds * per_round * n / s for name, s in spent.items()}
    t = time.perf_counter()
    for _ in range(3):
        vec.reset()
    reset_ms = (time.perf_counter() - t) / 3 * 1e3
    t = time.perf_counter()
    for _ in range(3):
        task.reset()
    out.update(n=n, pixels=pixels, device=device, reset_ms=reset_ms, task_reset_ms=(time.perf_counter() - t) / 3 * 1e3,
               episode_length=task.cfg.episode_length, build_s=build_s, compile_s=compile_s,
               steps=rounds * per_round)
    return out


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _render(be) -> None:
    be.cam.render(rgb=True, depth=False, segmentation=False, normal=False)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("n", type=int)
    p.add_argument("--pixels", action="store_true")
    p.add_argument("--steps", type=int, default=30, help="timed steps per variant, split over the rounds")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(1)  # as in training (launch/run.py torch_threads)
    print("RESULT " + json.dumps(measure(a.n, a.pixels, a.steps, a.device, a.rounds)), flush=True)
