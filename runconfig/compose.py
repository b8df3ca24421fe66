"""The shipped configs, composed outside a Hydra app (tests, benchmarks, notebooks).

`conf/` is the only source of defaults: code that needs a config without a command line
composes `conf/train.yaml` exactly as `scripts/train.py` would.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from runconfig.cli import quote_numeric_group_overrides

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_train(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """`conf/train.yaml` with command-line style overrides (`agent=sac`, `curriculum_stage=2`)."""
    args = quote_numeric_group_overrides(list(overrides))
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its search path is this conf/
        return compose("train", overrides=args)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=args)


def default_config(**overrides: Any) -> DictConfig:
    """The shipped config with dotted-key values set, e.g. ``**{"agent.name": "sac", "batch_size": 8}``.

    `agent.name` chooses the agent group; the rest are set on the composed (non-struct) config,
    so a test can add what only a fake env needs."""
    agent = overrides.get("agent.name", "drqv2")
    options = {f.stem for f in (CONF / "agent").glob("*.yaml")}
    cfg = compose_train([f"agent={agent}"] if agent in options else [])  # else: the name alone, to be refused
    OmegaConf.set_struct(cfg, False)
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=True)
    return cfg
