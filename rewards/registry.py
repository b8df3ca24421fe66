"""Versioned rewards as registries of named, weighted terms.

A version declares only what differs from its parent. A published version is never edited:
to change a reward, register a new version. ``RewardFn`` resolves the chain once and
returns the total and every weighted term per env.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

from rewards.terms import Info, TermFn


@dataclass(frozen=True)
class Term:
    """A named term's function, weight and own parameters (thresholds), as Isaac Lab's RewTerm."""

    fn: TermFn
    weight: float
    params: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RewardVersion:
    """`terms` adds or replaces terms of the parent; `removed` drops parent terms."""

    name: str
    parent: str | None
    terms: Mapping[str, Term]
    removed: tuple[str, ...] = ()
    description: str = ""


_REGISTRY: dict[str, RewardVersion] = {}


def register(version: RewardVersion) -> RewardVersion:
    if version.name in _REGISTRY:
        raise ValueError(f"reward version {version.name!r} is already registered; published "
                         "versions are never edited, register a new one")
    if version.parent is not None and version.parent not in _REGISTRY:
        raise ValueError(f"reward version {version.name!r}: unknown parent {version.parent!r}")
    _REGISTRY[version.name] = version
    return version


def available() -> list[str]:
    """Registered version names, oldest first."""
    return list(_REGISTRY)


def resolve_terms(name: str) -> dict[str, Term]:
    if name not in _REGISTRY:
        raise KeyError(f"reward_version={name!r} is unknown: allowed {', '.join(available())}")
    v = _REGISTRY[name]
    terms = dict(resolve_terms(v.parent)) if v.parent else {}
    for t in v.removed:
        terms.pop(t, None)
    terms.update(v.terms)
    return terms


@dataclass
class RewardFn:
    """A resolved reward version; call it on the info dict of a batch of envs."""

    version: str
    terms: dict[str, Term]
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Each term's parameters over the task's, merged once rather than on every step.
        self._term_params = {name: {**self.params, **t.params} for name, t in self.terms.items()}
        self._weights: dict[torch.device, torch.Tensor] = {}  # (T,) per device

    def weighted(self, info: Info) -> torch.Tensor:
        """(N, T) every term times its weight, columns in `terms` order: one multiply for all terms
        (this runs on every env step)."""
        raw = torch.stack([t.fn(info, self._term_params[name]) for name, t in self.terms.items()], 1)  # (N, T)
        w = self._weights.get(raw.device)
        if w is None:
            w = self._weights[raw.device] = torch.tensor([t.weight for t in self.terms.values()], device=raw.device)
        return raw * w

    def __call__(self, info: Info) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns total (N,) and {term: weighted value (N,)}."""
        terms = self.weighted(info)
        return terms.sum(1), dict(zip(self.terms, terms.unbind(1)))

    def table(self) -> str:
        """The resolved term table, printed at start and saved in the run directory."""
        lines = [f"reward version {self.version} ({_REGISTRY[self.version].description})",
                 f"{'term':<16} {'weight':>8}  function"]
        for name, t in self.terms.items():
            doc = (t.fn.__doc__ or "").strip().splitlines()
            params = "".join(f" {k}={v:g}" for k, v in t.params.items())
            lines.append(f"{name:<16} {t.weight:>8.3g}  {t.fn.__name__}{params}: {doc[0] if doc else ''}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"version": self.version,
                "terms": {n: {"weight": t.weight, "fn": t.fn.__name__, **({"params": dict(t.params)} if t.params else {})}
                          for n, t in self.terms.items()}}


def get(version: str, lift_height: float = 0.08, gripper_closed_below: float = 0.25) -> RewardFn:
    """The resolved reward function of `version`; unknown names list the known ones."""
    if not isinstance(version, str) or version not in _REGISTRY:
        raise KeyError(f"reward_version={version!r} is unknown: allowed {', '.join(available())}")
    return RewardFn(version, resolve_terms(version),
                    {"lift_height": float(lift_height), "gripper_closed_below": float(gripper_closed_below)})
