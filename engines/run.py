"""One training run: validate everything, announce it, dispatch to the chosen engine.

All checks happen here, before any simulator starts: the task options, the engine keys,
the factory's own keys, and the reward/agent pairing that cost the earlier work weeks
(a reward designed for state, v11, driving a pixel agent).
"""
from __future__ import annotations

import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import rewards
from envs.config import ConfigError, make_task_config

log = logging.getLogger(__name__)
FACTORIES = ("factories.MujocoLiftFactory", "factories.GenesisLiftFactory")
ENGINES = ("native", "robobase")


def make_factory(cfg: DictConfig) -> Any:
    name = cfg.env.factory
    if name not in FACTORIES:
        raise ConfigError(f"env.factory={name!r} is invalid: allowed {', '.join(FACTORIES)}")
    module, cls = name.rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)()


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Every check that can fail before a simulator starts; returns the task kwargs."""
    from factories.factory import _check_common, task_kwargs

    if cfg.engine.name not in ENGINES:
        raise ConfigError(f"engine={cfg.engine.name!r} is invalid: allowed {', '.join(ENGINES)}")
    kw = task_kwargs(cfg)
    make_task_config(**kw)
    _check_common(cfg)
    if kw.get("reward_version") in rewards.STATE_ONLY_VERSIONS and bool(cfg.pixels) \
            and not cfg.get("allow_state_reward_with_pixels", False):
        raise ConfigError(
            f"reward_version={kw['reward_version']!r} was designed for state-based agents and, with the pixel "
            f"agent {cfg.agent.name!r}, regressed from reward 216 to 16 in earlier work. Use reward_version=v19, "
            "or pass allow_state_reward_with_pixels=true to run it anyway")
    if cfg.engine.name == "native":
        from engines.native.validate import validate_config

        try:
            validate_config(cfg)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    make_factory(cfg)
    return kw


def check_output_dir(work_dir: Path) -> None:
    """A full or read-only output directory fails now, not hours into the run."""
    work_dir.mkdir(parents=True, exist_ok=True)
    probe = work_dir / ".write_test"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 1024 * 1024)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise ConfigError(f"output directory {str(work_dir)!r} is not writable ({e.strerror}): "
                          "choose another with hydra.run.dir=...") from None
    finally:
        probe.unlink(missing_ok=True)


def announce(cfg: DictConfig, kw: dict[str, Any], work_dir: Path) -> None:
    """Print the resolved config and the reward term table; save both in the run directory."""
    reward = rewards.get(kw.get("reward_version", "v19"), kw.get("lift_height", 0.08))
    text = OmegaConf.to_yaml(cfg, resolve=True)
    print(text, flush=True)
    print(reward.table(), flush=True)
    (work_dir / "config_resolved.yaml").write_text(text)
    (work_dir / "reward_terms.txt").write_text(reward.table() + "\n")
    (work_dir / "reward_terms.json").write_text(json.dumps(reward.as_dict(), indent=2))


def resume_config(cfg: DictConfig, cli_overrides: list[str]) -> tuple[DictConfig, Path | None]:
    """`resume=<run dir or snapshot>` continues THAT run: its saved config, plus only what the
    user overrode on this command line (e.g. a larger num_train_frames). Returns the config
    and the original run directory (None when the snapshot lives outside a run directory)."""
    if not cfg.get("resume"):
        return cfg, None
    from engines.native.snapshot import resolve_snapshot_path

    snap = resolve_snapshot_path(cfg.resume)
    run_dir = snap.parent.parent if snap.parent.name == "snapshots" else None
    saved_file = run_dir / ".hydra" / "config.yaml" if run_dir else None
    if saved_file is None or not saved_file.is_file():
        return cfg, run_dir  # no saved composition: the live config is all there is
    saved = OmegaConf.load(saved_file)
    OmegaConf.set_struct(saved, False)
    for ov in cli_overrides:
        key = ov.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra") or key == "experiment":
            continue
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
    saved.resume = cfg.resume
    return saved, run_dir


def run(cfg: DictConfig, work_dir: str | Path, cli_overrides: list[str] | None = None) -> dict[str, Any]:
    work_dir = Path(work_dir)
    cfg, resumed_from = resume_config(cfg, cli_overrides or [])
    kw = validate(cfg)
    check_output_dir(work_dir)
    announce(cfg, kw, work_dir)
    if resumed_from is not None and not (work_dir / "resumed_from").exists():
        (work_dir / "resumed_from").symlink_to(resumed_from.resolve(), target_is_directory=True)
    factory = make_factory(cfg)
    if cfg.engine.name == "robobase":
        from engines.robobase_engine import run_robobase

        return run_robobase(cfg, factory, work_dir)
    from engines.native.trainer import NativeTrainer

    return NativeTrainer(cfg, factory, work_dir).train()
