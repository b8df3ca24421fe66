"""Does the critic of a run rate its data above what the data earned? Its Q against Monte-Carlo returns.

    python -m bench.critic_calibration <run dir or snapshot> [rows per group]

Loads the snapshot the way `resume=` does and, for transitions of its demo replay and its online
replay, compares the critic's Q(s, a) (the min of the twin heads, no augmentation) with the
discounted return the episode actually earned from that step on (`ReplayBuffer.returns_to_go`):
- demos, and online episodes that succeeded (terminated): the return is exact;
- online episodes that did not, first 10 steps: the return lacks the value after the episode's
  last stored step, weighted gamma^steps (<= 0.99^90 = 0.40 of it for 100-step episodes).
Why: a mean Q of ~330 over batches that are half demo rows says nothing about overestimation
by itself (docs/learning.md); split by where the rows come from, it does.
"""
from __future__ import annotations

import sys
import tempfile

import torch

import envs  # noqa: F401  (headless GL before mujoco/genesis)
from bench.policy_noise import trainer_from_snapshot
from engines.native.replay import ReplayBuffer
from engines.native.trainer import NativeTrainer


@torch.no_grad()
def q_values(trainer: NativeTrainer, buf: ReplayBuffer, abs_row: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
    """(M,) min of the twin critics at the stored (obs, action) of each row, in chunks."""
    agent, out = trainer.agent, []
    for i in range(0, len(abs_row), 256):
        batch, _ = buf.gather(abs_row[i:i + 256], env[i:i + 256])
        h = agent.encoder(agent.features.image(batch.obs)) if agent.features.image_shape else None
        out.append(torch.min(*agent.critic(*agent.critic_inputs(h, batch.obs), batch.action)))
    return torch.cat(out) if out else torch.zeros(0)


def report(name: str, trainer: NativeTrainer, buf: ReplayBuffer, rtg: dict[str, torch.Tensor], mask_fn, rows: int,
           gen: torch.Generator) -> None:
    """One line for the rows of `buf` where mask_fn(rtg) holds; rtg: `buf.returns_to_go()`."""
    idx = mask_fn(rtg).nonzero().squeeze(1)
    if idx.numel() == 0:
        print(f"{name:42s} no rows")
        return
    idx = idx[torch.randperm(idx.numel(), generator=gen)[:rows]]
    q = q_values(trainer, buf, rtg["abs_row"][idx], rtg["env"][idx])
    g = rtg["ret"][idx]
    print(f"{name:42s} rows {idx.numel():5d}  Q {q.mean():7.1f}  return {g.mean():7.1f}  "
          f"Q - return {(q - g).mean():7.1f} (median {(q - g).median():7.1f})", flush=True)


def main(path: str, rows: int) -> None:
    gen = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_from_snapshot(path, tmp)
        print(f"{path}: {trainer.frames} frames, gamma {trainer.replay.gamma}", flush=True)
        if trainer.replay.written == 0:
            raise SystemExit(f"{path} holds no replay (only the latest snapshot of a run keeps it)")
        if trainer.demo_replay is not None:
            demo = trainer.demo_replay
            report("demo rows (exact)", trainer, demo, demo.returns_to_go(), lambda r: r["terminal"], rows, gen)
        online, rtg = trainer.replay, trainer.replay.returns_to_go()  # one pass over the ring for all three groups
        report("online rows of successful episodes (exact)", trainer, online, rtg, lambda r: r["terminal"], rows, gen)
        report("online, failed episodes, first 10 steps", trainer, online, rtg,
               lambda r: ~r["terminal"] & (r["steps"] >= 90), rows, gen)
        report("online, failed episodes, all steps", trainer, online, rtg, lambda r: ~r["terminal"], rows, gen)
        trainer.close_envs()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
