"""The comparison's outputs: summary.json, summary.md and curves.png, all built in memory
first, then written (each file atomically), so a failure never leaves half a report."""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from analysis.runs import Run
from analysis.stats import CONFIDENCE, curve_ci, first_reaching, iqm_ci, lowest_since, mean_ci, stays_from

LEVELS = (0.5, 0.9)


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def summarize_group(label: str, runs: list[Run], reps: int, seed: int) -> dict[str, Any]:
    """Per-group figures over seeds: final success (mean and IQM with CIs), curves, thresholds."""
    finals = [r.curve["success"][-1] for r in runs]
    final_returns = [r.curve["return"][-1] if "return" in r.curve else math.nan for r in runs]
    mean, low, high = mean_ci(np.array(finals, dtype=np.float64)[:, None], reps, seed)
    iqm, iqm_low, iqm_high = iqm_ci(finals, reps, seed)
    curves = {m: curve_ci([r.frames for r in runs], [r.curve[m] for r in runs], reps, seed)
              for m in ("success", "return") if all(m in r.curve for r in runs)}
    full = [j for j, n in enumerate(curves["success"]["runs"]) if n == len(runs)]  # every run evaluated here
    grid, mean_curve = curves["success"]["frames"], curves["success"]["mean"]
    out: dict[str, Any] = {
        "group": label, "runs": len(runs), "seeds": [r.seed for r in runs],
        "final_frames": [r.frames[-1] for r in runs],
        "final_success_mean": float(mean[0]), "final_success_mean_ci": [float(low[0]), float(high[0])],
        "final_success_iqm": iqm, "final_success_iqm_ci": [iqm_low, iqm_high],
        "final_return_mean": float(np.nanmean(final_returns)) if np.isfinite(final_returns).any() else None,
        "curves": curves,
        "per_run": [{"seed": r.seed, "path": shown(r.path), "final_frames": r.frames[-1],
                     "final_success": r.curve["success"][-1],
                     "final_return": r.curve["return"][-1] if "return" in r.curve else None,
                     "best_success": max(r.curve["success"]),
                     **thresholds(r.frames, r.curve["success"])} for r in runs],
    }
    out.update(thresholds([grid[j] for j in full], [mean_curve[j] for j in full]))
    return out


def thresholds(frames: list[float], success: list[float]) -> dict[str, Any]:
    """For each level: when the curve first reached it (frames_to_N), the lowest evaluation from
    then on and where (lowest_after_N), and from when it stays there to the end (stays_N_from)."""
    out: dict[str, Any] = {}
    for lv in LEVELS:
        n = int(lv * 100)
        out[f"frames_to_{n}"] = first_reaching(frames, success, lv)
        out[f"lowest_after_{n}"] = lowest_since(frames, success, lv)
        out[f"stays_{n}_from"] = stays_from(frames, success, lv)
    return out


def build_summary(groups: dict[str, list[Run]], skipped: list[tuple[Path, str]], by: list[str] | None,
                  reps: int, seed: int) -> dict[str, Any]:
    return {"by": by or "overrides that differ (other than seed)", "confidence": CONFIDENCE,
            "bootstrap_reps": reps, "statistics": "rliable: stratified bootstrap, percentile intervals",
            "groups": [summarize_group(label, runs, reps, seed) for label, runs in groups.items()],
            "skipped": [{"path": shown(p), "why": why} for p, why in skipped]}


def _frames(f: float | None) -> str:
    return "not reached" if f is None else f"{f:,.0f}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _stays(f: float | None) -> str:
    return "never" if f is None else f"{f:,.0f}"


def _lowest(low: dict[str, Any] | None) -> str:
    """'60 % at 10,000'; a value seen at many evaluations names the first and last of them."""
    if low is None:
        return "not reached"
    fs = low["frames"]
    where = (", ".join(f"{f:,.0f}" for f in fs) if len(fs) <= 3
             else f"{len(fs)} evaluations, {fs[0]:,.0f}-{fs[-1]:,.0f}")
    return f"{_pct(low['success'])} at {where}"


def markdown(summary: dict[str, Any], command: str) -> str:
    lines = ["# Comparison", "", f"`{command}`", "",
             f"Means and interquartile means (IQM) of the final evaluation over seeds, with "
             f"{100 * summary['confidence']:.0f} % confidence intervals ({summary['statistics']}, "
             f"{summary['bootstrap_reps']} resamples). 'Reached at': first evaluation at which the mean over "
             "all the group's seeds got there. What came after: 'lowest after 90 %' is the lowest evaluation "
             "from the one that first reached 90 % to the last, and at which frames; 'stays >= N % from' is the "
             "first evaluation from which every later one is at least N % ('never': the last one is below). "
             "For a group these read the mean over all its seeds, at the frames every seed evaluated.", "",
             "| group | seeds | final frames | final success: mean [CI] | IQM [CI] | final return | 50 % reached at "
             "| 90 % reached at | lowest after 90 % | stays >= 90 % from | stays >= 50 % from |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for g in summary["groups"]:
        ff = g["final_frames"]
        frames = f"{min(ff):,.0f}" if min(ff) == max(ff) else f"{min(ff):,.0f}-{max(ff):,.0f}"
        ret = "-" if g["final_return_mean"] is None else f"{g['final_return_mean']:.0f}"
        lines.append(f"| {g['group']} | {', '.join(map(str, g['seeds']))} | {frames} | "
                     f"{_pct(g['final_success_mean'])} [{_pct(g['final_success_mean_ci'][0])}, "
                     f"{_pct(g['final_success_mean_ci'][1])}] | {_pct(g['final_success_iqm'])} "
                     f"[{_pct(g['final_success_iqm_ci'][0])}, {_pct(g['final_success_iqm_ci'][1])}] | {ret} | "
                     f"{_frames(g['frames_to_50'])} | {_frames(g['frames_to_90'])} | {_lowest(g['lowest_after_90'])} | "
                     f"{_stays(g['stays_90_from'])} | {_stays(g['stays_50_from'])} |")
    for g in summary["groups"]:
        lines += ["", f"## {g['group']}", "", "| seed | final frames | final success | best success | final return "
                  "| 90 % first at | lowest after 90 % | stays >= 90 % from | stays >= 50 % from | run |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in g["per_run"]:
            ret = "-" if r["final_return"] is None else f"{r['final_return']:.0f}"
            lines.append(f"| {r['seed']} | {r['final_frames']:,.0f} | {_pct(r['final_success'])} | "
                         f"{_pct(r['best_success'])} | {ret} | {_frames(r['frames_to_90'])} | "
                         f"{_lowest(r['lowest_after_90'])} | {_stays(r['stays_90_from'])} | "
                         f"{_stays(r['stays_50_from'])} | `{r['path']}` |")
    if summary["skipped"]:
        lines += ["", "## Skipped inputs", ""] + [f"- `{s['path']}`: {s['why']}" for s in summary["skipped"]]
    lines += ["", "![curves](curves.png)", ""]
    return "\n".join(lines)


def plot(summary: dict[str, Any]) -> bytes:
    """curves.png: eval success and return against env frames, mean over seeds with the CI band.
    The line joins only the frames every seed evaluated at; where fewer did (runs stopped by a
    wall-clock budget end at different frames), the mean of those is a cross off the line, so a
    single seed's last point does not read as the group's curve."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(summary["groups"])
    legend_h = 0.3 * n + 0.3                                               # inches below the panels
    fig, axes = plt.subplots(1, 2, figsize=(11, 4 + legend_h))
    for g in summary["groups"]:
        for ax, metric in zip(axes, ("success", "return")):
            c = g["curves"].get(metric)
            if c is None:
                continue
            full = [j for j, k in enumerate(c["runs"]) if k == g["runs"]]
            part = [j for j, k in enumerate(c["runs"]) if 0 < k < g["runs"]]
            pick = lambda key, cols: [c[key][j] for j in cols]  # noqa: E731
            line, = ax.plot(pick("frames", full), pick("mean", full), marker="o", ms=3,
                            label=f"{g['group']} (n={g['runs']})")
            ax.fill_between(pick("frames", full), pick("low", full), pick("high", full), color=line.get_color(),
                            alpha=0.2)
            if part:
                ax.plot(pick("frames", part), pick("mean", part), linestyle="none", marker="x", ms=5,
                        color=line.get_color(), label=f"{g['group']}: fewer seeds evaluated there")
    axes[0].set_ylabel("eval success rate")
    axes[0].set_ylim(-0.03, 1.03)
    axes[1].set_ylabel("eval return")
    for ax in axes:
        ax.set_xlabel("env frames")
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", fontsize=8, frameon=False)
    fig.suptitle(f"mean over seeds, {100 * summary['confidence']:.0f} % bootstrap CI", fontsize=10)
    fig.tight_layout(rect=(0, legend_h / (4 + legend_h), 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(out: Path, summary: dict[str, Any], command: str) -> list[Path]:
    """Build every file in memory, then write each atomically into `out`."""
    files = {"summary.json": json.dumps(summary, indent=2).encode(),
             "summary.md": markdown(summary, command).encode(),
             "curves.png": plot(summary)}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out / name)
        written.append(out / name)
    return written
