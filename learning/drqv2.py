"""DrQ-v2 (Yarats et al. 2021) with the low-dim state fused after the trunk.

As published: random-shift augmentation of obs and next obs, a conv encoder trained only by
the critic loss, deterministic actor + clipped Gaussian noise whose stddev follows a schedule
(here in env frames), twin critics with a soft-updated target, n-step targets from the replay.

Two options a preset uses change what the networks read:
- `agent.privileged_critic`: the critic is asymmetric (Pinto et al. 2018). It reads the
  simulator's cube pose and the low-dim state instead of the image, and the encoder learns
  through the actor's loss.
- `agent.teacher_weight`: a state policy cloned from the demos (`teacher.py`), or a trained one
  (`teacher=`, `rl_teacher.py`), labels every replay row; the actor's `teacher` term regresses onto it (`actor_terms`), and the critic
  evaluates the teacher (its actions in the TD target), which needs no image.
Behaviour cloning on the demo rows is the `bc` term (`agent.bc_weight`).

`agent.parallel_target` runs the TD target (no gradients) on a second thread while this thread
encodes the obs and evaluates the critic. The random draws keep their serial order, so the update
is bitwise the same either way.
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from learning.actor_terms import active_terms
from learning.networks import (
    Encoder,
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
from learning.twin_critic import TwinCriticAgent
from runconfig.schema import DrQV2Config


class Actor(nn.Module):
    def __init__(self, repr_dim: int, low_dim: int, action_dim: int, feature_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.trunk = Trunk(repr_dim, low_dim, feature_dim)
        self.policy = mlp(self.trunk.out_dim, hidden_dim, action_dim)
        self.apply(weight_init)

    def forward(self, h: torch.Tensor | None, low: torch.Tensor, std: float) -> TruncatedNormal:
        mu = torch.tanh(self.policy(self.trunk(h, low)))                  # (B, A)
        return TruncatedNormal(mu, torch.full_like(mu, std))


class DrQV2Agent(TwinCriticAgent):
    """Pixel agent; `act` takes frame-stacked obs dicts of (B, F, ...) tensors on the agent's device."""

    name = "drqv2"
    cfg: DrQV2Config

    def __init__(self, spec: Mapping[str, KeySpec], frame_stack: int, action_dim: int, cfg: DrQV2Config,
                 device: torch.device) -> None:
        super().__init__(spec, frame_stack, action_dim, cfg, device)
        if self.features.image_shape is None:
            raise ValueError("drqv2 needs an image observation (pixels=true)")
        self.privileged_critic = cfg.privileged_critic
        p_dim = self.features.privileged_dim
        if self.privileged_critic and p_dim == 0:
            raise ValueError("agent.privileged_critic needs the privileged state in the observations "
                             "(task.privileged_state=true)")
        self.encoder = Encoder(*self.features.image_shape, **encoder_options(cfg, device))
        rd, ld, fd, hd = self.encoder.repr_dim, self.features.low_dim, cfg.feature_dim, cfg.hidden_dim
        self.actor = Actor(rd, ld, action_dim, fd, hd)
        if self.privileged_critic:
            self._build_critics(0, ld + p_dim, action_dim, fd, hd)   # state only: no image trunk
        else:
            self._build_critics(rd, ld, action_dim, fd, hd)
        self.aug = RandomShiftsAug(cfg.augmentation_pad)
        self.teacher = StateTeacher(self.features, action_dim, hd, cfg.teacher_lr, cfg.teacher_members) \
            if cfg.teacher_weight > 0 else None
        self.terms = active_terms(cfg.bc_weight, cfg.teacher_weight)
        self._trained_teacher: list[nn.Module] = []  # a list: not a submodule, nor in this agent's snapshots
        self.to(device)
        self.encoder_opt = adam(self.encoder.parameters(), cfg.encoder_lr, fused=True)
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr, fused=True)
        self.critic_opt = adam(self.critic.parameters(), cfg.critic_lr, fused=True)
        self.train(True)
        self.critic_target.train(False)
        parallel = cfg.parallel_target
        if parallel == "auto":
            parallel = device.type == "cpu" and spare_cpu_core()
        self._side = SideThread(bool(parallel), "td-target")

    def close(self) -> None:
        self._side.close()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"encoder": self.encoder_opt, "actor": self.actor_opt, "critic": self.critic_opt}
        if self.teacher is not None:
            opts["teacher"] = self.teacher.opt
        return opts

    def use_teacher(self, teacher: nn.Module) -> None:
        """Teach with `teacher`, a trained and frozen state policy with `label(obs)`
        (`learning.rl_teacher.SnapshotTeacher`), instead of the state teacher cloned from the demos.
        The cloned one stays a (then unused) submodule, so snapshots keep one layout."""
        if self.teacher is None:
            raise ValueError("a teacher needs agent.teacher_weight > 0 (the actor's term that reads it)")
        self._trained_teacher = [teacher.to(self.device)]

    def teacher_label(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, A) the frozen teacher's action: the trained one where there is one, else the clone."""
        teacher = self._trained_teacher[0] if self._trained_teacher else self.teacher
        return teacher.label(obs)

    def bc_step(self, batch: Batch) -> torch.Tensor:
        """BC pre-training of encoder and actor, and of the state teacher when there is one."""
        if self.teacher is not None and not self._trained_teacher:
            self.teacher.bc_step(batch.obs, batch.action)
        return super().bc_step(batch)

    def end_bc_pretraining(self) -> None:
        """With a teacher, freeze it."""
        if self.teacher is not None:
            self.teacher.requires_grad_(False)

    def policy_mean(self, obs: Mapping[str, torch.Tensor], augment: bool) -> torch.Tensor:
        h = self.encoder(self.features.image(obs), self.aug if augment else None)
        return self.actor(h, self.features.low(obs), 1.0).mean

    @torch.no_grad()
    def act(self, obs: Mapping[str, torch.Tensor], step: int, eval_mode: bool) -> torch.Tensor:
        """(B, A) actions in [-1, 1]: the mean in eval mode, else mean + scheduled (unclipped) noise."""
        h = self.encoder(self.features.image(obs))
        dist = self.actor(h, self.features.low(obs), schedule(self.cfg.stddev_schedule, step))
        action = dist.mean if eval_mode else dist.sample(clip=None)
        return action.clamp(-1.0, 1.0)

    def critic_inputs(self, h: torch.Tensor | None, obs: Mapping[str, torch.Tensor]
                      ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """What the critic reads: image features and low-dim state, or (privileged critic) no image
        and the low-dim state with the privileged state (B, F*(D+P))."""
        if self.privileged_critic:
            return None, torch.cat([self.features.low(obs), self.features.privileged(obs)], dim=-1)
        return h, self.features.low(obs)

    @torch.no_grad()
    def td_target(self, batch: Batch, std: float) -> torch.Tensor:
        """n-step TD target (B,) from the augmented next obs and a clipped-noise next action. Runs
        with no gradients, so it may run beside the critic's own forward."""
        clip = self.cfg.stddev_clip
        if self.teacher is not None:  # the critic evaluates the teacher: no image to encode
            next_h, mean = None, self.teacher_label(batch.next_obs)
            next_action = TruncatedNormal(mean, torch.full_like(mean, std)).sample(clip=clip)
        else:
            next_h = self.encoder(self.features.image(batch.next_obs), self.aug)
            next_action = self.actor(next_h, self.features.low(batch.next_obs), std).sample(clip=clip)
        next_q = torch.min(*self.critic_target(*self.critic_inputs(next_h, batch.next_obs), next_action))  # (B,)
        return batch.reward + batch.discount * next_q

    def update_critic(self, h: torch.Tensor, batch: Batch, std: float,
                      target: Future[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """TD step of the critic on n-step targets (`target`, when it is already under way). The
        encoder steps with it unless the critic is privileged, which does not read the image."""
        target = target if target is not None else self._side.start(self.td_target, batch, std)
        q1, q2 = self.critic(*self.critic_inputs(h, batch.obs), batch.action)
        target_q = target.result()                                       # no random draw on this thread before
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self.critic_opt.zero_grad(set_to_none=True)
        if self.privileged_critic:
            critic_loss.backward()
        else:
            self.encoder_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.encoder_opt.step()
        self.critic_opt.step()
        return {"critic_loss": critic_loss.detach(), "critic_q1": q1.mean().detach(),
                "critic_target_q": target_q.mean().detach()}

    def policy_sample(self, h: torch.Tensor, batch: Batch, std: float) -> tuple[TruncatedNormal, torch.Tensor]:
        """The actor's distribution on the obs features (B, repr_dim) and a clipped-noise action
        (B, A): the actor's forward, which the critic's step does not change."""
        dist = self.actor(h, self.features.low(batch.obs), std)
        return dist, dist.sample(clip=self.cfg.stddev_clip)

    def update_actor(self, h: torch.Tensor, batch: Batch, std: float,
                     policy: Future[tuple[TruncatedNormal, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
        """Deterministic policy gradient through the critic, plus the imitation terms. Features
        (B, repr_dim) come detached, except with a privileged critic, whose actor loss is what
        trains the encoder. `policy`: `policy_sample`, when it is already under way."""
        dist, action = policy.result() if policy is not None else self.policy_sample(h, batch, std)
        with frozen(self.critic):  # the actor's loss does not train the critic
            q = torch.min(*self.critic(*self.critic_inputs(h, batch.obs), action))  # (B,)
        loss, out = self.actor_loss(-q.mean(), q, dist.mean, batch)
        self.actor_opt.zero_grad(set_to_none=True)
        if self.privileged_critic:
            self.encoder_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        if self.privileged_critic:
            self.encoder_opt.step()
        return {"actor_loss": loss.detach(), **out}

    def update(self, batch: Batch, step: int) -> dict[str, torch.Tensor]:
        """One critic + actor step. Returns detached 0-d tensors (no host sync per update).

        The obs are cropped (random draws) before the TD target starts, whose next-obs crops and
        next-action noise are the next draws. Unless the critic is privileged (the actor's loss
        then trains the encoder, so its features must wait for the critic's step), the actor's
        forward and its noise follow on the same thread during the critic's backward: the order
        of a serial update, on either thread."""
        std = schedule(self.cfg.stddev_schedule, step)
        self.features.observe(batch.obs)
        crops = self.encoder.augment(self.features.image(batch.obs), self.aug)
        target = self._side.start(self.td_target, batch, std)
        h = self.encoder.encode(crops)                                    # (B, repr_dim), augmented
        ahead = not self.privileged_critic
        policy = self._side.start(self.policy_sample, h.detach(), batch, std) if ahead else None
        out = self.update_critic(h, batch, std, target)
        out.update(self.update_actor(h if self.privileged_critic else h.detach(), batch, std, policy))
        soft_update(self.critic, self.critic_target, self.tau)
        out.update(batch_reward=batch.reward.mean().detach(), stddev=torch.tensor(std))
        return out
