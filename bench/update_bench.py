"""Milliseconds per DrQ-v2 update: the project's default, the default with its TD target on
the update's own thread (`agent.parallel_target=false`), the project in plain fp32, and a
reference DrQ-v2 of the published architecture (written here, fp32), interleaved.

    python -m bench.update_bench --batches 64 256 --rounds 5

Each round times one update of every variant in turn, so a machine that drifts slows them
alike; the figure is the median over rounds. One torch thread, as the trainer uses.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from learning.drqv2 import DrQV2Agent
from learning.networks import encoder_options, spare_cpu_core
from learning.replay import Batch, KeySpec
from runconfig.schema import DrQV2Config

FRAME_STACK, IMAGE, LOW_DIM, ACTION_DIM = 3, 84, 18, 4


def published_shift(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """DrQ-v2's RandomShiftsAug as published: replicate pad, then grid_sample at shifted pixel centres."""
    n, _, h, w = x.shape
    x = F.pad(x, (pad,) * 4, mode="replicate")
    eps = 1.0 / (h + 2 * pad)
    arange = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * pad)[:h]
    base = torch.stack(torch.meshgrid(arange, arange, indexing="xy"), dim=-1)  # (H, W, 2)
    shift = torch.randint(0, 2 * pad + 1, (n, 1, 1, 2)).float() * (2.0 / (h + 2 * pad))
    return F.grid_sample(x, base.unsqueeze(0) + shift, padding_mode="zeros", align_corners=False)


class ReferenceDrQV2(nn.Module):
    """DrQ-v2 (Yarats et al. 2021) as published, images only: 4-conv encoder trained by the
    critic, trunk Linear+LayerNorm+Tanh to 50, two 1024-unit layers per head, twin Q."""

    def __init__(self, channels: int, lr: float = 1e-4, hidden: int = 1024, feature: int = 50) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(channels, 32, 3, 2), nn.ReLU(), nn.Conv2d(32, 32, 3, 1), nn.ReLU(),
                                     nn.Conv2d(32, 32, 3, 1), nn.ReLU(), nn.Conv2d(32, 32, 3, 1), nn.ReLU(),
                                     nn.Flatten())
        rd = 32 * 35 * 35

        def head(out: int, extra: int = 0) -> nn.Module:
            return nn.Sequential(nn.Linear(feature + extra, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, out))

        def trunk() -> nn.Module:
            return nn.Sequential(nn.Linear(rd, feature), nn.LayerNorm(feature), nn.Tanh())

        self.actor_trunk, self.actor = trunk(), head(ACTION_DIM)
        self.critic_trunk, self.q1, self.q2 = trunk(), head(1, ACTION_DIM), head(1, ACTION_DIM)
        self.target = nn.ModuleList([trunk(), head(1, ACTION_DIM), head(1, ACTION_DIM)])
        self.target.load_state_dict(nn.ModuleList([self.critic_trunk, self.q1, self.q2]).state_dict())
        self.aug = published_shift
        critic = [*self.critic_trunk.parameters(), *self.q1.parameters(), *self.q2.parameters()]
        self.opts = [torch.optim.Adam(self.encoder.parameters(), lr), torch.optim.Adam(critic, lr),
                     torch.optim.Adam([*self.actor_trunk.parameters(), *self.actor.parameters()], lr)]

    def _q(self, trunk: nn.Module, q1: nn.Module, q2: nn.Module, h: torch.Tensor, a: torch.Tensor):
        x = torch.cat([trunk(h), a], -1)
        return q1(x), q2(x)

    def _act(self, h: torch.Tensor, std: float = 0.2) -> torch.Tensor:
        mu = torch.tanh(self.actor(self.actor_trunk(h)))
        return (mu + (torch.randn_like(mu) * std).clamp(-0.3, 0.3)).clamp(-1, 1)

    def update(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor,
               next_obs: torch.Tensor) -> None:
        h = self.encoder(self.aug(obs.float()) / 255.0 - 0.5)
        with torch.no_grad():
            nh = self.encoder(self.aug(next_obs.float()) / 255.0 - 0.5)
            t1, t2 = self._q(*self.target, nh, self._act(nh))
            target = reward + discount * torch.min(t1, t2)
        q1, q2 = self._q(self.critic_trunk, self.q1, self.q2, h, action)
        loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.opts[0].zero_grad()
        self.opts[1].zero_grad()
        loss.backward()
        self.opts[0].step()
        self.opts[1].step()
        h = h.detach()
        a1, a2 = self._q(self.critic_trunk, self.q1, self.q2, h, self._act(h))
        actor_loss = -torch.min(a1, a2).mean()
        self.opts[2].zero_grad()
        actor_loss.backward()
        self.opts[2].step()
        with torch.no_grad():
            src = [*self.critic_trunk.parameters(), *self.q1.parameters(), *self.q2.parameters()]
            torch._foreach_lerp_(list(self.target.parameters()), src, 0.01)


def project_agent(**agent: object) -> DrQV2Agent:
    cfg = DrQV2Config(stddev_schedule=0.2, **agent)
    spec = {"rgb_wrist": KeySpec((3, IMAGE, IMAGE), torch.uint8), "low_dim_state": KeySpec((LOW_DIM,), torch.float32)}
    return DrQV2Agent(spec, FRAME_STACK, ACTION_DIM, cfg, torch.device("cpu"))


def batch(b: int) -> Batch:
    def obs() -> dict[str, torch.Tensor]:
        return {"rgb_wrist": torch.randint(0, 256, (b, FRAME_STACK, 3, IMAGE, IMAGE), dtype=torch.uint8),
                "low_dim_state": torch.randn(b, FRAME_STACK, LOW_DIM)}
    return Batch(obs(), torch.rand(b, ACTION_DIM) * 2 - 1, torch.randn(b), torch.full((b,), 0.97), obs())


def measure(batches: list[int], rounds: int) -> dict[str, object]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    default = encoder_options(DrQV2Config(), torch.device("cpu"))
    default["parallel_target"] = spare_cpu_core()  # what agent.parallel_target=auto resolves to here
    out: dict[str, object] = {"default_options": default, "rounds": rounds, "batches": {}}
    for b in batches:
        data = batch(b)
        img = lambda o: o["rgb_wrist"].flatten(1, 2)  # noqa: E731  (B, F*3, H, W) uint8
        ref = ReferenceDrQV2(FRAME_STACK * 3)
        variants = {
            "default": (lambda a: lambda: a.update(data, 0))(project_agent()),
            "serial": (lambda a: lambda: a.update(data, 0))(project_agent(parallel_target=False)),
            "fp32": (lambda a: lambda: a.update(data, 0))(project_agent(precision="fp32", encoder_chunk=0,
                                                                        channels_last=False)),
            "reference": lambda: ref.update(img(data.obs), data.action, data.reward[:, None],
                                            data.discount[:, None], img(data.next_obs)),
        }
        for fn in variants.values():  # warm-up: allocator, kernels, Adam state
            fn()
            fn()
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(rounds):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
        out["batches"][str(b)] = {"ms": ms, "speedup_vs_reference": ms["reference"] / ms["default"],
                                  "fp32_vs_reference": ms["reference"] / ms["fp32"]}
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    print("RESULT " + json.dumps(measure(a.batches, a.rounds)), flush=True)
