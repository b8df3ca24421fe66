"""Measure env and training throughput; write the figures, with the machine, to docs/.

    python scripts/benchmark.py                      # everything (about 20-30 min on 2 CPU cores)
    python scripts/benchmark.py sections=[mujoco]    # one section
    python scripts/benchmark.py sections=[eval]      # an evaluation: the batched loop against the one-env loop
    python scripts/benchmark.py sections=[vision]    # blind vs seeing baselines (~30 min; not in the default)
    python scripts/benchmark.py sections=[vision] vision_reuse=true   # the last baselines, the preset's runs now
"""
from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import envs  # noqa: E402,F401  (headless GL first)
from bench.machine import describe  # noqa: E402
from bench.report import (eval_section, genesis_section, merge_raw, mujoco_section, plot, train_section,  # noqa: E402
                          update_section, vision_section, write_docs)

SECTIONS = ("mujoco", "genesis", "train", "update", "eval", "vision")


@hydra.main(config_path="../conf", config_name="benchmark", version_base="1.3")
def main(cfg: DictConfig) -> None:
    bad = [s for s in cfg.sections if s not in SECTIONS]
    if bad:
        raise SystemExit(f"error: sections={bad} is invalid: allowed {list(SECTIONS)}")
    machine = describe()
    head = f"Measured {datetime.date.today()} on: {machine}.\n\n"
    print(head, flush=True)
    out, genesis, train, mujoco, mujoco_costs, update, evaluation, vision = {}, [], [], [], [], None, None, None
    if "mujoco" in cfg.sections:
        body, mujoco, mujoco_costs = mujoco_section(int(cfg.mujoco_steps), list(cfg.mujoco_ns), int(cfg.mujoco_rounds))
        out["mujoco-env"] = head + body
    if "genesis" in cfg.sections:
        body, genesis = genesis_section(list(cfg.genesis_ns), list(cfg.genesis_camera_ns), int(cfg.genesis_steps),
                                        int(cfg.genesis_camera_steps), str(cfg.sim_device))
        out["genesis-env"] = head + body
    if "train" in cfg.sections:
        body, train = train_section(list(cfg.train_ns), str(cfg.train_env), int(cfg.train_frames))
        out["training"] = head + body
    if "update" in cfg.sections:
        body, update = update_section(list(cfg.update_batches), int(cfg.update_rounds))
        out["update"] = head + body
    if "eval" in cfg.sections:
        body, evaluation = eval_section(int(cfg.eval_episodes), int(cfg.eval_rounds))
        out["eval"] = head + body
    if "vision" in cfg.sections:
        reuse = (ROOT / cfg.docs_path).with_suffix(".json") if cfg.vision_reuse else None
        body, vision = vision_section(str(cfg.vision_experiment), list(cfg.vision_seeds), int(cfg.vision_episodes),
                                      int(cfg.vision_bc_steps), list(cfg.vision_runs), head, reuse)
        out["vision"] = body
    # The raw figures stay with the run (Hydra's output dir), whatever is done with the docs.
    raw = Path(HydraConfig.get().runtime.output_dir) / "results.json"
    raw.write_text(json.dumps({"machine": machine, "mujoco": mujoco, "mujoco_step_costs": mujoco_costs,
                               "genesis": genesis, "train": train, "update": update, "eval": evaluation,
                               "vision": vision}, indent=1))
    print(f"raw results: {raw}")
    if cfg.write_docs:
        write_docs(ROOT / cfg.docs_path, out)
        raw = merge_raw((ROOT / cfg.docs_path).with_suffix(".json"),
                        {"genesis": genesis, "train": train, "mujoco": mujoco, "mujoco_step_costs": mujoco_costs,
                         "update": update, "eval": evaluation, "vision": vision})
        plot(raw.get("genesis", []), raw.get("train", []), ROOT / cfg.plot_path)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
