"""A privileged state policy that teaches the pixel actor (`agent.teacher_weight`).

On the pixels_cpu task, BC from the same 10 demos reaches ~70 % on the state with the cube
position and 2-10 % on the image (docs/learning.md, sixth round); the image policy fails by
drifting off the 450 demo transitions into states no demo covers. So the teacher is an MLP on
the low-dim and privileged state, cloned from the demos during BC pre-training and frozen
after it. From then on it labels every replay row with its action, including the rows the
pixel policy visited itself (DAgger, Ross et al. 2011, with a privileged teacher as in Chen
et al. 2019), and the pixel actor regresses onto those labels: it learns where the cube is
from every image the run renders, on its own state distribution, instead of from 450 frames.
The teacher reads the simulator's cube pose, so it exists only in training; evaluation and a
deployed policy use the pixel actor alone.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from engines.native.networks import ObsFeatures, RunningNorm, mlp, weight_init


class StateTeacher(nn.Module):
    """tanh MLP on the frame-stacked raw low-dim and privileged state (B, F*(D+P)), with its own
    standardisation: it observes only the demo batches, so the online rows cannot shift the
    inputs of a frozen teacher."""

    def __init__(self, features: ObsFeatures, action_dim: int, hidden_dim: int, lr: float) -> None:
        super().__init__()
        self.features = [features]                    # a list: not a submodule, its stats are the agent's
        in_dim = features.low_dim + features.privileged_dim
        self.norm = RunningNorm(in_dim)
        self.net = mlp(in_dim, hidden_dim, action_dim)
        self.apply(weight_init)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)

    def state(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        f = self.features[0]
        return torch.cat([f.raw_low(obs), f.raw_privileged(obs)], dim=-1)   # (B, F*(D+P))

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, A) the teacher's action in [-1, 1]."""
        return torch.tanh(self.net(self.norm(self.state(obs))))

    def bc_step(self, obs: Mapping[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        """One regression step onto the demo actions (B, A); returns the loss."""
        with torch.no_grad():
            self.norm.observe(self.state(obs))
        err = ((self(obs) - action) ** 2).sum(-1).mean()
        self.opt.zero_grad(set_to_none=True)
        err.backward()
        self.opt.step()
        return err.detach()

    @torch.no_grad()
    def label(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, A) the frozen teacher's action for replay rows."""
        return self(obs)
