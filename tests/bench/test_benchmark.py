"""scripts/benchmark.py end to end at a tiny size: it measures in subprocesses and rewrites
only its own sections of the docs file. (Figures are not asserted: they are machine-bound.)"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._cli import HANG_S

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def bench(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/benchmark.py", *overrides, f"hydra.run.dir={tmp_path / 'run'}",
                           f"docs_path={tmp_path / 'bench.md'}", f"plot_path={tmp_path / 'bench.png'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)


def test_benchmark_rewrites_its_sections_with_measured_rows(tmp_path: Path):
    doc = tmp_path / "bench.md"
    doc.write_text("# Notes kept\n\n<!-- genesis-env -->\nold table\n<!-- /genesis-env -->\n\nTail kept.\n")
    p = bench(tmp_path, "sections=[mujoco,genesis]", "mujoco_steps=20", "genesis_ns=[2]", "genesis_camera_ns=[2]",
              "genesis_steps=3", "genesis_camera_steps=2")
    assert p.returncode == 0, p.stderr[-3000:]
    text = doc.read_text()
    assert text.startswith("# Notes kept") and "Tail kept." in text and "old table" not in text
    assert "<!-- mujoco-env -->" in text and "cores" in text  # the machine is named
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| 2 \| (none|84x84) \|.*$", text, re.M)}
    assert set(rows) == {"none", "84x84"}, text
    for cam, row in rows.items():
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[2]) > 0 and float(cells[4]) > 0, row  # wrapped and bare loop env-steps/s
        # The renderer-alone ratio exists only with a camera (it replays the wrapped run's frames).
        assert cells[-1].endswith("%") if cam == "84x84" else cells[-1] == "—", row
    assert (tmp_path / "bench.png").stat().st_size > 0
    raw = json.loads((tmp_path / "run" / "results.json").read_text())  # the figures behind the tables
    assert sorted((r["n"], r["pixels"]) for r in raw["genesis"]) == [(2, False), (2, True)]
    assert len(raw["mujoco"]) == 2 and raw["train"] == []


def test_update_section_times_default_serial_fp32_and_reference(tmp_path: Path):
    doc = tmp_path / "bench.md"
    doc.write_text("# Notes kept\n")
    p = bench(tmp_path, "sections=[update]", "update_batches=[8]", "update_rounds=1")
    assert p.returncode == 0, p.stderr[-3000:]
    text = doc.read_text()
    assert text.startswith("# Notes kept") and "<!-- update -->" in text and "cores" in text
    row = next(line for line in text.splitlines() if line.startswith("| 8 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert all(float(c) > 0 for c in cells[1:5]) and cells[5].endswith("x") and cells[6].endswith("x"), row
    raw = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(raw["update"]["batches"]["8"]["ms"]) == {"default", "serial", "fp32", "reference"}


def test_unknown_section_is_named_before_measuring(tmp_path: Path):
    p = bench(tmp_path, "sections=[gpu]")
    assert p.returncode != 0
    assert "sections=['gpu'] is invalid" in p.stderr + p.stdout and "mujoco" in p.stderr + p.stdout
    assert not (tmp_path / "bench.md").exists()


def test_vision_reuse_keeps_the_dated_baselines_and_reads_the_preset_runs_again(tmp_path: Path):
    """sections=[vision] vision_reuse=true: the baselines of the raw file, with the line saying when
    and where they were measured, and the preset's final evaluation per seed from its runs now;
    undated or missing baselines are refused before anything is written."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_compare import make_run

    baseline = {"success": 0.1, "max_cube_z": 0.02, "train_s": 1.0, "eval_s": 1.0}
    seed = {"seed": 1, "demos_kept": 10, "demos_tried": 10, "transitions": 450,
            **{k: baseline for k in ("open_loop", "lowdim_bc", "image_bc")}}
    vision = {"episodes": 50, "bc_steps": 2000, "batch": 128, "seeds": [seed]}
    runs = make_run(tmp_path / "runs" / "seed1", 1, [0.5, 0.94], frames=[10000, 16000])
    args = ("sections=[vision]", "vision_reuse=true", "vision_seeds=[1]", f"vision_runs=[{runs.parent}]")
    (tmp_path / "bench.json").write_text(json.dumps({"vision": vision}))
    p = bench(tmp_path, *args)
    assert p.returncode != 0 and "no dated vision baselines" in p.stderr + p.stdout
    assert not (tmp_path / "bench.md").exists()
    (tmp_path / "bench.json").write_text(json.dumps({"vision": {**vision, "measured": "Measured 1999-01-01 on: X."}}))
    p = bench(tmp_path, *args)
    assert p.returncode == 0, p.stderr[-3000:]
    text = (tmp_path / "bench.md").read_text()
    assert "Measured 1999-01-01 on: X." in text and text.count("Measured") == 1
    assert re.search(r"^\| 1 \| 10/10 \(450\) \| 10 % \| 10 % \| 10 % \| 94 % \(16k frames\) \|$", text, re.M), text


def test_eval_section_times_the_old_and_the_batched_loop(tmp_path: Path):
    """sections=[eval] at two episodes: a row per preset with the three timings, the speed-ups and
    whether the batched loop gave the old loop's episodes (it does: the agent acts per env)."""
    doc = tmp_path / "bench.md"
    doc.write_text("# Notes kept\n")
    p = bench(tmp_path, "sections=[eval]", "eval_episodes=2", "eval_rounds=1")
    assert p.returncode == 0, p.stderr[-3000:]
    text = doc.read_text()
    assert text.startswith("# Notes kept") and "<!-- eval -->" in text and "cores" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == ["pixels_cpu", "sac_stage2"], text
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "2" and all(float(c) > 0 for c in (cells[2], cells[3], cells[5])), row
        assert cells[4].endswith("x") and cells[8].startswith("yes /"), row
    raw = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["preset"] for r in raw["eval"]["presets"]] == ["pixels_cpu", "sac_stage2"]
