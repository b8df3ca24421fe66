"""Run the scripted expert, print the evaluation block, save JSON and an mp4 video.

    python scripts/record_expert.py curriculum_stage=3 episodes=10
"""
from __future__ import annotations

import json
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import envs  # noqa: E402,F401  (headless GL before mujoco)
from envs.config import ConfigError  # noqa: E402
from launch.evaluate import format_block, run_expert_episodes  # noqa: E402
from launch.rundir import remove_if_untouched  # noqa: E402
from runconfig.cli import quote_numeric_group_overrides  # noqa: E402
from runconfig.keys import boolean, check_flat_keys, integer, one_of  # noqa: E402

RULES = {"backend": one_of("mujoco"), "episodes": integer(1), "seed": integer(0), "video": boolean(),
         "video_episodes": integer(0), "pixels": boolean()}


def check(cfg: DictConfig) -> None:
    """Every key known and every value allowed, before the simulator starts."""
    check_flat_keys(OmegaConf.to_container(cfg), RULES, ("curriculum_stage", "reward_version"))


@hydra.main(config_path="../conf", config_name="record_expert", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    try:
        check(cfg)
        video = cfg.video and cfg.video_episodes > 0
        stats = run_expert_episodes(
            episodes=cfg.episodes, seed=cfg.seed, video_path=os.path.join(out_dir, "expert.mp4") if video else None,
            video_episodes=cfg.video_episodes, curriculum_stage=cfg.curriculum_stage.stage,
            reward_version=cfg.reward_version.name, pixels=cfg.pixels)
    except ConfigError as e:
        remove_if_untouched(out_dir, also=(".hydra",))
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    print(format_block(stats))
    with open(os.path.join(out_dir, "eval.json"), "w") as f:
        json.dump(stats, f, indent=2)
    print(f"results: {out_dir}/eval.json" + "".join(f"\nvideo: {v}" for v in stats["videos"]))


if __name__ == "__main__":
    sys.argv = quote_numeric_group_overrides(sys.argv)
    main()
