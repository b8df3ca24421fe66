"""Evaluate a checkpoint: prints the familiar block, writes eval.json and videos.

    python scripts/eval.py checkpoint=<snapshot or run dir> episodes=20
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import envs  # noqa: E402,F401  (headless GL before mujoco/genesis)
from envs.config import ConfigError  # noqa: E402
from launch.evaluate import evaluate_checkpoint, format_block  # noqa: E402
from runconfig.cli import quote_numeric_group_overrides  # noqa: E402


@hydra.main(config_path="../conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    overrides = {}
    if cfg.get("curriculum_stage") is not None:  # the group option, as train.py takes it
        overrides["curriculum_stage.stage"] = int(cfg.curriculum_stage.stage)
    try:
        stats = evaluate_checkpoint(str(cfg.checkpoint), cfg.episodes, cfg.seed, out, cfg.video_episodes,
                                    cfg.device, overrides)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    print(format_block(stats))
    (out / "eval.json").write_text(json.dumps(stats, indent=2))
    print(f"results: {out / 'eval.json'}")


if __name__ == "__main__":
    sys.argv = quote_numeric_group_overrides(sys.argv)
    main()
