"""DrQ-v2 (Yarats et al. 2021) with the low-dim state fused after the trunk.

As published: random-shift augmentation of obs and next obs, a conv encoder trained only by
the critic loss, deterministic actor + clipped Gaussian noise whose stddev follows a schedule
(here in env frames), twin critics with a soft-updated target, n-step targets from the replay.

With `agent.privileged_critic` the critic is asymmetric (Pinto et al. 2018): it sees the
simulator's cube pose and the low-dim state instead of the image, so its values do not wait for
the encoder to learn where the cube is; the encoder then learns through the actor's loss. With
`agent.aux_weight` the encoder also regresses the privileged state from the image, on every row.

With `agent.ibrl` (Imitation Bootstrapped RL, Hu et al. 2023) the frozen BC-pre-trained policy
stays beside the RL actor, and wherever an action is chosen (acting, evaluating, the TD target's
next action) the critic picks the better of the two, state by state (docs/learning.md).

With `agent.cql_weight` the critic is conservative (CQL, Kumar et al. 2020, the policy as the
pushed-down distribution): its loss adds weight * (Q(s, a ~ policy) - Q(s, a_replay)), against
a critic that rates failing online starts far above their return (`bench/critic_calibration.py`).

With `agent.teacher_weight` a state policy cloned from the demos (`teacher.py`, it reads the cube
pose) labels every replay row, and the actor also regresses onto its labels, DAgger-style; the
critic then evaluates the teacher (its actions in the TD target), which needs no image.

With `agent.parallel_target` the TD target (the next obs' encoding, the next action and the
target critic, all without gradients) runs on a second thread while this thread encodes the obs
and evaluates the critic: on a CPU whose other core would idle through the update. The random
draws keep their serial order, so the update is bitwise the same either way.
"""
from __future__ import annotations

import copy
from concurrent.futures import Future
from typing import Mapping

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from learning.networks import (
    Encoder,
    ObsFeatures,
    RandomShiftsAug,
    SideThread,
    TruncatedNormal,
    Trunk,
    adam,
    encoder_options,
    frozen,
    mlp,
    schedule,
    soft_update,
    spare_cpu_core,
    weight_init,
)
from learning.replay import Batch, KeySpec
from learning.teacher import StateTeacher
from learning.twin_critic import Critic, TwinCriticAgent


class Actor(nn.Module):
    def __init__(self, repr_dim: int, low_dim: int, action_dim: int, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.trunk = Trunk(repr_dim, low_dim, feature_dim)
        self.policy = mlp(self.trunk.out_dim, hidden_dim, action_dim)
        self.apply(weight_init)

    def forward(self, h: torch.Tensor | None, low: torch.Tensor, std: float) -> TruncatedNormal:
        mu = torch.tanh(self.policy(self.trunk(h, low)))                  # (B, A)
        return TruncatedNormal(mu, torch.full_like(mu, std))


class FrozenPolicy(nn.Module):
    """A frozen copy of encoder, low-dim standardisation and actor: the IL policy of IBRL."""

    def __init__(self, features: ObsFeatures, encoder: Encoder, actor: Actor) -> None:
        super().__init__()
        self.low_norm = copy.deepcopy(features.low_norm)
        self.encoder, self.actor = copy.deepcopy(encoder), copy.deepcopy(actor)
        self.requires_grad_(False)

    def copy_from(self, features: ObsFeatures, encoder: Encoder, actor: Actor) -> None:
        """Take the current weights (and standardisation stats) of the trained policy."""
        for dst, src in ((self.low_norm, features.low_norm), (self.encoder, encoder), (self.actor, actor)):
            if dst is not None:
                dst.load_state_dict(src.state_dict())

    @torch.no_grad()
    def mean(self, image: torch.Tensor, raw_low: torch.Tensor, aug: nn.Module | None = None) -> torch.Tensor:
        """(B, A) the policy's mean action for images (B, F*C, H, W) and raw low-dim state (B, F*D)."""
        low = self.low_norm(raw_low) if self.low_norm is not None else raw_low
        return self.actor(self.encoder(image, aug), low, 1.0).mean


class DrQV2Agent(TwinCriticAgent):
    """Pixel agent; `act` takes frame-stacked obs dicts of (B, F, ...) tensors on the agent's device."""

    name = "drqv2"

    def __init__(self, spec: Mapping[str, KeySpec], frame_stack: int, action_dim: int, cfg: DictConfig,
                 device: torch.device) -> None:
        super().__init__(spec, frame_stack, action_dim, cfg, device)
        if self.features.image_shape is None:
            raise ValueError("drqv2 needs an image observation (pixels=true)")
        self.stddev_schedule, self.stddev_clip = cfg.stddev_schedule, float(cfg.stddev_clip)
        self.privileged_critic = bool(cfg.get("privileged_critic", False))
        self.aux_weight = float(cfg.get("aux_weight", 0.0))
        self.actor_objective = str(cfg.get("actor_objective", "dpg"))
        self.cql_weight = float(cfg.get("cql_weight", 0.0))
        p_dim = self.features.privileged_dim
        if (self.privileged_critic or self.aux_weight > 0) and p_dim == 0:
            raise ValueError("agent.privileged_critic and agent.aux_weight need the privileged state in the "
                             "observations (task.privileged_state=true)")
        self.encoder = Encoder(*self.features.image_shape, **encoder_options(cfg, device))
        rd, ld, fd, hd = self.encoder.repr_dim, self.features.low_dim, cfg.feature_dim, cfg.hidden_dim
        self.actor = Actor(rd, ld, action_dim, fd, hd)
        if self.privileged_critic:
            self._build_critics(0, ld + p_dim, action_dim, fd, hd)   # state only: no image trunk
        else:
            self._build_critics(rd, ld, action_dim, fd, hd)
        # the last frame's privileged state, read linearly off the conv features
        self.aux_head = nn.Linear(rd, p_dim // frame_stack) if self.aux_weight > 0 else None
        self.aug = RandomShiftsAug(int(cfg.augmentation_pad))
        # IBRL's IL policy; its weights are taken from the actor when BC pre-training ends
        self.il_policy = FrozenPolicy(self.features, self.encoder, self.actor) if cfg.get("ibrl", False) else None
        self.teacher_weight = float(cfg.get("teacher_weight", 0.0))
        self.teacher = StateTeacher(self.features, action_dim, hd, float(cfg.teacher_lr), int(cfg.teacher_members)) \
            if self.teacher_weight > 0 else None
        self.to(device)
        enc_params = list(self.encoder.parameters()) + (list(self.aux_head.parameters()) if self.aux_head else [])
        self.encoder_opt = adam(enc_params, cfg.encoder_lr, fused=True)
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr, fused=True)
        self.critic_opt = adam(self.critic.parameters(), cfg.critic_lr, fused=True)
        self.train(True)
        self.critic_target.train(False)
        parallel = cfg.get("parallel_target", False)
        if parallel == "auto":
            parallel = device.type == "cpu" and spare_cpu_core()
        self._side = SideThread(parallel, "td-target")

    def close(self) -> None:
        self._side.close()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"encoder": self.encoder_opt, "actor": self.actor_opt, "critic": self.critic_opt}
        if self.teacher is not None:
            opts["teacher"] = self.teacher.opt
        return opts

    def bc_step(self, batch: Batch) -> torch.Tensor:
        """BC pre-training of encoder and actor, and of the state teacher when there is one."""
        if self.teacher is not None:
            self.teacher.bc_step(batch.obs, batch.action)
        return super().bc_step(batch)

    def end_bc_pretraining(self) -> None:
        """With IBRL, freeze the BC-pre-trained policy as the IL policy the critic chooses from;
        with a teacher, freeze the teacher."""
        if self.il_policy is not None:
            self.il_policy.copy_from(self.features, self.encoder, self.actor)
        if self.teacher is not None:
            self.teacher.requires_grad_(False)

    def _choose(self, critic: Critic, critic_in: tuple[torch.Tensor | None, torch.Tensor],
                rl_action: torch.Tensor, il_action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per row, the action (B, A) of the two that `critic` rates higher (min of the twins),
        its value (B,) and whether it was the IL policy's (B,) bool."""
        q_rl = torch.min(*critic(*critic_in, rl_action))
        q_il = torch.min(*critic(*critic_in, il_action))
        use_il = q_il > q_rl
        return torch.where(use_il.unsqueeze(-1), il_action, rl_action), torch.maximum(q_rl, q_il), use_il

    def policy_mean(self, obs: Mapping[str, torch.Tensor], augment: bool) -> torch.Tensor:
        h = self.encoder(self.features.image(obs), self.aug if augment else None)
        return self.actor(h, self.features.low(obs), 1.0).mean

    @torch.no_grad()
    def act(self, obs: Mapping[str, torch.Tensor], step: int, eval_mode: bool) -> torch.Tensor:
        """(B, A) actions in [-1, 1]: the mean in eval mode, else mean + scheduled (unclipped) noise."""
        image = self.features.image(obs)
        h = self.encoder(image)
        std = schedule(self.stddev_schedule, step)
        dist = self.actor(h, self.features.low(obs), std)
        if self.il_policy is not None:  # IBRL: the critic picks between the two means; the noise comes after
            il = self.il_policy.mean(image, self.features.raw_low(obs))
            mean, _, _ = self._choose(self.critic, self.critic_inputs(h, obs), dist.mean, il)
            dist = TruncatedNormal(mean, torch.full_like(mean, std))
        action = dist.mean if eval_mode else dist.sample(clip=None)
        return action.clamp(-1.0, 1.0)

    def critic_inputs(self, h: torch.Tensor | None, obs: Mapping[str, torch.Tensor]
                      ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """What the critic reads: image features and low-dim state, or (privileged critic) no image
        and the low-dim state with the privileged state (B, F*(D+P))."""
        if self.privileged_critic:
            return None, torch.cat([self.features.low(obs), self.features.privileged(obs)], dim=-1)
        return h, self.features.low(obs)

    def aux_loss(self, h: torch.Tensor, obs: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """Weighted squared error of the privileged state (last frame, standardised) read off the
        features (B, repr_dim); None when off."""
        if self.aux_head is None:
            return None
        target = self.features.privileged(obs)[:, -self.aux_head.out_features:]    # (B, P)
        return self.aux_weight * ((self.aux_head(h) - target) ** 2).sum(-1).mean()

    @torch.no_grad()
    def td_target(self, batch: Batch, std: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """n-step TD target (B,) from the augmented next obs and a clipped-noise next action, and
        what it logs. Runs with no gradients, so it may run beside the critic's own forward."""
        out: dict[str, torch.Tensor] = {}
        next_image = self.features.image(batch.next_obs)
        if self.teacher is not None:  # the critic evaluates the teacher: no image to encode
            next_h, mean = None, self.teacher.label(batch.next_obs)
            next_action = TruncatedNormal(mean, torch.full_like(mean, std)).sample(clip=self.stddev_clip)
        else:
            next_h = self.encoder(next_image, self.aug)
            next_action = self.actor(next_h, self.features.low(batch.next_obs), std).sample(clip=self.stddev_clip)
        next_in = self.critic_inputs(next_h, batch.next_obs)
        if self.il_policy is None:
            next_q = torch.min(*self.critic_target(*next_in, next_action))  # (B,)
        else:  # IBRL: bootstrap from the better of the two policies' next actions
            il = self.il_policy.mean(next_image, self.features.raw_low(batch.next_obs), self.aug)
            _, next_q, use_il = self._choose(self.critic_target, next_in, next_action, il)
            out["il_chosen"] = use_il.float().mean()
        return batch.reward + batch.discount * next_q, out

    def update_critic(self, h: torch.Tensor, batch: Batch, std: float,
                      target: Future[tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None
                      ) -> dict[str, torch.Tensor]:
        """TD step of the critic on n-step targets (`target`, when it is already under way).
        The encoder steps with it (and the auxiliary loss) unless the critic is privileged,
        which does not read the image."""
        target = target if target is not None else self._side.start(self.td_target, batch, std)
        critic_in = self.critic_inputs(h, batch.obs)
        q1, q2 = self.critic(*critic_in, batch.action)
        target_q, out = target.result()                                  # no random draw on this thread before
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        loss = critic_loss
        if self.cql_weight > 0:  # conservative term: policy actions below the replay's own
            with torch.no_grad():
                pi = self.actor(h.detach(), self.features.low(batch.obs), std).sample(clip=self.stddev_clip)
            pq1, pq2 = self.critic(*critic_in, pi)
            gap = (pq1 - q1).mean() + (pq2 - q2).mean()                   # Q(policy) - Q(replay), both heads
            loss = loss + self.cql_weight * gap
            out["cql_gap"] = 0.5 * gap.detach()
        aux = None if self.privileged_critic else self.aux_loss(h, batch.obs)
        self.critic_opt.zero_grad(set_to_none=True)
        if self.privileged_critic:
            loss.backward()
        else:
            self.encoder_opt.zero_grad(set_to_none=True)
            (loss + aux if aux is not None else loss).backward()
            self.encoder_opt.step()
        self.critic_opt.step()
        out.update(critic_loss=critic_loss.detach(), critic_q1=q1.mean().detach(),
                   critic_target_q=target_q.mean().detach())
        if aux is not None:
            out["aux_loss"] = aux.detach()
        return out

    def policy_sample(self, h: torch.Tensor, batch: Batch, std: float) -> tuple[TruncatedNormal, torch.Tensor]:
        """The actor's distribution on the obs features (B, repr_dim) and a clipped-noise action
        (B, A): the actor's forward, which the critic's step does not change."""
        dist = self.actor(h, self.features.low(batch.obs), std)
        return dist, dist.sample(clip=self.stddev_clip)

    def update_actor(self, h: torch.Tensor, batch: Batch, std: float,
                     policy: Future[tuple[TruncatedNormal, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
        """Deterministic policy gradient through the critic (+ BC), or with `actor_objective=crr`
        (Critic Regularized Regression, Wang et al. 2020, binary filter) regression of the mean
        action onto every replay action the critic rates above the policy's own: the actor never
        leaves the actions it has data for, where a critic's extrapolation is least trusted.
        Features (B, repr_dim) come detached, except with a privileged critic, whose actor loss
        is what trains the encoder. `policy`: `policy_sample`, when it is already under way."""
        dist, action = (policy.result() if policy is not None
                        else (self.actor(h, self.features.low(batch.obs), std), None))
        out: dict[str, torch.Tensor] = {}
        if self.actor_objective == "crr":
            with torch.no_grad():
                critic_in = self.critic_inputs(h, batch.obs)
                better = torch.min(*self.critic(*critic_in, batch.action)) > \
                    torch.min(*self.critic(*critic_in, dist.mean))       # (B,) the row's action beats the policy's
            err = ((dist.mean - batch.action) ** 2).sum(-1)               # (B,)
            actor_loss = (better * err).mean()
            bc = self.bc_loss(dist.mean, batch)
            actor_loss = actor_loss + bc if bc is not None else actor_loss
            out["crr_accepted"] = better.float().mean()
        else:
            action = action if action is not None else dist.sample(clip=self.stddev_clip)
            with frozen(self.critic):  # the actor's loss does not train the critic
                aq1, aq2 = self.critic(*self.critic_inputs(h, batch.obs), action)
            q = torch.min(aq1, aq2)                                       # (B,)
            distill = None
            if self.teacher is not None:  # every row, the pixel policy's own states included
                distill = self.teacher_weight * ((dist.mean - self.teacher.label(batch.obs)) ** 2).sum(-1).mean()
                out["teacher_loss"] = distill.detach()
            actor_loss, bc = self.with_bc(-q.mean(), q, dist.mean, batch, distill)
        aux = self.aux_loss(h, batch.obs) if self.privileged_critic else None
        self.actor_opt.zero_grad(set_to_none=True)
        if self.privileged_critic:
            self.encoder_opt.zero_grad(set_to_none=True)
        (actor_loss + aux if aux is not None else actor_loss).backward()
        self.actor_opt.step()
        if self.privileged_critic:
            self.encoder_opt.step()
        out["actor_loss"] = actor_loss.detach()
        if bc is not None:
            out["bc_loss"] = bc.detach()
        if aux is not None:
            out["aux_loss"] = aux.detach()
        return out

    def update(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """One critic + actor step. Returns detached 0-d tensors (no host sync per update).

        The obs are cropped (random draws) before the TD target starts, whose next-obs crops and
        next-action noise are the next draws. Where the critic's step draws nothing (no CQL term)
        and the actor's action comes from its own weights alone (DPG, detached features), the
        actor's forward and its noise follow on the same thread during the critic's backward:
        the order of a serial update, on either thread."""
        std = schedule(self.stddev_schedule, step)
        self.features.observe(batch.obs)
        crops = self.encoder.augment(self.features.image(batch.obs), self.aug)
        target = self._side.start(self.td_target, batch, std)
        h = self.encoder.encode(crops)                                    # (B, repr_dim), augmented
        ahead = self.cql_weight == 0 and self.actor_objective == "dpg" and not self.privileged_critic
        policy = self._side.start(self.policy_sample, h.detach(), batch, std) if ahead else None
        out = self.update_critic(h, batch, std, target)
        out.update(self.update_actor(h if self.privileged_critic else h.detach(), batch, std, policy))
        soft_update(self.critic, self.critic_target, self.tau)
        out.update(batch_reward=batch.reward.mean().detach(), stddev=torch.tensor(std))
        return out
