"""What DrQ-v2 (`drqv2.py`) and SAC (`sac.py`) share: twin Q heads, the agent base with its
target critic, behaviour cloning on the demos (TD3+BC's normalised form) and snapshot state.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from omegaconf import DictConfig
from torch import nn

from learning.networks import ObsFeatures, Trunk, mlp, restore_optimizer, weight_init
from learning.replay import Batch, KeySpec


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

    def __init__(self, spec: Mapping[str, KeySpec], frame_stack: int, action_dim: int, cfg: DictConfig,
                 device: torch.device) -> None:
        super().__init__()
        self.features = ObsFeatures(spec, frame_stack, bool(cfg.get("normalize_low_dim", False)))
        self.device, self.action_dim, self.tau = device, action_dim, float(cfg.critic_target_tau)
        self.bc_weight = float(cfg.get("bc_weight", 0.0))
        self.actor_q_weight = float(cfg.get("actor_q_weight", 1.0))
        self.critic_layer_norm = bool(cfg.get("critic_layer_norm", False))  # absent from older snapshots' configs

    def bc_loss(self, action: torch.Tensor, batch: Batch) -> torch.Tensor | None:
        """Weighted squared error of the actor's mean action (B, A) to the demo actions, over the
        batch's demo rows; None when behaviour cloning is off or the batch holds no demo."""
        if self.bc_weight <= 0 or batch.demo is None or not bool(batch.demo.any()):
            return None
        err = ((action - batch.action) ** 2).sum(-1)                      # (B,)
        return self.bc_weight * err[batch.demo].mean()

    def with_bc(self, policy_loss: torch.Tensor, q: torch.Tensor, mean_action: torch.Tensor, batch: Batch,
                imitation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The actor loss with the BC term added, as TD3+BC (Fujimoto & Gu 2021) does: the policy
        term divided by the batch's mean |Q| (B,), so that bc_weight means the same whatever
        the reward scale (v20 pays up to ~2000 at success), and weighted by `actor_q_weight`: at 0
        the actor learns from the demo rows alone (and, with use_self_imitation, from its own
        successful episodes), while the critic still trains the encoder. `imitation` (a teacher's
        term) counts as BC does. Unchanged when neither is on."""
        bc = self.bc_loss(mean_action, batch)
        terms = [t for t in (bc, imitation) if t is not None]
        if not terms:
            return policy_loss, None
        return self.actor_q_weight * policy_loss / q.abs().mean().detach().clamp_min(1e-6) + sum(terms), bc

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
        self.critic = Critic(rd, ld, action_dim, fd, hd, self.critic_layer_norm)
        self.critic_target = Critic(rd, ld, action_dim, fd, hd, self.critic_layer_norm)
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
