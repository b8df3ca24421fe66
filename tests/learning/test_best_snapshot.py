"""num_val_episodes: validation episodes at each evaluation, logged beside the eval episodes, and
snapshots/best_snapshot.pt, the policy that did best on them (kept across a resume)."""
from __future__ import annotations

import csv
from pathlib import Path

from tests.fakes import FakeFactory, tiny_cfg

from learning.snapshot import read_snapshot
from learning.trainer import NativeTrainer

STATE = {"agent.name": "sac", "pixels": False, "eval_every_steps": 40, "num_eval_episodes": 3}


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "eval.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _score(row: dict[str, str]) -> tuple[float, float]:
    return float(row["val/success_rate"]), float(row["val/episode_reward"])


def _best(run: Path) -> dict:
    return read_snapshot(run / "snapshots" / "best_snapshot.pt")[1]


def test_validation_is_logged_and_the_best_snapshot_kept(tmp_path: Path) -> None:
    run = tmp_path / "run"
    NativeTrainer(tiny_cfg(**STATE, seed=7, num_train_frames=240, num_val_episodes=3), FakeFactory(), run).train()
    rows = _rows(run)
    assert [int(r["frames"]) for r in rows] == [40, 80, 120, 160, 200, 240]
    # other episodes than the eval's: the same policy scores differently on them at some evaluation
    assert any(r["val/episode_reward"] != r["eval/episode_reward"] for r in rows)
    top = max(_score(r) for r in rows)
    first_top = next(r for r in rows if _score(r) == top)   # ties keep the earlier snapshot
    assert first_top is not rows[0]   # this seed's policy improves on the validation episodes: a later best won
    best = _best(run)
    assert best["counters"]["frames"] == int(first_top["frames"])
    assert best["counters"]["best_val"] == [float(first_top["val/success_rate"]),
                                            float(first_top["val/episode_reward"])]
    assert best["agent_name"] == "sac" and best["replay"] is None   # agent only


def test_a_resume_into_another_directory_keeps_the_best_so_far(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    NativeTrainer(tiny_cfg(**STATE, num_train_frames=120, num_val_episodes=3), FakeFactory(), a).train()
    before = _best(a)
    more = tiny_cfg(**STATE, num_train_frames=240, num_val_episodes=3, resume=str(a))
    NativeTrainer(more, FakeFactory(), b).train()
    after = _best(b)
    later = [_score(r) for r in _rows(b) if int(r["frames"]) > 120]
    assert tuple(after["counters"]["best_val"]) == max([tuple(before["counters"]["best_val"]), *later])
    if after["counters"]["frames"] <= 120:   # nothing later beat it: the same file, carried over
        carried = (b / "snapshots" / "best_snapshot.pt").read_bytes()
        assert carried == (a / "snapshots" / "best_snapshot.pt").read_bytes()


def test_without_validation_there_is_no_best_snapshot(tmp_path: Path) -> None:
    NativeTrainer(tiny_cfg(**STATE, num_train_frames=80), FakeFactory(), tmp_path).train()
    assert not any(k.startswith("val/") for k in _rows(tmp_path)[0])
    assert not (tmp_path / "snapshots" / "best_snapshot.pt").exists()
