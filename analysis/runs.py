"""Find training runs on disk, read their evaluation curves and group them for comparison.

A run directory is what `scripts/train.py` writes (either engine): `eval.csv`, the resolved
config (`config_resolved.yaml`) and Hydra's `.hydra/overrides.yaml`. A sweep directory holds
run directories, so inputs are searched recursively. A run resumed into a new directory
(`resumed_from` link) continues its original: its curve is the original's rows followed by
its own, and the original is not counted a second time.
"""
from __future__ import annotations

import csv
import glob
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from envs.config import TaskConfig

# Column names of eval.csv: the project's own first, then RoboBase's logger names.
COLUMNS = {
    "frames": ("frames", "frame", "env_frames"),
    "success": ("eval/success_rate", "episode_success", "success_rate"),
    "return": ("eval/episode_reward", "episode_reward"),
    "max_cube_z": ("eval/max_cube_z", "max_cube_z"),
    "wall_s": ("eval/wall_s",),  # the run's training wall time when it evaluated
}
# Overrides that never define a group: what varies between the repeats of one setting.
NOT_A_SETTING = ("seed", "resume")
# What makes two runs the same task: a group mixing these would average different problems.
TASK_KEYS = ("env.name", "curriculum_stage", "task", "env.episode_length")


class CompareError(ValueError):
    """Bad input to the comparison: the message names the input and what is wrong."""


@dataclass
class Run:
    """One training run: where it is, its settings and its evaluation curve (sorted by frames)."""

    path: Path
    config: dict[str, Any]
    overrides: dict[str, str]
    curve: dict[str, list[float]] = field(default_factory=dict)  # column -> values, aligned with "frames"
    resumed_from: Path | None = None

    @property
    def seed(self) -> Any:
        return self.config.get("seed", self.overrides.get("seed"))

    @property
    def frames(self) -> list[float]:
        return self.curve.get("frames", [])


def select(config: dict[str, Any], key: str) -> Any:
    """config['a']['b'] for 'a.b'; KeyError when absent."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _is_run_dir(d: Path) -> bool:
    return (d / "eval.csv").is_file() or (d / ".hydra" / "overrides.yaml").is_file() \
        or (d / "config_resolved.yaml").is_file()


def find_run_dirs(patterns: list[str]) -> list[Path]:
    """Every run directory at or under each pattern (globs allowed). A pattern that names no
    run directory is an error: a typo would otherwise drop a whole group silently."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser()), recursive=True))
        dirs = [m for m in matches if m.is_dir()]
        runs = [d for m in dirs for d in [m, *sorted(m.rglob("*"))]
                if d.is_dir() and not d.is_symlink() and _is_run_dir(d)]
        if not runs:
            what = "matches nothing" if not matches else "holds no run directory (eval.csv or .hydra/)"
            raise CompareError(f"runs: {pattern!r} {what}")
        found.extend(r.resolve() for r in runs)
    return list(dict.fromkeys(found))


def _parse_overrides(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    items = yaml.safe_load(path.read_text()) or []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if not key.startswith("hydra"):
            out[key] = value
    return out


def read_curve(path: Path) -> dict[str, list[float]]:
    """eval.csv -> {'frames': [...], 'success': [...], 'return': [...], ...}, sorted by frames. Of rows
    with the same frames (a stretch logged again after a crash and resume) the last is kept.

    Raises CompareError naming the file and line for anything that is not a clean table.
    """
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CompareError(f"{path}: unreadable ({e})") from None
    if not rows:
        return {}
    header = rows[0]
    cols = {name: next((header.index(a) for a in aliases if a in header), None) for name, aliases in COLUMNS.items()}
    for need in ("frames", "success"):
        if cols[need] is None:
            raise CompareError(f"{path}: corrupt eval.csv, no {need} column (one of {', '.join(COLUMNS[need])}); "
                               f"header is {header}")
    curve: dict[str, list[float]] = {name: [] for name, i in cols.items() if i is not None}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise CompareError(f"{path}: corrupt eval.csv, line {line} has {len(row)} fields, the header {len(header)}")
        for name, i in cols.items():
            if i is None:
                continue
            try:
                value = float(row[i]) if row[i] != "" else math.nan
            except ValueError:
                raise CompareError(f"{path}: corrupt eval.csv, line {line}: {header[i]}={row[i]!r} "
                                   "is not a number") from None
            curve[name].append(value)
    last = {f: i for i, f in enumerate(curve["frames"])}  # one row per frames value: the last written
    order = sorted(last.values(), key=curve["frames"].__getitem__)
    return {name: [values[i] for i in order] for name, values in curve.items()}


def load_run(d: Path) -> Run:
    cfg_file = d / "config_resolved.yaml"
    if not cfg_file.is_file():
        cfg_file = d / ".hydra" / "config.yaml"
    config = (yaml.safe_load(cfg_file.read_text()) or {}) if cfg_file.is_file() else {}
    link = d / "resumed_from"
    resumed_from = link.resolve() if link.exists() else None
    curve = read_curve(d / "eval.csv") if (d / "eval.csv").is_file() else {}
    return Run(d, config, _parse_overrides(d / ".hydra" / "overrides.yaml"), curve, resumed_from)


def _stitch(run: Run, by_path: dict[Path, Run], seen: frozenset[Path] = frozenset()) -> None:
    """Prepend the rows of the run(s) it was resumed from; inherit their overrides. A resume
    in place (the link names the run itself) or a loop of links adds nothing."""
    seen = seen | {run.path}
    if run.resumed_from is None or run.resumed_from in seen or not run.resumed_from.is_dir():
        return
    origin = by_path.get(run.resumed_from) or by_path.setdefault(run.resumed_from, load_run(run.resumed_from))
    _stitch(origin, by_path, seen)
    first = run.frames[0] if run.frames else math.inf
    keep = [i for i, f in enumerate(origin.frames) if f < first]
    run.curve = {k: [origin.curve[k][i] for i in keep] + run.curve.get(k, []) for k in origin.curve} or run.curve
    run.overrides = {**origin.overrides, **{k: v for k, v in run.overrides.items() if k != "resume"}}


def load_runs(patterns: list[str], max_frames: float | None = None) -> tuple[list[Run], list[tuple[Path, str]]]:
    """(runs with at least one eval row, [(skipped path, why)]); rows after `max_frames` are dropped."""
    runs = [load_run(d) for d in find_run_dirs(patterns)]
    by_path = {r.path: r for r in runs}
    for r in runs:
        _stitch(r, by_path)
        if max_frames is not None:
            keep = [i for i, f in enumerate(r.frames) if f <= max_frames]
            r.curve = {k: [v[i] for i in keep] for k, v in r.curve.items()}
    continued = {r.resumed_from: r.path for r in runs if r.resumed_from not in (None, r.path)}
    kept, skipped = [], []
    for r in runs:
        if r.path in continued:
            skipped.append((r.path, f"continued by the resumed run {continued[r.path]}"))
        elif not r.frames:
            why = f"up to max_frames={max_frames:g}" if max_frames is not None else "yet (eval.csv missing or empty)"
            skipped.append((r.path, f"no evaluation rows {why}"))
        else:
            kept.append(r)
    return kept, skipped


def _label_value(value: Any) -> str:
    if isinstance(value, dict):
        if "name" in value:
            return str(value["name"])
        if len(value) == 1:
            return str(next(iter(value.values())))
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return str(value)


def group_runs(runs: list[Run], by: list[str] | None) -> dict[str, list[Run]]:
    """{label: runs}. Without `by`: by every override that differs between runs other than seed."""
    if by:
        for key in by:
            if not any(key in r.overrides or _has(r.config, key) for r in runs):
                seen = sorted({k for r in runs for k in r.overrides})
                raise CompareError(f"by={key!r}: no run has this key (overrides seen: {', '.join(seen) or 'none'})")
        keys = list(by)
    else:
        all_keys = sorted({k for r in runs for k in r.overrides if k not in NOT_A_SETTING})
        keys = [k for k in all_keys if len({r.overrides.get(k) for r in runs}) > 1]
    if not keys:  # one setting: name it by what its runs share
        shared = sorted(set.intersection(*({(k, v) for k, v in r.overrides.items() if k not in NOT_A_SETTING}
                                           for r in runs)))
        label = " ".join(f"{k}={v}" for k, v in shared) or "all runs"
        check_same_task(label, runs)
        return {label: runs}
    groups: dict[str, list[Run]] = {}
    for r in runs:
        label = " ".join(f"{k}={_value(r, k)}" for k in keys)
        groups.setdefault(label, []).append(r)
    for label, members in groups.items():
        check_same_task(label, members)
    return dict(sorted(groups.items()))


def _has(config: dict[str, Any], key: str) -> bool:
    try:
        select(config, key)
        return True
    except KeyError:
        return False


def _value(run: Run, key: str) -> str:
    if key in run.overrides:
        return run.overrides[key]
    try:
        return _label_value(select(run.config, key))
    except KeyError:
        return "<unset>"


def _plain(value: Any) -> Any:
    """Tuples as the lists a resolved config holds, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def _with_defaults(value: Any, defaults: Any) -> Any:
    """`value` with the keys it lacks taken from `defaults` (recursively): a run written before a
    task option existed ran that option's default."""
    if not isinstance(value, dict) or not isinstance(defaults, dict):
        return value
    return {**defaults, **{k: _with_defaults(v, defaults.get(k)) for k, v in value.items()}}


def _flat(value: Any, prefix: str) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: v for sub, x in value.items() for k, v in _flat(x, f"{prefix}.{sub}").items()}
    return {prefix: _label_value(value)}


def check_same_task(label: str, runs: list[Run]) -> None:
    """CompareError when `label`'s runs differ in a TASK_KEYS option, naming the option, its values
    and the runs that hold each."""
    task_defaults = _plain(asdict(TaskConfig()))
    for key in TASK_KEYS:
        values: dict[str, dict[str, str]] = {}   # run -> {option: value}
        for r in runs:
            try:
                v = select(r.config, key)
            except KeyError:
                continue
            values[str(r.path)] = _flat(_with_defaults(v, task_defaults), key) if key == "task" \
                else {key: _label_value(v)}
        options = sorted({o for flat in values.values() for o in flat})
        for option in options:
            held: dict[str, list[str]] = {}
            for path, flat in values.items():
                held.setdefault(flat.get(option, "<unset>"), []).append(path)
            if len(held) > 1:
                detail = "; ".join(f"{option}={v}: {', '.join(paths)}" for v, paths in held.items())
                raise CompareError(f"group {label!r} mixes different tasks ({detail}); group by it too, "
                                   f"e.g. by=[...,{option}]")
