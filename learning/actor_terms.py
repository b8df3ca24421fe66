"""Imitation terms of the actor's loss, as named, weighted data beside the agent's own objective.

An agent's actor loss is its paper's policy term (DrQ-v2's -Q, SAC's alpha * log pi - Q) plus
every active term here. With at least one term active, the policy term is divided by the batch's
mean |Q| and weighted by `agent.actor_q_weight`, as TD3+BC (Fujimoto & Gu 2021) does, so a
term's weight means the same whatever the reward scale; with none, the policy term is the loss.

| term      | weight key             | rows        | target                                        |
|-----------|------------------------|-------------|-----------------------------------------------|
| `bc`      | `agent.bc_weight`      | demo rows   | the demo's action                             |
| `teacher` | `agent.teacher_weight` | every row   | the frozen state teacher's action (`teacher`) |
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from learning.replay import Batch

# (mean action (B, A), batch, agent) -> the term's unweighted value, or None where it has no rows
TermFn = Callable[[torch.Tensor, Batch, object], "torch.Tensor | None"]


def bc(mean: torch.Tensor, batch: Batch, agent: object) -> torch.Tensor | None:
    """Squared error to the demo actions over the batch's demo rows; None without demo rows."""
    if batch.demo is None or not bool(batch.demo.any()):
        return None
    err = ((mean - batch.action) ** 2).sum(-1)                           # (B,)
    return err[batch.demo].mean()


def teacher(mean: torch.Tensor, batch: Batch, agent: object) -> torch.Tensor:
    """Squared error to the frozen teacher's action on every row, the policy's own states included."""
    return ((mean - agent.teacher_label(batch.obs)) ** 2).sum(-1).mean()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ActorTerm:
    name: str
    weight: float
    fn: TermFn


def active_terms(bc_weight: float, teacher_weight: float = 0.0) -> tuple[ActorTerm, ...]:
    """The terms with a positive weight, in a fixed order (their sum's order)."""
    terms = (ActorTerm("bc", bc_weight, bc), ActorTerm("teacher", teacher_weight, teacher))
    return tuple(t for t in terms if t.weight > 0)


def actor_loss(policy_loss: torch.Tensor, q: torch.Tensor, mean: torch.Tensor, batch: Batch, agent: object,
               terms: tuple[ActorTerm, ...], q_weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The actor's loss from its policy term (0-d), the batch's Q (B,) and its mean action (B, A);
    and each weighted term's value, detached, under `<name>_loss`."""
    values = {}
    for t in terms:
        v = t.fn(mean, batch, agent)
        if v is not None:
            values[t.name] = t.weight * v
    if not values:
        return policy_loss, {}
    loss = q_weight * policy_loss / q.abs().mean().detach().clamp_min(1e-6) + sum(values.values())
    return loss, {f"{k}_loss": v.detach() for k, v in values.items()}
