"""Versioned lift rewards: ``rewards.get(version)`` and ``rewards.available()``."""
from rewards.registry import RewardFn, RewardVersion, Term, available, get, register, resolve_terms
from rewards import versions as _versions  # noqa: F401  (registers v11, v19)
from rewards.versions import STATE_ONLY_VERSIONS

__all__ = ["RewardFn", "RewardVersion", "Term", "available", "get", "register", "resolve_terms",
           "STATE_ONLY_VERSIONS"]
