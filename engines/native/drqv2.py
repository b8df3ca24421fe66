"""DrQ-v2 (Yarats et al. 2021) with the low-dim state fused after the trunk.

As published: random-shift augmentation of obs and next obs, a conv encoder trained only by
the critic loss, deterministic actor + clipped Gaussian noise whose stddev follows a schedule
(here in env frames), twin critics with a soft-updated target, n-step targets from the replay.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from engines.native.networks import (Encoder, ObsFeatures, RandomShiftsAug, Trunk, TruncatedNormal,
                                     encoder_options, mlp, schedule, soft_update, weight_init)
from engines.native.replay import Batch, KeySpec


class Actor(nn.Module):
    def __init__(self, repr_dim: int, low_dim: int, action_dim: int, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.trunk = Trunk(repr_dim, low_dim, feature_dim)
        self.policy = mlp(self.trunk.out_dim, hidden_dim, action_dim)
        self.apply(weight_init)

    def forward(self, h: torch.Tensor | None, low: torch.Tensor, std: float) -> TruncatedNormal:
        mu = torch.tanh(self.policy(self.trunk(h, low)))                  # (B, A)
        return TruncatedNormal(mu, torch.full_like(mu, std))


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

    def with_bc(self, policy_loss: torch.Tensor, q: torch.Tensor, mean_action: torch.Tensor, batch: Batch
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The actor loss with the BC term added, as TD3+BC (Fujimoto & Gu 2021) does: the policy
        term divided by the batch's mean |Q| (B,), so that bc_weight means the same whatever
        the reward scale (v20 pays up to ~2000 at success), and weighted by `actor_q_weight`: at 0
        the actor learns from the demo rows alone (and, with use_self_imitation, from its own
        successful episodes), while the critic still trains the encoder. Unchanged when BC is off."""
        bc = self.bc_loss(mean_action, batch)
        if bc is None:
            return policy_loss, None
        return self.actor_q_weight * policy_loss / q.abs().mean().detach().clamp_min(1e-6) + bc, bc

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
            opt.load_state_dict(state["optimizers"][k])


class DrQV2Agent(TwinCriticAgent):
    """Pixel agent; `act` takes frame-stacked obs dicts of (B, F, ...) tensors on the agent's device."""

    name = "drqv2"

    def __init__(self, spec: Mapping[str, KeySpec], frame_stack: int, action_dim: int, cfg: DictConfig,
                 device: torch.device) -> None:
        super().__init__(spec, frame_stack, action_dim, cfg, device)
        if self.features.image_shape is None:
            raise ValueError("drqv2 needs an image observation (pixels=true)")
        self.stddev_schedule, self.stddev_clip = cfg.stddev_schedule, float(cfg.stddev_clip)
        self.encoder = Encoder(*self.features.image_shape, **encoder_options(cfg, device))
        rd, ld, fd, hd = self.encoder.repr_dim, self.features.low_dim, cfg.feature_dim, cfg.hidden_dim
        self.actor = Actor(rd, ld, action_dim, fd, hd)
        self._build_critics(rd, ld, action_dim, fd, hd)
        self.aug = RandomShiftsAug(int(cfg.augmentation_pad))
        self.to(device)
        self.encoder_opt = torch.optim.Adam(self.encoder.parameters(), lr=cfg.encoder_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.train(True)
        self.critic_target.train(False)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"encoder": self.encoder_opt, "actor": self.actor_opt, "critic": self.critic_opt}

    def policy_mean(self, obs: Mapping[str, torch.Tensor], augment: bool) -> torch.Tensor:
        h = self.encoder(self.features.image(obs), self.aug if augment else None)
        return self.actor(h, self.features.low(obs), 1.0).mean

    @torch.no_grad()
    def act(self, obs: Mapping[str, torch.Tensor], step: int, eval_mode: bool) -> torch.Tensor:
        """(B, A) actions in [-1, 1]: the mean in eval mode, else mean + scheduled (unclipped) noise."""
        h = self.encoder(self.features.image(obs))
        dist = self.actor(h, self.features.low(obs), schedule(self.stddev_schedule, step))
        action = dist.mean if eval_mode else dist.sample(clip=None)
        return action.clamp(-1.0, 1.0)

    def update(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """One critic + actor step. Returns detached 0-d tensors (no host sync per update)."""
        std = schedule(self.stddev_schedule, step)
        self.features.observe(batch.obs)
        low, next_low = self.features.low(batch.obs), self.features.low(batch.next_obs)
        h = self.encoder(self.features.image(batch.obs), self.aug)       # (B, repr_dim), augmented
        with torch.no_grad():
            next_h = self.encoder(self.features.image(batch.next_obs), self.aug)
            next_action = self.actor(next_h, next_low, std).sample(clip=self.stddev_clip)
            tq1, tq2 = self.critic_target(next_h, next_low, next_action)
            target_q = batch.reward + batch.discount * torch.min(tq1, tq2)  # (B,)
        q1, q2 = self.critic(h, low, batch.action)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self.encoder_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        self.encoder_opt.step()

        h = h.detach()
        dist = self.actor(h, low, std)
        action = dist.sample(clip=self.stddev_clip)
        aq1, aq2 = self.critic(h, low, action)
        q = torch.min(aq1, aq2)                                           # (B,)
        actor_loss, bc = self.with_bc(-q.mean(), q, dist.mean, batch)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        soft_update(self.critic, self.critic_target, self.tau)
        out = {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
               "critic_q1": q1.mean().detach(), "critic_target_q": target_q.mean().detach(),
               "batch_reward": batch.reward.mean().detach(), "stddev": torch.tensor(std)}
        if bc is not None:
            out["bc_loss"] = bc.detach()
        return out
