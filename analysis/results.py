"""The results page's opening table, built from committed runs.

A manifest (docs/learning/results.yaml) names one row per preset: its label, the run
directories that are its current result, and the machine and date for runs that recorded none.
Each row gives the seeds, the final success over them (mean and IQM with the comparison's
bootstrap CIs, `analysis.report.summarize_group`), the lowest evaluation once a seed had reached
90 %, the training wall time per seed (the trainer's clock, `eval/wall_s` of the last
evaluation) and the machine. The table replaces what stands between the page's two markers;
the rest of the page is left as it is.

Manifest:

    rows:
      - preset: "`sac_stage2` (MuJoCo)"                 # the row's label (markdown)
        runs: [runs/main_job_update_order]              # relative to the manifest's directory
        machine: 2-core AMD EPYC                        # for runs without machine.yaml
        date: 2026-12-04                                # likewise
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml

from analysis.report import summarize_group
from analysis.runs import CompareError, Run, check_same_task, load_runs

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
MACHINE_FILE = "machine.yaml"  # what a run recorded about where it ran: a list, one entry per session
ROW_KEYS = {"preset", "runs", "machine", "date"}
HEADER = ("| preset | seeds | final success: mean [95 % CI] | IQM [95 % CI] | lowest once at 90 % "
          "| training wall time per seed | machine, date |")


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The manifest's rows, each checked: a bad one is named with its position and key."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CompareError(f"manifest={path}: unreadable ({e})") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise CompareError(f"manifest={path}: no 'rows' list (each row: preset, runs, machine, date)")
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise CompareError(f"manifest={path}: row {i} is {row!r}, not a mapping of {sorted(ROW_KEYS)}")
        extra = set(row) - ROW_KEYS
        if extra:
            raise CompareError(f"manifest={path}: row {i} has unknown key(s) {sorted(extra)}; allowed {sorted(ROW_KEYS)}")
        if not isinstance(row.get("preset"), str) or not row["preset"]:
            raise CompareError(f"manifest={path}: row {i} needs preset: a non-empty label")
        runs = row.get("runs")
        if not isinstance(runs, list) or not runs or not all(isinstance(r, str) and r for r in runs):
            raise CompareError(f"manifest={path}: row {i} ({row['preset']}) needs runs: a non-empty list of "
                               "run or sweep directories")
    return rows


def machine_records(run: Run) -> list[dict[str, Any]]:
    """The sessions' entries of the run's machine.yaml (and of the run it was resumed from)."""
    out: list[dict[str, Any]] = []
    for d in (run.resumed_from, run.path):
        f = d / MACHINE_FILE if d is not None else None
        if f is not None and f.is_file():
            entries = yaml.safe_load(f.read_text()) or []
            out.extend(e for e in entries if isinstance(e, dict))
    return out


def machine_name(entry: dict[str, Any]) -> str:
    """'2-core AMD EPYC 7B13', with the GPU when the run trained on one."""
    name = f"{entry.get('cores', '?')}-core {entry.get('cpu', 'unknown CPU')}"
    return f"{name}, {entry['gpu']}" if entry.get("gpu") else name


def _seeds(seeds: list[Any]) -> str:
    """'1-5', '1, 3', or as given when not integers."""
    if not all(isinstance(s, int) for s in seeds):
        return ", ".join(map(str, seeds))
    s = sorted(seeds)
    if len(s) > 2 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}-{s[-1]}"
    return ", ".join(map(str, s))


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _kframes(f: float) -> str:
    return f"{f / 1000:.1f}".rstrip("0").rstrip(".") + "k"


def _minutes(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _lowest(per_run: list[dict[str, Any]]) -> str:
    """'85 % (seed 5, at 10k frames)': the lowest evaluation of any seed once it had reached 90 %."""
    lows = [(r["lowest_after_90"], r["seed"]) for r in per_run if r["lowest_after_90"] is not None]
    if not lows:
        return "90 % not reached"
    low = min(v["success"] for v, _ in lows)
    where = [(seed, v["frames"]) for v, seed in lows if v["success"] == low]
    if len(where) == 1:
        seed, frames = where[0]
        return f"{_pct(low)} (seed {seed}, at {', '.join(map(_kframes, frames))} frames)"
    return f"{_pct(low)} ({', '.join(f'seed {s} at {_kframes(fs[0])}' for s, fs in where)} frames)"


def _wall(runs: list[Run]) -> str:
    walls = [r.curve["wall_s"][-1] for r in runs if "wall_s" in r.curve and math.isfinite(r.curve["wall_s"][-1])]
    if len(walls) < len(runs):
        return "not recorded"
    lo, hi = min(walls), max(walls)
    return _minutes(lo) if _minutes(lo) == _minutes(hi) else f"{_minutes(lo)} - {_minutes(hi)}"


def _where(runs: list[Run], row: dict[str, Any]) -> str:
    """The machine(s) and date(s) the runs recorded; the manifest's for runs that recorded none."""
    machines: list[str] = []
    dates: list[str] = []
    unrecorded = False
    for r in runs:
        records = machine_records(r)
        unrecorded |= not records
        machines += [machine_name(e) for e in records]
        dates += [str(e["started"])[:10] for e in records if e.get("started")]
    if unrecorded:
        if row.get("machine") is None or row.get("date") is None:
            missing = [str(r.path) for r in runs if not machine_records(r)]
            raise CompareError(f"row {row['preset']!r}: {', '.join(missing)} recorded no {MACHINE_FILE}; "
                               "give machine: and date: in the manifest")
        machines.append(str(row["machine"]))
        dates.append(str(row["date"]))
    return f"{', '.join(dict.fromkeys(machines))}, {', '.join(sorted(set(dates)))}"


def table_row(row: dict[str, Any], base: Path, reps: int, seed: int) -> str:
    runs, _ = load_runs([str(base / p) for p in row["runs"]])
    if not runs:
        raise CompareError(f"row {row['preset']!r}: no run under {row['runs']} has evaluation rows")
    check_same_task(row["preset"], runs)
    g = summarize_group(row["preset"], runs, reps, seed)
    mean, iqm = (_with_ci(g["final_success_mean"], g["final_success_mean_ci"], len(runs)),
                 _with_ci(g["final_success_iqm"], g["final_success_iqm_ci"], len(runs)))
    return (f"| {row['preset']} | {_seeds(g['seeds'])} | {mean} | {iqm} | {_lowest(g['per_run'])} "
            f"| {_wall(runs)} | {_where(runs, row)} |")


def _with_ci(point: float, ci: list[float], runs: int) -> str:
    return f"{_pct(point)} [{_pct(ci[0])}, {_pct(ci[1])}]" if runs > 1 else f"{_pct(point)} (one seed: no CI)"


def results_table(manifest: Path, reps: int, seed: int) -> str:
    """The block between the markers: one row per manifest row, in its order."""
    rows = read_manifest(manifest)
    lines = [BEGIN, (f"<!-- built by scripts/compare.py results=<this page> from the runs that {manifest.name} "
                     "lists: edit that manifest, not this table -->"),
             "", HEADER, "|---|---|---|---|---|---|---|"]
    lines += [table_row(row, manifest.parent, reps, seed) for row in rows]
    return "\n".join([*lines, "", END])


def write_results(page: Path, block: str) -> bool:
    """Put `block` between the page's markers (atomically); False when it was there already."""
    try:
        text = page.read_text()
    except OSError as e:
        raise CompareError(f"results={page}: unreadable ({e.strerror})") from None
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise CompareError(f"results={page}: the page has no '{BEGIN}' ... '{END}' markers to put the table between")
    new = text[:start] + block + text[end + len(END):]
    if new == text:
        return False
    tmp = page.with_name(f".{page.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, page)
    return True
