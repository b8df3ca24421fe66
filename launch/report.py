"""What a run tells its user: one line per evaluation, and a closing block at the end.

Both engines write the same `eval.csv`, so the closing block reads its figures from there
(through the comparison tool's reader, which also follows a `resumed_from` link).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from analysis.runs import load_runs
from learning.console import _figures, duration, eval_line, say

__all__ = ["closing_block", "eval_line", "say"]


def _row(curve: dict[str, list[float]], i: int) -> str:
    at = {k: v[i] for k, v in curve.items()}
    return f"({at['frames']:,.0f} frames): " + _figures(at["success"], at.get("return"), z=at.get("max_cube_z"))


def closing_block(work_dir: Path, result: Mapping[str, Any], wall_s: float) -> str:
    """Final and best evaluation, wall time and the run directory, as printed at the end of a run."""
    work_dir = Path(work_dir).resolve()
    try:
        runs, _ = load_runs([str(work_dir)])
        curve = next((r.curve for r in runs if r.path == work_dir), {})
    except Exception as e:  # noqa: BLE001  reporting must never fail a run that has finished
        curve, note = {}, f"eval.csv unreadable ({e})"
    else:
        note = "none (eval_every_steps=0 or no evaluation reached)"
    frames = int(result.get("frames", 0))
    stop = result.get("stop_signal")
    trained = result.get("wall_s")  # the trainer's clock: the one the [eval] lines and train_minutes count
    if trained is None:
        clock = f"wall time {duration(wall_s)}"
    else:
        setup = max(0.0, wall_s - (trained - float(result.get("wall_s_before", 0.0))))
        clock = (f"wall time {duration(trained)} (training, over all sessions: the clock of the [eval] lines and "
                 f"train_minutes) + {duration(setup)} of setup in this process (validation, envs, kernels)")
    lines = ["=" * 72, f"run {'stopped by ' + stop if stop else 'finished'}: {frames:,} frames, {clock}"]
    if curve.get("frames"):
        n = len(curve["frames"])
        returns = curve.get("return") or [0.0] * n
        best = max(range(n), key=lambda i: (curve["success"][i], returns[i]))  # ties: the higher return
        lines.append(f"final eval {_row(curve, n - 1)}")
        lines.append(f"best eval  {_row(curve, best)}")
    else:
        lines.append(f"final eval: {note}")
    lines.append(f"run directory: {work_dir}")
    if stop:
        lines.append(f"resume with: python scripts/train.py resume={work_dir}")
    lines.append("=" * 72)
    return "\n".join(lines)
