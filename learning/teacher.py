"""A privileged state policy that teaches the pixel actor (`agent.teacher_weight`).

On the pixels_cpu task, BC from a few demos clones a policy from state far better than one from
the image (docs/notebook.md): the image policy drifts off the demo transitions into states no
demo covers. So the teacher is an MLP on
the low-dim and privileged state, cloned from the demos during BC pre-training and frozen
after it. From then on it labels every replay row with its action, including the rows the
pixel policy visited itself (DAgger, Ross et al. 2011, with a privileged teacher as in Chen
et al. 2019), and the pixel actor regresses onto those labels: it learns where the cube is
from every image the run renders, on its own state distribution, not only from the demos'.
The teacher reads the simulator's cube pose, so it exists only in training; evaluation and a
deployed policy use the pixel actor alone.

Cloned from a few hundred transitions, one MLP's success depends on its initialisation, and the
student copies its teacher's mistakes. So the teacher may be a deep ensemble
(Lakshminarayanan et al. 2017; `agent.teacher_members`): members differ in their
initialisation, train on the same batches, and the teacher's action is their mean.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from learning.networks import ObsFeatures, RunningNorm, adam, mlp, weight_init


class StateTeacher(nn.Module):
    """The mean of `members` tanh MLPs on the frame-stacked raw low-dim and privileged state
    (B, F*(D+P)), with its own standardisation: it observes only the demo batches, so the online
    rows cannot shift the inputs of a frozen teacher."""

    def __init__(self, features: ObsFeatures, action_dim: int, hidden_dim: int, lr: float, members: int = 1) -> None:
        super().__init__()
        self.features = [features]                    # a list: not a submodule, its stats are the agent's
        in_dim = features.low_dim + features.privileged_dim
        self.norm = RunningNorm(in_dim)
        self.nets = nn.ModuleList(mlp(in_dim, hidden_dim, action_dim) for _ in range(members))
        self.apply(weight_init)
        self.opt = adam(self.nets.parameters(), lr)

    def state(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        f = self.features[0]
        return torch.cat([f.raw_low(obs), f.raw_privileged(obs)], dim=-1)   # (B, F*(D+P))

    def members(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(K, B, A) each member's action in [-1, 1]."""
        z = self.norm(self.state(obs))                                     # (B, F*(D+P))
        return torch.stack([torch.tanh(net(z)) for net in self.nets])

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, A) the teacher's action: the members' mean."""
        return self.members(obs).mean(0)

    def bc_step(self, obs: Mapping[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        """One regression step of every member onto the demo actions (B, A); returns the members'
        mean loss. Each member regresses on its own: the ensemble is not fitted as a whole."""
        with torch.no_grad():
            self.norm.observe(self.state(obs))
        err = ((self.members(obs) - action) ** 2).sum(-1).mean()
        self.opt.zero_grad(set_to_none=True)
        err.backward()
        self.opt.step()
        return err.detach()

    @torch.no_grad()
    def label(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, A) the frozen teacher's action for replay rows."""
        return self(obs)
