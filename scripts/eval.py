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
from omegaconf import DictConfig, OmegaConf  # noqa: E402

KEYS = {"checkpoint", "episodes", "seed", "video_episodes", "device", "curriculum_stage"}


def checkpoint_problem(argv: list[str]) -> str | None:
    """A `checkpoint=` that names no snapshot, found before anything heavy is imported or written."""
    for arg in argv:
        if arg.startswith("checkpoint="):
            p = Path(arg.split("=", 1)[1].strip("'\"")).expanduser()
            if not p.exists():
                return f"checkpoint={str(p)!r}: no such file or directory"
            if p.is_dir() and not any((d / "latest_snapshot.pt").is_file() for d in (p / "snapshots", p)):
                return f"checkpoint={str(p)!r} is a directory without snapshots/latest_snapshot.pt"
    return None


@hydra.main(config_path="../conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from envs.config import ConfigError
    from launch.evaluate import evaluate_checkpoint, format_block
    from launch.rundir import remove_if_untouched

    out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    try:
        unknown = sorted(set(OmegaConf.to_container(cfg)) - KEYS)
        if unknown:
            raise ConfigError(f"{unknown[0]}={cfg[unknown[0]]!r} is invalid: unknown key; allowed {sorted(KEYS)}")
        overrides = {}
        if cfg.get("curriculum_stage") is not None:  # the group option, as train.py takes it
            overrides["curriculum_stage.stage"] = int(cfg.curriculum_stage.stage)
        stats = evaluate_checkpoint(str(cfg.checkpoint), cfg.episodes, cfg.seed, out, cfg.video_episodes,
                                    cfg.device, overrides)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        remove_if_untouched(out, also=(".hydra",))
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    print(format_block(stats))
    (out / "eval.json").write_text(json.dumps(stats, indent=2))
    print(f"results: {out / 'eval.json'}" + "".join(f"\nvideo: {v}" for v in stats["videos"]))


if __name__ == "__main__":
    problem = checkpoint_problem(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    import envs  # noqa: F401  (headless GL before mujoco/genesis)
    from runconfig.cli import quote_numeric_group_overrides

    sys.argv = quote_numeric_group_overrides(sys.argv)

    main()
