"""The mean-action policy of every numbered snapshot of a run, on the trainer's evaluation seeds.

    python scripts/train.py experiment=sac_stage2 env=genesis_lift seed=3 snapshot_every_n=1000 keep_snapshots=0
    python -m bench.snapshot_series <run dir> 10

Why: a run evaluates every `eval_every_steps` frames (5k in the presets), too sparse to say when
a dip starts and ends. Snapshots every 1k frames leave the run as it was (checked on that
seed-3 run: the same four evaluations as with snapshots every 10k), so their policies, evaluated
afterwards, fill the gaps. Prints one line per snapshot: frames, success rate, mean return and
episode length over `episodes` episodes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch


def main(run_dir: Path, episodes: int) -> None:
    import envs  # noqa: F401  (headless GL before the simulators)
    from omegaconf import OmegaConf

    from engines.evaluation import run_episodes, snapshot_policy
    from engines.native.snapshot import read_snapshot
    from engines.native.trainer import EVAL_SEED_OFFSET
    from engines.run import make_factory

    snaps = sorted((p for p in (run_dir / "snapshots").glob("*_snapshot.pt") if p.name[0].isdigit()),
                   key=lambda p: int(p.name.split("_")[0]))
    if not snaps:
        raise SystemExit(f"no numbered snapshots in {run_dir / 'snapshots'} (train with keep_snapshots=0)")
    env = None
    for path in snaps:
        _, payload = read_snapshot(str(path), key="checkpoint")
        cfg = OmegaConf.create(payload["config"])
        if env is None:  # one eval env for all snapshots of the run
            env = make_factory(cfg).make_eval_env(cfg)
        policy = snapshot_policy(payload, cfg.agent, env, torch.device("cpu"))
        stats, _ = run_episodes(policy, env, episodes, int(cfg.seed) + EVAL_SEED_OFFSET, progress=False)
        print(f"{policy.frames:7d} frames: success {stats['success_rate']:.2f}, return {stats['mean_reward']:7.1f}, "
              f"length {stats['mean_length']:5.1f}", flush=True)
    env.close()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10)
