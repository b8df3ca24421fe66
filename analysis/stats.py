"""Aggregate statistics over seeds, from rliable (Agarwal et al. 2021): means and IQMs with
stratified-bootstrap percentile confidence intervals.

rliable works on score matrices of shape (runs, tasks). Here a "task" column is one
evaluation point (a frame count, or the final evaluation), so one bootstrap call serves a
whole curve; each column's interval is the marginal one over the runs that reached it.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np

CONFIDENCE = 0.95


def _interval(scores: np.ndarray, func: Callable[[np.ndarray], np.ndarray], reps: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point, low, high), each (tasks,), for scores (runs, tasks)."""
    from rliable import library as rly

    if scores.shape[0] == 1:  # one run: nothing to resample, the interval is the point
        point = func(scores)
        return point, point, point
    # rliable's StratifiedBootstrap draws its resamples from NumPy's global RNG (np.random.choice),
    # not from `random_state`: seed that one too, and put it back after, so the same inputs give
    # the same intervals in every process.
    outside = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arch's note on RandomState vs Generator
            points, intervals = rly.get_interval_estimates(
                {"g": scores}, func, reps=reps, confidence_interval_size=CONFIDENCE,
                random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(outside)
    return points["g"], intervals["g"][0], intervals["g"][1]


def mean_ci(scores: np.ndarray, reps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column mean over runs and its 95 % bootstrap CI; scores (runs, columns)."""
    return _interval(scores, lambda s: s.mean(axis=0), reps, seed)


def iqm_ci(values: list[float], reps: int, seed: int = 0) -> tuple[float, float, float]:
    """Interquartile mean of one score per run, with its 95 % bootstrap CI."""
    from rliable import metrics

    point, low, high = _interval(np.asarray(values, dtype=np.float64)[:, None],
                                 lambda s: np.array([metrics.aggregate_iqm(s)]), reps, seed)
    return float(point[0]), float(low[0]), float(high[0])


def curve_ci(frames: list[list[float]], values: list[list[float]], reps: int, seed: int = 0
             ) -> dict[str, list[float]]:
    """Mean curve with its CI band over runs whose eval frames may differ (runs in progress).

    frames[i], values[i]: run i's eval points. At each frame, the runs that evaluated there
    count; columns reached by the same runs share one bootstrap call.
    """
    grid = sorted({f for fs in frames for f in fs})
    at = [dict(zip(fs, vs)) for fs, vs in zip(frames, values)]
    out = {"frames": grid, "mean": [math.nan] * len(grid), "low": [math.nan] * len(grid),
           "high": [math.nan] * len(grid), "runs": [0] * len(grid)}
    by_members: dict[tuple[int, ...], list[int]] = {}
    for j, f in enumerate(grid):
        members = tuple(i for i, a in enumerate(at) if f in a and np.isfinite(a[f]))
        if members:
            by_members.setdefault(members, []).append(j)
    for members, cols in by_members.items():
        scores = np.array([[at[i][grid[j]] for j in cols] for i in members], dtype=np.float64)  # (runs, cols)
        mean, low, high = mean_ci(scores, reps, seed)
        for k, j in enumerate(cols):
            out["mean"][j], out["low"][j], out["high"][j] = float(mean[k]), float(low[k]), float(high[k])
            out["runs"][j] = len(members)
    return out


def first_reaching(frames: list[float], values: list[float], level: float) -> float | None:
    """The first frame count at which values >= level, or None when never reached."""
    for f, v in zip(frames, values):
        if np.isfinite(v) and v >= level:
            return f
    return None


def lowest_since(frames: list[float], values: list[float], level: float) -> dict[str, Any] | None:
    """The lowest value from the evaluation that first reached `level` to the last one, and the
    frames at which it was seen: {'success': value, 'frames': [...]}; None when never reached.
    A curve that dips after first reaching a level shows it here, not only on the plot."""
    start = first_reaching(frames, values, level)
    if start is None:
        return None
    tail = [(f, v) for f, v in zip(frames, values) if f >= start and np.isfinite(v)]
    low = min(v for _, v in tail)
    return {"success": float(low), "frames": [f for f, v in tail if v == low]}


def stays_from(frames: list[float], values: list[float], level: float) -> float | None:
    """The first frame count from which every later evaluation is >= level, to the last one;
    None when the last evaluation is below it (the curve does not stay there)."""
    since = None
    for f, v in zip(reversed(frames), reversed(values)):
        if not np.isfinite(v):
            continue
        if v < level:
            break
        since = f
    return since
