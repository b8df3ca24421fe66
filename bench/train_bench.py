"""End-to-end native-engine training throughput for one N, in its own process.

    python -m bench.train_bench 8 --env genesis_lift --frames 400

Prints one JSON line: env frames/s of a full training loop (acting, env steps, replay
inserts, DrQ-v2 updates at the configured update ratio) after a short warm-up.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "conf"


def measure(n: int, env: str, frames: int, image: int, agent: str) -> dict:
    from hydra import compose, initialize_config_dir

    import envs  # noqa: F401  (headless GL first)
    from factories import make_factory
    from launch.run import validate
    from learning.trainer import NativeTrainer

    warm = max(4 * n, 64)  # explore/warm-up frames; the rate is read over the LAST `warm` frames
    total = warm * max(2, -(-frames // warm) + 1)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"env={env}", f"agent={agent}", f"num_train_envs={n}", f"num_train_frames={total}",
            f"num_explore_steps={warm}", f"replay_size_before_train={warm}", "eval_every_steps=0",
            "save_snapshot=false", "tb.use=false", "csv.use=false", f"log_every={warm}",
            f"visual_observation_shape=[{image},{image}]", "replay.size=20000"])
    validate(cfg)
    with tempfile.TemporaryDirectory() as d:
        trainer = NativeTrainer(cfg, make_factory(cfg), d)
        t0 = time.perf_counter()
        metrics = trainer.train()
        wall = time.perf_counter() - t0
    return {"n": n, "env": env, "agent": agent, "image": image, "frames": total, "updates": metrics["updates"],
            "steady_fps": float(metrics["fps"]), "wall_s": wall,
            "bytes_per_transition": trainer.replay.bytes_per_transition()}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("n", type=int)
    p.add_argument("--env", default="genesis_lift")
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--image", type=int, default=84)
    p.add_argument("--agent", default="drqv2")
    a = p.parse_args()
    print("RESULT " + json.dumps(measure(a.n, a.env, a.frames, a.image, a.agent)), flush=True)
