"""scripts/eval.py and scripts/record_expert.py as a user meets them: bad input refused in one line
with no directory left behind, and the closing lines naming what was written."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests._cli import HANG_S, ROOT, child_env, finished_run, no_traceback


def script(name: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"scripts/{name}.py", *args, f"hydra.run.dir={out}"], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=HANG_S)


@pytest.mark.parametrize("name,args,expected", [
    ("eval", ["checkpoint=/nonexistent/run"], "no such file or directory"),
    ("eval", ["checkpoint=."], "without snapshots/latest_snapshot.pt"),
    ("record_expert", ["episodes=0"], "episodes=0 is invalid: allowed an integer >= 1"),
    ("record_expert", ["episodes=abc"], "episodes='abc' is invalid"),
    ("record_expert", ["+foo=1"], "foo=1 is invalid: unknown key"),
], ids=["eval-missing", "eval-no-snapshot", "expert-zero", "expert-text", "expert-unknown"])
def test_bad_input_is_one_line_and_leaves_no_directory(tmp_path: Path, name, args, expected) -> None:
    r = script(name, tmp_path / "out", *args)
    assert r.returncode == 2 and expected in r.stderr, r.stderr[-2000:]
    assert no_traceback(r.stdout + r.stderr)
    assert not (tmp_path / "out").exists()


def test_eval_refuses_an_unknown_key_and_records_the_stage_and_video(tmp_path_factory, tmp_path: Path) -> None:
    run = finished_run(tmp_path_factory)
    r = script("eval", tmp_path / "bad", f"checkpoint={run}", "+foo=1")
    assert r.returncode == 2 and "foo=1 is invalid: unknown key" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "bad").exists()
    r = script("eval", tmp_path / "ok", f"checkpoint={run}", "episodes=2", "video_episodes=1", "curriculum_stage=1")
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads((tmp_path / "ok" / "eval.json").read_text())
    assert stats["curriculum_stage"] == 1 and stats["episodes"] == 2
    assert stats["videos"] == [str(tmp_path / "ok" / "episode_000.mp4")]
    assert f"video: {stats['videos'][0]}" in r.stdout and Path(stats["videos"][0]).stat().st_size > 0
    assert "OpenGL" not in r.stdout + r.stderr


def test_record_expert_names_no_video_when_it_writes_none(tmp_path: Path) -> None:
    r = script("record_expert", tmp_path / "out", "episodes=1", "video_episodes=0")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "video:" not in r.stdout and not list((tmp_path / "out").glob("*.mp4"))
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["videos"] == []
