"""`scripts/compare.py results=<page>`: the results page's opening table, built from run directories.

On synthetic runs whose figures are known by construction; on a real (tiny) training run, whose
machine.yaml names the machine; and on the committed runs, whose table must be the one
docs/results.md holds (so the page cannot drift from its runs).
"""
from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from launch.rundir import cpu_model
from tests._cli import HANG_S, run_train

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
PAGE = f"# Results\n\nProse above.\n\n{BEGIN}\nold table\n{END}\n\n## A preset\n\nProse below, kept as it is.\n"


def make_run(d: Path, seed: int, success: list[float], wall: list[float], machine: dict | None = None) -> Path:
    """A run directory as train.py writes it: resolved config, eval.csv and perhaps machine.yaml."""
    d.mkdir(parents=True)
    (d / "config_resolved.yaml").write_text(yaml.safe_dump({"seed": seed, "env": {"name": "mujoco_lift"}}))
    rows = ["frames,eval/success_rate,eval/episode_reward,eval/wall_s"]
    rows += [f"{5000 * (i + 1)},{s},{100 * s},{w}" for i, (s, w) in enumerate(zip(success, wall))]
    (d / "eval.csv").write_text("\n".join(rows) + "\n")
    if machine is not None:
        (d / "machine.yaml").write_text(yaml.safe_dump([machine]))
    return d


def compare(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "scripts/compare.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_S, env=env, check=False)


def table_rows(page: Path) -> list[list[str]]:
    text = page.read_text()
    block = text[text.index(BEGIN):text.index(END)]
    rows = [line for line in block.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows[1:]]  # without the header


def test_table_from_run_directories_with_known_figures(tmp_path: Path) -> None:
    box = {"started": "2026-12-05 10:00:00 UTC", "cpu": "Test CPU 9000", "cores": 2, "gpu": None}
    make_run(tmp_path / "runs" / "a" / "seed1", 1, [0.0, 1.0, 1.0], [20, 40, 60], machine=box)
    make_run(tmp_path / "runs" / "a" / "seed2", 2, [1.0, 0.8, 1.0], [40, 80, 125])
    make_run(tmp_path / "runs" / "a" / "seed3", 3, [0.0, 0.5, 0.5], [1200, 2400, 3600])
    make_run(tmp_path / "runs" / "b" / "seed7", 7, [0.4, 0.96], [30, 61])
    manifest = tmp_path / "results.yaml"
    manifest.write_text(yaml.safe_dump({"rows": [
        {"preset": "`a`", "runs": ["runs/a"], "machine": "manifest box", "date": "2026-12-01"},
        {"preset": "`b`, one seed", "runs": ["runs/b"], "machine": "other box", "date": "2026-12-02"}]}))
    page = tmp_path / "results.md"
    page.write_text(PAGE)

    r = compare("results=" + str(page), f"manifest={manifest}", "reps=300")
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"written: {page}" in r.stdout
    a, b = table_rows(page)
    assert a[:2] == ["`a`", "1-3"]
    mean, ci = a[2].split(" [")
    low, high = (float(x.strip(" %]")) for x in ci.split(","))
    assert mean == "83 %" and low <= 83.4 <= high and low < high          # (1 + 1 + 0.5) / 3
    assert a[4] == "80 % (seed 2, at 10k frames)"                         # seed 2 dips after 90 %; seed 3 never got there
    assert a[5] == "1 min 00 s - 60 min 00 s"                             # the last evaluation's wall time
    assert a[6] == "2-core Test CPU 9000, manifest box, 2026-12-01, 2026-12-05"
    assert b[1:6] == ["7", "96 % (one seed: no CI)", "96 % (one seed: no CI)", "96 % (seed 7, at 10k frames)",
                      "1 min 01 s"]
    assert b[6] == "other box, 2026-12-02"
    text = page.read_text()
    assert text.startswith("# Results\n\nProse above.\n\n" + BEGIN) and text.endswith(
        END + "\n\n## A preset\n\nProse below, kept as it is.\n")
    assert "old table" not in text

    again = compare("results=" + str(page), f"manifest={manifest}", "reps=300")
    assert again.returncode == 0 and f"unchanged: {page}" in again.stdout and page.read_text() == text


def test_bad_manifest_or_page_is_refused_and_the_page_left_as_it_was(tmp_path: Path) -> None:
    make_run(tmp_path / "runs" / "a" / "seed1", 1, [1.0], [10])
    manifest = tmp_path / "results.yaml"
    page = tmp_path / "results.md"
    page.write_text(PAGE)
    manifest.write_text(yaml.safe_dump({"rows": [{"preset": "`a`", "runs": ["runs/a"]}]}))
    r = compare("results=" + str(page), f"manifest={manifest}", "reps=300")
    assert r.returncode == 2 and "recorded no machine.yaml" in r.stderr and "machine:" in r.stderr, r.stderr
    manifest.write_text(yaml.safe_dump({"rows": [{"preset": "`a`", "runs": ["runs/nope"], "machine": "m",
                                                  "date": "d"}]}))
    r = compare("results=" + str(page), f"manifest={manifest}", "reps=300")
    assert r.returncode == 2 and "runs/nope" in r.stderr, r.stderr
    assert page.read_text() == PAGE
    manifest.write_text(yaml.safe_dump({"rows": [{"preset": "`a`", "runs": ["runs/a"], "machine": "m", "date": "d"}]}))
    no_markers = tmp_path / "plain.md"
    no_markers.write_text("# Results\n")
    r = compare("results=" + str(no_markers), f"manifest={manifest}", "reps=300")
    assert r.returncode == 2 and BEGIN in r.stderr, r.stderr
    assert no_markers.read_text() == "# Results\n"


def test_a_training_run_records_its_machine_and_the_table_names_it(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "smoke" / "seed1"
    r = run_train(run, "num_train_frames=100", "eval_every_steps=100")
    assert r.returncode == 0, r.stderr[-3000:]
    (entry,) = yaml.safe_load((run / "machine.yaml").read_text())
    assert entry["cpu"] == cpu_model() and entry["cores"] == os.cpu_count() and entry["device"] == "cpu"
    manifest = tmp_path / "results.yaml"
    manifest.write_text(yaml.safe_dump({"rows": [{"preset": "`smoke`", "runs": ["runs/smoke"]}]}))
    page = tmp_path / "results.md"
    page.write_text(PAGE)
    r = compare("results=" + str(page), f"manifest={manifest}", "reps=300")
    assert r.returncode == 0, r.stderr[-2000:]
    (row,) = table_rows(page)
    started = datetime.datetime.strptime(entry["started"], "%Y-%m-%d %H:%M:%S UTC")
    assert abs(datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - started) < datetime.timedelta(seconds=HANG_S)
    assert row[6] == f"{os.cpu_count()}-core {cpu_model()}, {started.date().isoformat()}"


def test_committed_results_page_is_what_its_runs_give(tmp_path: Path) -> None:
    """docs/results.md's table is rebuilt from the committed runs that docs/learning/results.yaml
    lists, with the default bootstrap: the page must not change."""
    page = tmp_path / "results.md"
    shutil.copy(ROOT / "docs" / "results.md", page)
    r = compare("results=" + str(page), "manifest=docs/learning/results.yaml")
    assert r.returncode == 0, r.stderr[-2000:]
    assert page.read_text() == (ROOT / "docs" / "results.md").read_text(), (
        "docs/results.md is out of date with its runs: run python scripts/compare.py results=docs/results.md")
