"""What DrQ-v2 (`drqv2.py`) and SAC (`sac.py`) share: twin Q heads, the agent base with its
target critic, the imitation terms of the actor's loss (`actor_terms`), BC pre-training and
snapshot state.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from learning.actor_terms import active_terms, actor_loss
from learning.networks import ObsFeatures, Trunk, mlp, restore_optimizer, weight_init
from learning.replay import Batch, KeySpec
from runconfig.schema import AgentConfig


class Critic(nn.Module):
    """Twin Q heads on a shared trunk."""

    def __init__(self, repr_dim: int, low_dim: int, action_dim: int, feature_dim: int, hidden_dim: int,
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.trunk = Trunk(repr_dim, low_dim, feature_dim)
        self.q1 = mlp(self.trunk.out_dim + action_dim, hidden_dim, 1, layer_norm=layer_norm)
        self.q2 = mlp(self.trunk.out_dim + action_dim, hidden_dim, 1, layer_norm=layer_norm)
        self.apply(weight_init)

    def forward(self, h: torch.Tensor | None, low: torch.Tensor, action: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.trunk(h, low), action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)             # (B,), (B,)


class TwinCriticAgent(nn.Module):
    """What DrQ-v2 and SAC share: a critic with a frozen target copy, and snapshot state
    made of all modules plus every optimiser in `optimizers()`."""

    def __init__(self, spec: Mapping[str, KeySpec], frame_stack: int, action_dim: int, cfg: AgentConfig,
                 device: torch.device) -> None:
        super().__init__()
        self.cfg = cfg
        self.features = ObsFeatures(spec, frame_stack, cfg.normalize_low_dim)
        self.device, self.action_dim, self.tau = device, action_dim, cfg.critic_target_tau
        self.terms = active_terms(cfg.bc_weight)

    def actor_loss(self, policy_loss: torch.Tensor, q: torch.Tensor, mean: torch.Tensor, batch: Batch
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The policy term (0-d) with the imitation terms of `actor_terms` added."""
        return actor_loss(policy_loss, q, mean, batch, self, self.terms, self.cfg.actor_q_weight)

    def policy_mean(self, obs: Mapping[str, torch.Tensor], augment: bool) -> torch.Tensor:
        """(B, A) mean action of the actor, through the encoder (if any), with gradients."""
        raise NotImplementedError

    def bc_step(self, batch: Batch) -> torch.Tensor:
        """One behaviour-cloning step on encoder and actor (BC pre-training on the demos):
        a policy that starts where the demos are, so RL refines instead of searching."""
        self.features.observe(batch.obs)
        err = ((self.policy_mean(batch.obs, augment=True) - batch.action) ** 2).sum(-1).mean()
        opts = [o for k, o in self.optimizers().items() if k in ("encoder", "actor")]
        for o in opts:
            o.zero_grad(set_to_none=True)
        err.backward()
        for o in opts:
            o.step()
        return err.detach()

    def end_bc_pretraining(self) -> None:
        """Called once BC pre-training is over, before the first env step."""

    def _build_critics(self, rd: int, ld: int, action_dim: int, fd: int, hd: int) -> None:
        self.critic = Critic(rd, ld, action_dim, fd, hd, self.cfg.critic_layer_norm)
        self.critic_target = Critic(rd, ld, action_dim, fd, hd, self.cfg.critic_layer_norm)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def snapshot_state(self) -> dict[str, Any]:
        return {"modules": self.state_dict(), "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()}}

    def load_snapshot_state(self, state: Mapping[str, Any]) -> None:
        self.load_state_dict(state["modules"])
        for k, opt in self.optimizers().items():
            restore_optimizer(opt, state["optimizers"][k])

    def close(self) -> None:
        """Stop any worker thread the agent started (the trainer calls this when training ends;
        a later update starts it again)."""
