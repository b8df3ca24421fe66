"""Which keys exist: the shipped configs under conf/ are the schema.

`+foo=1`, `+agent.lr=nan` (what Hydra suggests after a typo) or `+replay.sizee=10` add keys that
nothing reads; a run with them would silently ignore the user. Every key of a run's config must
be one that conf/train.yaml or an option of one of its groups declares.
"""
from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml
from omegaconf import DictConfig, OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("env", "task", "agent", "reward_version", "curriculum_stage", "engine")
OPEN = frozenset({"engine.methods"})   # maps whose keys are the user's (agent name -> RoboBase method)


def _flatten(node: Mapping[str, Any], prefix: str, out: set[str]) -> None:
    for k, v in node.items():
        key = f"{prefix}{k}"
        out.add(key)
        if isinstance(v, Mapping) and key not in OPEN:
            _flatten(v, key + ".", out)


@lru_cache(maxsize=1)
def known_keys() -> frozenset[str]:
    """Dotted keys declared by conf/train.yaml and every option of its groups."""
    out: set[str] = set()
    train = yaml.safe_load((CONF / "train.yaml").read_text())
    _flatten({k: v for k, v in train.items() if k not in ("defaults", "hydra")}, "", out)
    for group in GROUPS:
        out.add(group)
        for f in sorted((CONF / group).glob("*.yaml")):
            _flatten(yaml.safe_load(f.read_text()) or {}, f"{group}.", out)
    task = {k[len("task."):] for k in out if k.startswith("task.")}
    out |= {"env.task"} | {f"env.task.{k}" for k in task}  # an env may carry task options of its own
    return frozenset(out)


def unknown_keys(cfg: DictConfig) -> list[str]:
    found: set[str] = set()
    _flatten(OmegaConf.to_container(cfg, resolve=False), "", found)
    known = known_keys()
    return sorted(k for k in found if k not in known and not any(k.startswith(o + ".") for o in OPEN))


def nearest(key: str) -> str | None:
    """The declared key most like `key`: a sibling first (a typo in the last part), else any."""
    parent, _, leaf = key.rpartition(".")
    siblings = sorted(k.rpartition(".")[2] for k in known_keys() if k.rpartition(".")[0] == parent)
    tails = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.4)
    if tails:
        return f"{parent}.{tails[0]}" if parent else tails[0]
    match = difflib.get_close_matches(key, sorted(known_keys()), n=1, cutoff=0.6)
    return match[0] if match else None
