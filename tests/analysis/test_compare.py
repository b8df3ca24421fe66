"""scripts/compare.py on synthetic run directories whose answers are known by construction."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests._cli import HANG_S

ROOT = Path(__file__).resolve().parents[2]
TASK = {"lift_height": 0.08, "hold_steps": 10}


def make_run(d: Path, seed: int, success: list[float], frames: list[int] | None = None, stage: int = 2,
             task: dict | None = None, **overrides: str) -> Path:
    """A run directory as train.py writes it: overrides, resolved config and eval.csv."""
    (d / ".hydra").mkdir(parents=True)
    ov = [f"{k}={v}" for k, v in overrides.items()] + [f"seed={seed}"]
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(ov))
    cfg = {"seed": seed, "env": {"name": "mujoco_lift", "episode_length": 200}, "task": task or TASK,
           "curriculum_stage": {"stage": stage}, "reward_version": {"name": overrides.get("reward_version", "v19")}}
    (d / "config_resolved.yaml").write_text(yaml.safe_dump(cfg))
    frames = frames or [5000 * (i + 1) for i in range(len(success))]
    rows = ["frames,eval/success_rate,eval/episode_reward,eval/episode_length"]
    rows += [f"{f},{s},{100 * s},200" for f, s in zip(frames, success)]
    (d / "eval.csv").write_text("\n".join(rows) + "\n")
    return d


def compare(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "scripts/compare.py", "reps=300", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=HANG_S, env=env)


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_groups_by_the_named_key_with_known_answers(tmp_path: Path):
    for seed in (1, 2, 3):  # v20: every seed at 1.0 from the second evaluation on
        make_run(tmp_path / "sweep" / f"a{seed}", seed, [0.0, 1.0, 1.0], reward_version="v20", batch_size="256")
    make_run(tmp_path / "sweep" / "b1", 1, [0.0, 0.5, 1.0], reward_version="v19", batch_size="256")
    make_run(tmp_path / "sweep" / "b2", 2, [0.0, 1.0, 0.0], reward_version="v19", batch_size="128")
    out = tmp_path / "out"
    p = compare(f"runs=[{tmp_path / 'sweep'}]", "by=reward_version", f"out={out}")
    assert p.returncode == 0, p.stderr
    groups = {g["group"]: g for g in summary(out)["groups"]}
    assert set(groups) == {"reward_version=v19", "reward_version=v20"}
    v20, v19 = groups["reward_version=v20"], groups["reward_version=v19"]
    assert sorted(v20["seeds"]) == [1, 2, 3] and sorted(v19["seeds"]) == [1, 2]
    assert v20["final_success_mean"] == 1.0 and v20["final_success_mean_ci"] == [1.0, 1.0]
    assert v20["final_success_iqm"] == 1.0 and v20["final_success_iqm_ci"] == [1.0, 1.0]
    assert v20["frames_to_50"] == 10000 and v20["frames_to_90"] == 10000
    # v19: mean curve 0, 0.75, 0.5 -> 50 % first at 10k, 90 % never; final 1.0 and 0.0 -> mean 0.5
    assert v19["final_success_mean"] == 0.5 and v19["frames_to_50"] == 10000 and v19["frames_to_90"] is None
    assert v19["final_success_mean_ci"][0] <= 0.5 <= v19["final_success_mean_ci"][1]
    assert v19["curves"]["success"]["mean"] == [0.0, 0.75, 0.5]
    assert all(lo <= m <= hi for lo, m, hi in zip(v19["curves"]["success"]["low"], v19["curves"]["success"]["mean"],
                                                  v19["curves"]["success"]["high"]))
    md = (out / "summary.md").read_text()
    assert "| reward_version=v20 | " in md and "not reached" in md
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # Without by=: every override that differs other than seed (here reward_version and batch_size).
    out2 = tmp_path / "out2"
    assert compare(f"runs=[{tmp_path / 'sweep'}/*]", f"out={out2}").returncode == 0
    labels = sorted(g["group"] for g in summary(out2)["groups"])
    assert labels == ["batch_size=128 reward_version=v19", "batch_size=256 reward_version=v19",
                      "batch_size=256 reward_version=v20"]


def test_dips_after_first_reaching_a_level_are_in_the_summary(tmp_path: Path):
    """Every seed is at 90 % or more at the first evaluation, then dips: the summary names the dip
    (lowest evaluation since 90 % was first reached, and where) and from when 90 % / 50 % held."""
    for seed, success in ((1, [1.0, 0.15, 1.0, 1.0]), (2, [0.9, 0.65, 1.0, 1.0]), (3, [1.0, 1.0, 0.6, 1.0])):
        make_run(tmp_path / "runs" / f"a{seed}", seed, success, reward_version="v20")
    make_run(tmp_path / "runs" / "b1", 1, [0.0, 0.95, 0.4], reward_version="v19")  # ends below 50 %
    out = tmp_path / "out"
    p = compare(f"runs=[{tmp_path / 'runs'}]", "by=reward_version", f"out={out}")
    assert p.returncode == 0, p.stderr
    groups = {g["group"]: g for g in summary(out)["groups"]}
    v20, v19 = groups["reward_version=v20"], groups["reward_version=v19"]
    # v20's mean curve: 0.967, 0.6, 0.867, 1.0 -> first at 90 % at 5k, yet only from 20k on does it stay there
    assert v20["frames_to_90"] == 5000 and v20["frames_to_50"] == 5000
    assert v20["lowest_after_90"]["frames"] == [10000] and v20["lowest_after_90"]["success"] == pytest.approx(0.6)
    assert v20["stays_90_from"] == 20000 and v20["stays_50_from"] == 5000
    assert v20["lowest_after_50"] == v20["lowest_after_90"]
    runs = {r["seed"]: r for r in v20["per_run"]}
    assert [runs[s]["frames_to_90"] for s in (1, 2, 3)] == [5000, 5000, 5000]
    assert [runs[s]["lowest_after_90"] for s in (1, 2, 3)] == [
        {"success": 0.15, "frames": [10000]}, {"success": 0.65, "frames": [10000]}, {"success": 0.6, "frames": [15000]}]
    assert [runs[s]["stays_90_from"] for s in (1, 2, 3)] == [15000, 15000, 20000]
    assert [runs[s]["stays_50_from"] for s in (1, 2, 3)] == [15000, 5000, 5000]
    # v19 reached 90 % at 10k and ended at 40 %: it never stays at either level
    assert v19["frames_to_90"] == 10000 and v19["lowest_after_90"] == {"success": 0.4, "frames": [15000]}
    assert v19["stays_90_from"] is None and v19["stays_50_from"] is None
    assert v19["per_run"][0]["stays_50_from"] is None
    md = (out / "summary.md").read_text()
    assert "| lowest after 90 % | stays >= 90 % from | stays >= 50 % from |" in md
    group_row = next(line for line in md.splitlines() if line.startswith("| reward_version=v20 |"))
    assert group_row.endswith("| 5,000 | 5,000 | 60 % at 10,000 | 20,000 | 5,000 |"), group_row
    assert "| 5,000 | 15 % at 10,000 | 15,000 | 15,000 | `" in md  # seed 1's row
    assert "| 10,000 | 40 % at 15,000 | never | never |" in md  # v19's group row
    # A level never reached: nothing to be lowest after.
    make_run(tmp_path / "low" / "c1", 1, [0.0, 0.5, 0.6])
    p = compare(f"runs=[{tmp_path / 'low'}]", f"out={tmp_path / 'out_low'}")
    assert p.returncode == 0, p.stderr
    (g,) = summary(tmp_path / "out_low")["groups"]
    assert g["frames_to_90"] is None and g["lowest_after_90"] is None and g["stays_90_from"] is None
    assert g["lowest_after_50"] == {"success": 0.5, "frames": [10000]} and g["stays_50_from"] == 10000


def test_partial_runs_count_where_they_reached_and_empty_runs_are_reported(tmp_path: Path):
    make_run(tmp_path / "r1", 1, [0.0, 1.0, 1.0], reward_version="v20")
    make_run(tmp_path / "r2", 2, [0.0], reward_version="v20")  # still in progress: one evaluation so far
    empty = make_run(tmp_path / "r3", 3, [], reward_version="v20")
    out = tmp_path / "out"
    p = compare(f"runs=[{tmp_path}/r*]", f"out={out}")
    assert p.returncode == 0, p.stderr
    s = summary(out)
    assert [sk["path"] for sk in s["skipped"]] == [str(empty.resolve())] and "no evaluation rows" in p.stdout
    (g,) = s["groups"]
    assert g["group"] == "reward_version=v20"  # one setting: named by the overrides its runs share
    assert g["curves"]["success"]["runs"] == [2, 1, 1] and g["final_frames"] == [15000, 5000]
    assert g["frames_to_50"] is None  # only frames that every seed reached count for the group
    # At a common budget: rows after max_frames are left out.
    p = compare(f"runs=[{tmp_path}/r1,{tmp_path}/r2]", "max_frames=10000", f"out={tmp_path / 'cut'}")
    assert p.returncode == 0, p.stderr
    (g,) = summary(tmp_path / "cut")["groups"]
    assert g["final_frames"] == [10000, 5000] and g["per_run"][0]["final_success"] == 1.0


def test_a_resumed_run_continues_its_original_and_is_counted_once(tmp_path: Path):
    first = make_run(tmp_path / "first", 1, [0.0, 0.5])
    second = make_run(tmp_path / "second", 1, [1.0], frames=[15000])
    (second / "resumed_from").symlink_to(first, target_is_directory=True)
    out = tmp_path / "out"
    p = compare(f"runs=[{tmp_path}]", f"out={out}")
    assert p.returncode == 0, p.stderr
    s = summary(out)
    (g,) = s["groups"]
    assert g["runs"] == 1 and g["curves"]["success"]["frames"] == [5000, 10000, 15000]
    assert g["curves"]["success"]["mean"] == [0.0, 0.5, 1.0]
    assert "continued by the resumed run" in s["skipped"][0]["why"]
    # A resume in place links the run to itself (run directories written before that was fixed).
    (first / "resumed_from").symlink_to(first, target_is_directory=True)
    p = compare(f"runs=[{first}]", f"out={tmp_path / 'self'}")
    assert p.returncode == 0, p.stderr
    (g,) = summary(tmp_path / "self")["groups"]
    assert g["runs"] == 1 and g["curves"]["success"]["mean"] == [0.0, 0.5]


def test_a_task_option_a_run_does_not_record_is_its_default(tmp_path: Path):
    """A run written before a task option existed ran its default: it groups with runs that record
    the default, and a run with another value is refused, naming the option and its runs."""
    runs = tmp_path / "runs"
    make_run(runs / "old", 1, [0.5])
    make_run(runs / "new", 2, [1.0], task={**TASK, "blank_images": False})
    p = compare(f"runs=[{runs}]", f"out={tmp_path / 'out'}")
    assert p.returncode == 0, p.stderr
    (g,) = summary(tmp_path / "out")["groups"]
    assert g["runs"] == 2
    blind = make_run(runs / "blind", 3, [0.0], task={**TASK, "blank_images": True})
    p = compare(f"runs=[{runs}]", f"out={tmp_path / 'out2'}")
    assert p.returncode == 2
    assert f"task.blank_images=True: {blind.resolve()}" in p.stderr and "by=[...,task.blank_images]" in p.stderr


@pytest.mark.parametrize("case", ["no_match", "corrupt", "mixed_tasks", "unknown_key", "no_rows"])
def test_bad_input_is_named_and_nothing_is_written(tmp_path: Path, case: str):
    runs = tmp_path / "runs"
    make_run(runs / "a", 1, [0.0, 1.0], reward_version="v19")
    args, expect = [f"runs=[{runs}]"], ""
    if case == "no_match":
        args, expect = [f"runs=[{tmp_path}/nope*]"], f"{tmp_path}/nope*' matches nothing"
    elif case == "corrupt":
        (runs / "a" / "eval.csv").write_text("frames,eval/success_rate\n5000,0.5\n10000,abc\n")
        expect = f"{runs / 'a' / 'eval.csv'}: corrupt eval.csv, line 3"
    elif case == "mixed_tasks":
        make_run(runs / "b", 2, [0.0, 1.0], stage=3, reward_version="v19")
        args.append("by=reward_version")
        expect = "mixes different tasks (curriculum_stage=2"
    elif case == "unknown_key":
        args.append("by=reward_verison")
        expect = "by='reward_verison': no run has this key"
    elif case == "no_rows":
        (runs / "a" / "eval.csv").write_text("")
        expect = "no run has evaluation rows yet"
    out = tmp_path / "out"
    p = compare(*args, f"out={out}")
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.startswith("error: ") and expect in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and not out.exists()
