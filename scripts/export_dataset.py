"""Roll out the scripted expert (or a snapshot) and write a LeRobotDataset v3.0 directory.

    python scripts/export_dataset.py episodes=50 out=datasets/lift_expert [checkpoint=<snapshot>]
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import envs  # noqa: E402,F401  (headless GL before mujoco)
from envs.config import CAMERAS, ConfigError  # noqa: E402
from runconfig.cli import quote_numeric_group_overrides  # noqa: E402
from runconfig.keys import Rule, boolean, check_flat_keys, integer, or_null  # noqa: E402

RULES = {"episodes": integer(1), "seed": integer(0), "only_success": boolean(), "num_envs": or_null(integer(1)),
         "image_size": integer(8, 1024),
         "out": Rule(lambda v: isinstance(v, str) and v != "", "the path of a new (or empty) directory"),
         "checkpoint": or_null(Rule(lambda v: isinstance(v, str) and Path(v).expanduser().exists(),
                                    "an existing snapshot (.pt) or run directory")),
         "cameras": Rule(lambda v: isinstance(v, list) and 0 < len(v) == len(set(v)) and all(c in CAMERAS for c in v),
                         f"a non-empty list of distinct names from {list(CAMERAS)}"),
         "task": Rule(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")}


def check(cfg: DictConfig) -> None:
    """Every key known and every value allowed, before the simulator starts."""
    check_flat_keys(OmegaConf.to_container(cfg), RULES, ("curriculum_stage",))
    out = Path(cfg.out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out={cfg.out!r} is invalid: it exists and is not an empty directory")


@hydra.main(config_path="../conf", config_name="export_dataset", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from launch.rundir import remove_if_untouched

    out_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    try:
        check(cfg)
        from launch.export import export_dataset

        task = {} if cfg.checkpoint else {"curriculum_stage": cfg.curriculum_stage.stage}
        summary = export_dataset(Path(cfg.out).expanduser(), cfg.episodes, cfg.seed, cfg.checkpoint, cfg.only_success,
                                 cfg.num_envs, cfg.image_size, tuple(cfg.cameras), cfg.task, **task)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        remove_if_untouched(out_dir, also=(".hydra",))
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    print(f"dataset: {summary['out']} ({summary['kept']} of {summary['episodes']} episodes kept, "
          f"{summary['successes']} succeeded, {summary['frames']} frames at {summary['fps']} fps, "
          f"{summary['wall_s']} s)")
    with open(os.path.join(out_dir, "export.json"), "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    sys.argv = quote_numeric_group_overrides(sys.argv)
    main()
