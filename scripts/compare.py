"""Compare training runs over seeds: curves with 95 % bootstrap bands, final success (mean and
IQM with CIs), frames to 50 % / 90 % success and what came after (the lowest evaluation once
90 % was reached, and from when 90 % / 50 % held to the end), per group of runs and per run.

    python scripts/compare.py runs=[multirun/2026-12-01/10-05-19] by=reward_version out=outputs/cmp

With `results=<page>` it instead rebuilds the page's opening table (between its
`<!-- results:begin -->` and `<!-- results:end -->` markers) from the runs the manifest lists:

    python scripts/compare.py results=docs/results.md      # manifest=docs/learning/results.yaml
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import hydra  # noqa: E402
from omegaconf import DictConfig, ListConfig, OmegaConf  # noqa: E402


def _str_list(cfg: DictConfig, key: str, allow_none: bool) -> list[str] | None:
    value = cfg.get(key)
    if value is None and allow_none:
        return None
    items = list(value) if isinstance(value, ListConfig) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"{key}={OmegaConf.to_container(value) if isinstance(value, ListConfig) else value!r} "
                         "is invalid: allowed a non-empty path or key, or a list of them")
    return items


@hydra.main(config_path="../conf", config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from analysis.report import build_summary, markdown, shown, write_report
    from analysis.runs import CompareError, group_runs, load_runs

    try:
        if not isinstance(cfg.reps, int) or cfg.reps < 100:
            raise ValueError(f"reps={cfg.reps!r} is invalid: allowed an integer >= 100")
        if cfg.results is not None:
            results(Path(str(cfg.results)), Path(str(cfg.manifest)), int(cfg.reps), int(cfg.seed))
            return
        patterns, by = _str_list(cfg, "runs", False), _str_list(cfg, "by", True)
        max_frames = cfg.max_frames
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, (int, float))
                                       or max_frames <= 0):
            raise ValueError(f"max_frames={max_frames!r} is invalid: allowed null or a number of env frames > 0")
        runs, skipped = load_runs(patterns, max_frames)
        for path, why in skipped:
            print(f"skipped {shown(path)}: {why}", flush=True)
        if not runs:
            raise CompareError(f"runs={patterns}: no run has evaluation rows yet ({len(skipped)} skipped)")
        summary = build_summary(group_runs(runs, by), skipped, by, int(cfg.reps), int(cfg.seed))
        command = "python scripts/compare.py " + " ".join(sys.argv[1:])
        written = write_report(Path(cfg.out), summary, command)
    except (CompareError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    print(markdown(summary, command).split("\n## ")[0].strip())
    print("written: " + ", ".join(str(p) for p in written))


def results(page: Path, manifest: Path, reps: int, seed: int) -> None:
    from analysis.results import results_table, write_results

    block = results_table(manifest, reps, seed)
    changed = write_results(page, block)
    print(block)
    print(f"{'written' if changed else 'unchanged'}: {page}")


if __name__ == "__main__":
    main()
