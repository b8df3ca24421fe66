"""Train an agent on the lift task.

    python scripts/train.py env=genesis_lift agent=drqv2 reward_version=v19 curriculum_stage=3
    python scripts/train.py -m reward_version=v11,v19 seed=1,2,3 hydra/launcher=joblib
    python scripts/train.py resume=<run dir or snapshot>
"""
from __future__ import annotations

import atexit
import logging
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
from launch.sweep import SweepStop  # noqa: E402
from runconfig.cli import (check_output_dir_override, check_unknown_overrides,  # noqa: E402
                           quote_numeric_group_overrides)


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    from launch.pipeline import run_any as run

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


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown: by now the run has closed what it owns (snapshot,
    CSVs, TensorBoard, wandb); the atexit handlers still run and the streams are flushed here, but
    the final collection of a trained run's objects, which takes seconds, is skipped."""
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    typed = sys.argv[1:]
    sys.argv = quote_numeric_group_overrides(sys.argv)
    problem = check_unknown_overrides(sys.argv[1:]) or check_output_dir_override(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    if {"-m", "--multirun"} & set(sys.argv[1:]):  # a sweep's launcher shuts its workers down on the way out
        with SweepStop(typed) as sweep:  # SIGINT/SIGTERM stop the whole sweep
            main()
        sweep.finish()
    else:
        try:
            main()
        except SystemExit as e:
            if e.code is not None and not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
            exit_now(e.code if isinstance(e.code, int) else int(e.code is not None))
        exit_now(0)
