"""SAC (Haarnoja et al. 2018) for state-only runs: tanh-Gaussian actor, twin critics with a
soft-updated target, learnable temperature with target entropy -|A|.

With `agent.allow_pixels` it also takes images, DrQ-style (shift augmentation, conv encoder
trained by the critic, actor on detached features) -- the same trunk as DrQ-v2.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from learning.networks import (
    Encoder,
    RandomShiftsAug,
    Trunk,
    adam,
    encoder_options,
    frozen,
    mlp,
    soft_update,
    weight_init,
)
from learning.replay import Batch, KeySpec
from learning.twin_critic import TwinCriticAgent
from runconfig.schema import SACConfig

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class GaussianActor(nn.Module):
    def __init__(self, repr_dim: int, low_dim: int, action_dim: int, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.trunk = Trunk(repr_dim, low_dim, feature_dim)
        self.policy = mlp(self.trunk.out_dim, hidden_dim, 2 * action_dim)
        self.apply(weight_init)

    def forward(self, h: torch.Tensor | None, low: torch.Tensor, deterministic: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(action in (-1, 1) (B, A), log-prob (B,)) with the tanh change-of-variables correction."""
        mu, log_std = self.policy(self.trunk(h, low)).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
        std = log_std.exp()
        u = mu if deterministic else mu + std * torch.randn_like(mu)
        action = torch.tanh(u)
        log_prob = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return action, log_prob


class SACAgent(TwinCriticAgent):
    name = "sac"

    def __init__(self, spec: Mapping[str, KeySpec], frame_stack: int, action_dim: int, cfg: SACConfig,
                 device: torch.device) -> None:
        super().__init__(spec, frame_stack, action_dim, cfg, device)
        self.encoder: Encoder | None = Encoder(*self.features.image_shape, **encoder_options(cfg, device)) \
            if self.features.image_shape is not None else None
        rd = self.encoder.repr_dim if self.encoder is not None else 0
        ld, fd, hd = self.features.low_dim, cfg.feature_dim, cfg.hidden_dim
        self.actor = GaussianActor(rd, ld, action_dim, fd, hd)
        self._build_critics(rd, ld, action_dim, fd, hd)
        self.aug = RandomShiftsAug(cfg.augmentation_pad)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)),
                                      requires_grad=cfg.learnable_temperature)
        self.target_entropy = -float(action_dim)
        self.learnable_temperature = cfg.learnable_temperature
        self.to(device)
        critic_params = list(self.critic.parameters())
        if self.encoder is not None:
            self.encoder_opt = adam(self.encoder.parameters(), cfg.encoder_lr)
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_opt = adam(critic_params, cfg.critic_lr)
        self.alpha_opt = adam([self.log_alpha], cfg.alpha_lr)
        self.critic_target.train(False)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"actor": self.actor_opt, "critic": self.critic_opt, "alpha": self.alpha_opt}
        if self.encoder is not None:
            opts["encoder"] = self.encoder_opt
        return opts

    def policy_mean(self, obs: Mapping[str, torch.Tensor], augment: bool) -> torch.Tensor:
        return self.actor(self._encode(obs, augment), self.features.low(obs), deterministic=True)[0]

    def _encode(self, obs: Mapping[str, torch.Tensor], augment: bool) -> torch.Tensor | None:
        img = self.features.image(obs)
        if img is None or self.encoder is None:
            return None
        return self.encoder(img, self.aug if augment else None)

    @torch.no_grad()
    def act(self, obs: Mapping[str, torch.Tensor], step: int, eval_mode: bool) -> torch.Tensor:
        action, _ = self.actor(self._encode(obs, False), self.features.low(obs), deterministic=eval_mode)
        return action                                                     # (B, A)

    def update(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        alpha = self.log_alpha.exp().detach()
        self.features.observe(batch.obs)
        low, next_low = self.features.low(batch.obs), self.features.low(batch.next_obs)
        h = self._encode(batch.obs, True)
        with torch.no_grad():
            next_h = self._encode(batch.next_obs, True)
            next_action, next_logp = self.actor(next_h, next_low)
            tq1, tq2 = self.critic_target(next_h, next_low, next_action)
            target_v = torch.min(tq1, tq2) - alpha * next_logp
            target_q = batch.reward + batch.discount * target_v           # (B,)
        q1, q2 = self.critic(h, low, batch.action)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self.critic_opt.zero_grad(set_to_none=True)
        if self.encoder is not None:
            self.encoder_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        if self.encoder is not None:
            self.encoder_opt.step()

        h = h.detach() if h is not None else None
        action, logp = self.actor(h, low)
        with frozen(self.critic):  # the actor's loss does not train the critic
            aq1, aq2 = self.critic(h, low, action)
        q = torch.min(aq1, aq2)                                           # (B,)
        mean_action = self.actor(h, low, deterministic=True)[0] if self.terms else action
        actor_loss, terms = self.actor_loss((alpha * logp - q).mean(), q, mean_action, batch)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        out = {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
               "critic_q1": q1.mean().detach(), "batch_reward": batch.reward.mean().detach(),
               "entropy": -logp.mean().detach(), "alpha": alpha}
        if self.learnable_temperature:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
            out["alpha_loss"] = alpha_loss.detach()
        out.update(terms)
        soft_update(self.critic, self.critic_target, self.tau)
        return out
