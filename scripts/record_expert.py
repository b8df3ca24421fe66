"""Run the scripted expert, print the evaluation block, save JSON and an mp4 video.

    python scripts/record_expert.py curriculum_stage=3 episodes=10
"""
from __future__ import annotations

import json
import os
import sys

import hydra
from omegaconf import DictConfig

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import envs  # noqa: E402,F401  (headless GL before mujoco)
from launch.evaluate import format_block, run_expert_episodes  # noqa: E402
from runconfig.cli import quote_numeric_group_overrides  # noqa: E402


@hydra.main(config_path="../conf", config_name="record_expert", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    if cfg.backend != "mujoco":
        raise SystemExit(f"backend={cfg.backend!r} is not available here: allowed mujoco")
    stats = run_expert_episodes(
        episodes=int(cfg.episodes), seed=int(cfg.seed),
        video_path=os.path.join(out_dir, "expert.mp4") if cfg.video else None,
        video_episodes=int(cfg.video_episodes),
        curriculum_stage=cfg.curriculum_stage.stage, reward_version=cfg.reward_version.name, pixels=bool(cfg.pixels))
    print(format_block(stats))
    with open(os.path.join(out_dir, "eval.json"), "w") as f:
        json.dump(stats, f, indent=2)
    print(f"results: {out_dir}/eval.json" + (f", video: {out_dir}/expert.mp4" if cfg.video else ""))


if __name__ == "__main__":
    sys.argv = quote_numeric_group_overrides(sys.argv)
    main()
