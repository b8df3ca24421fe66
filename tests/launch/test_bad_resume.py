"""Bad `resume=` input through scripts/train.py: one clear `error:` line, exit 2, no traceback,
and the run directory it points at is left byte-for-byte untouched."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch

from tests._cli import finished_run, latest, load, no_traceback, run_train, tree_digest


def _damage(run: Path, how: str) -> None:
    snap = latest(run)
    data = snap.read_bytes()
    if how == "truncated":
        snap.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        snap.write_bytes(random.Random(0).randbytes(len(data)))
    elif how == "not_ours":
        torch.save({"weights": torch.zeros(3)}, snap)
    elif how == "obs_shape":
        p = load(snap)
        p["obs_spec"] = {"low_dim_state": ((3, 30), "torch.float32")}
        torch.save(p, snap)


CASES = [
    ("missing", [], "no such file or directory"),
    ("truncated", [], "truncated or corrupt"),
    ("garbage", [], "truncated or corrupt"),
    ("not_ours", [], "not a native-engine snapshot"),
    ("obs_shape", [], "observations"),
    ("agent", ["agent=drqv2"], "agent.name"),
    ("action_mode", ["task.action_mode=joint_pos"], "action"),
]


@pytest.mark.slow
@pytest.mark.parametrize("in_place", [False, True], ids=["new_dir", "in_place"])
@pytest.mark.parametrize("how,extra,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_resume_is_refused_and_writes_nothing(tmp_path_factory, tmp_path: Path, how, extra, expected, in_place):
    """Refused before anything is written: the run it points at stays byte for byte as it was (no
    resumes.yaml entry, no rewritten config_resolved.yaml), and a new run directory is not made."""
    run = tmp_path / "orig"
    shutil.copytree(finished_run(tmp_path_factory), run, symlinks=True)
    _damage(run, how)
    target = tmp_path / "nope" if how == "missing" else run
    before = tree_digest(run)
    out_dir = run if in_place else tmp_path / "resumed"
    # more frames than the run has: a finished run would otherwise have nothing to do
    r = run_train(out_dir, f"resume={target}", "num_train_frames=400", *extra)
    assert r.returncode == 2, r.stdout[-1500:] + r.stderr[-3000:]
    assert "error:" in r.stderr and expected in r.stderr and "resume" in r.stderr, r.stderr[-3000:]
    assert no_traceback(r.stderr + r.stdout), r.stderr[-3000:]
    assert tree_digest(run) == before
    assert in_place or not (tmp_path / "resumed").exists()


def test_a_shape_key_typed_on_resume_is_kept_from_the_snapshot_and_recorded_so(tmp_path_factory,
                                                                                 tmp_path: Path) -> None:
    """frame_stack defines tensor shapes: a resume keeps the snapshot's value, says so, and the
    config the run records is the one it trains with."""
    run = tmp_path / "orig"
    shutil.copytree(finished_run(tmp_path_factory), run, symlinks=True)
    r = run_train(tmp_path / "resumed", f"resume={run}", "num_train_frames=400", "frame_stack=5")
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-3000:]
    assert "keeping frame_stack=3" in r.stdout + r.stderr
    resolved = (tmp_path / "resumed" / "config_resolved.yaml").read_text()
    assert "\nframe_stack: 3\n" in "\n" + resolved and "frame_stack: 5" not in resolved
    assert "frame stack 3" in r.stdout
