"""Measure env throughput and write the figures, with the machine, to docs/benchmarks.md.

    python scripts/benchmark.py
"""
from __future__ import annotations

import datetime
import os
import re
import sys

import hydra
from omegaconf import DictConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import envs  # noqa: E402,F401  (headless GL first)
from bench.machine import describe  # noqa: E402
from bench.mujoco_bench import env_steps_per_second  # noqa: E402


def replace_section(text: str, name: str, body: str) -> str:
    """Replace (or append) the section between <!-- name --> markers."""
    block = f"<!-- {name} -->\n{body.rstrip()}\n<!-- /{name} -->"
    pattern = re.compile(rf"<!-- {name} -->.*?<!-- /{name} -->", re.S)
    return pattern.sub(block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"


@hydra.main(config_path="../conf", config_name="benchmark", version_base="1.3")
def main(cfg: DictConfig) -> None:
    machine = describe()
    print(f"machine: {machine}", flush=True)
    rows = []
    for pixels in (False, True):
        rate = env_steps_per_second(pixels, int(cfg.mujoco_steps))
        label = "84x84 wrist camera" if pixels else "state only (no camera)"
        print(f"MuJoCo, {label}: {rate:.0f} env-steps/s", flush=True)
        rows.append(f"| MuJoCo | 1 | {label} | {rate:.0f} |")
    body = "\n".join([
        f"Measured {datetime.date.today()} on: {machine}.",
        "",
        "| backend | envs | observation | env-steps/s |",
        "|---|---|---|---|",
        *rows,
    ])
    if cfg.write_docs:
        path = os.path.join(ROOT, cfg.docs_path)
        text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
        with open(path, "w") as f:
            f.write(replace_section(text, "mujoco-env", body))
        print(f"written to {path}")


if __name__ == "__main__":
    main()
