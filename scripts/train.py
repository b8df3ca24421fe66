"""Train an agent on the lift task.

    python scripts/train.py env=genesis_lift agent=drqv2 reward_version=v19 curriculum_stage=3
    python scripts/train.py -m reward_version=v11,v19 seed=1,2,3 hydra/launcher=joblib
    python scripts/train.py resume=<run dir or snapshot>
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# Launchers start jobs in new processes (submitit, joblib's workers): they must find the project too.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import envs  # noqa: E402,F401  (headless GL before mujoco/genesis)
from envs.config import ConfigError  # noqa: E402
from launch.rundir import DiskFull  # noqa: E402
from runconfig.cli import (check_output_dir_override, check_unknown_overrides,  # noqa: E402
                           quote_numeric_group_overrides)


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from launch.run import run

    hc = hydra.core.hydra_config.HydraConfig.get()
    try:
        result = run(cfg, hc.runtime.output_dir, list(hc.overrides.task))
    except ConfigError as e:
        # Bad input: one clear line, not a stack trace from deep inside a simulator.
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except DiskFull as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    return float(result.get("eval/success_rate", result.get("train/success_rate", 0.0)) or 0.0)


if __name__ == "__main__":
    sys.argv = quote_numeric_group_overrides(sys.argv)
    problem = check_unknown_overrides(sys.argv[1:]) or check_output_dir_override(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    main()
