"""What a run tells its user: one line per evaluation, and a closing block at the end.

Both engines write the same `eval.csv`, so the closing block reads its figures from there
(through the comparison tool's reader, which also follows a `resumed_from` link).
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

_log = logging.getLogger("liftbase")


@lru_cache(maxsize=1)
def _hydra_job() -> tuple[bool, str]:
    """(inside a Hydra app, '[job #n: overrides] ' when it is one job of a multirun, else '')."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return False, ""
        hc = HydraConfig.get()
        return True, (_job_tag(hc) if hc.mode == RunMode.MULTIRUN else "")
    except Exception:  # noqa: BLE001
        return False, ""


def _job_tag(hc: Any) -> str:
    """'[job 2/4 reward_version=v19 seed=2] ': the job's values of the swept keys, read from the
    sweep's multirun.yaml (the overrides with a list of values); all its overrides if unreadable."""
    import yaml

    mine = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in hc.overrides.task if "=" in o}
    try:
        spec = yaml.safe_load((Path(hc.sweep.dir) / "multirun.yaml").read_text())["hydra"]["overrides"]["task"]
        swept = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in spec if "=" in o}
        swept = {k: v for k, v in swept.items() if "," in v or v.startswith(("range(", "choice(", "glob("))}
        total = 1
        for v in swept.values():
            total = total * (v.count(",") + 1) if "," in v and "(" not in v else 0
        keys = [k for k in mine if k.lstrip("+~") in {s.lstrip("+~") for s in swept}]
    except Exception:  # noqa: BLE001  no multirun.yaml (a custom sweeper): name every override
        total, keys = 0, list(mine)
    of = f"/{total}" if total else ""
    return f"[job {hc.job.num + 1}{of} " + " ".join(f"{k}={mine[k]}" for k in keys) + "] "


def say(message: str) -> None:
    """One line of a run's story. Under Hydra it goes through logging: the console and the run's
    `train.log`, each line of a sweep job tagged with the job; in a plain Python call, stdout."""
    hydra, tag = _hydra_job()
    if hydra:
        for line in message.splitlines() or [""]:
            _log.info(tag + line if tag else line)
    else:
        print(message, flush=True)


def _figures(success: float, ret: float | None = None, length: float | None = None, z: float | None = None) -> str:
    """'success 90 %, return 1901, length 38, max cube z 0.141 m' (absent figures left out)."""
    parts = [f"success {100 * success:.0f} %"]
    parts += [f"return {ret:.0f}"] if ret is not None else []
    parts += [f"length {length:.0f}"] if length is not None else []
    parts += [f"max cube z {z:.3f} m"] if z is not None else []
    return ", ".join(parts)


def eval_line(metrics: Mapping[str, float], frames: int, episodes: int) -> str:
    """'[eval] 15,000 frames, 20 episodes: success 90 %, return 1901, length 38, max cube z 0.141 m'."""
    figures = _figures(metrics.get("eval/success_rate", 0.0), metrics.get("eval/episode_reward"),
                       metrics.get("eval/episode_length"), metrics.get("eval/max_cube_z"))
    wall = metrics.get("eval/wall_s")
    when = f" ({_duration(wall)} into the run)" if wall is not None else ""
    return f"[eval] {frames:,} frames, {episodes} episode{'s' * (episodes != 1)}: {figures}{when}"


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _row(curve: dict[str, list[float]], i: int) -> str:
    at = {k: v[i] for k, v in curve.items()}
    return f"({at['frames']:,.0f} frames): " + _figures(at["success"], at.get("return"), z=at.get("max_cube_z"))


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
