"""What a run tells its user: one line per evaluation, and a closing block at the end.

Both engines write the same `eval.csv`, so the closing block reads its figures from there
(through the comparison tool's reader, which also follows a `resumed_from` link).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping


def eval_line(metrics: Mapping[str, float], frames: int, episodes: int) -> str:
    """'[eval] 15,000 frames, 20 episodes: success 90 %, return 1901, length 38, max cube z 0.141 m'."""
    parts = [f"success {100 * metrics.get('eval/success_rate', 0.0):.0f} %"]
    if "eval/episode_reward" in metrics:
        parts.append(f"return {metrics['eval/episode_reward']:.0f}")
    if "eval/episode_length" in metrics:
        parts.append(f"length {metrics['eval/episode_length']:.0f}")
    if "eval/max_cube_z" in metrics:
        parts.append(f"max cube z {metrics['eval/max_cube_z']:.3f} m")
    return f"[eval] {frames:,} frames, {episodes} episode{'s' * (episodes != 1)}: " + ", ".join(parts)


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _row(curve: dict[str, list[float]], i: int) -> str:
    parts = [f"success {100 * curve['success'][i]:.0f} %"]
    if "return" in curve:
        parts.append(f"return {curve['return'][i]:.0f}")
    if "max_cube_z" in curve:
        parts.append(f"max cube z {curve['max_cube_z'][i]:.3f} m")
    return f"({curve['frames'][i]:,.0f} frames): " + ", ".join(parts)


def closing_block(work_dir: Path, result: Mapping[str, Any], wall_s: float) -> str:
    """Final and best evaluation, wall time and the run directory, as printed at the end of a run."""
    from analysis.runs import load_runs

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
    lines = ["=" * 72,
             f"run {'stopped by ' + stop if stop else 'finished'}: {frames:,} frames, wall time {_duration(wall_s)}"]
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
