"""A joblib sweep stops as a whole on SIGTERM to its parent (a scheduler) or SIGINT to its process
group (Ctrl-C in a terminal): every running job writes a snapshot, no queued job starts, no process of the sweep is left behind, the parent names the
command that resumes the sweep, and that command continues every job."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests._cli import (
    BASE,
    HANG_S,
    ROOT,
    TRAIN,
    child_env,
    counters,
    latest,
    no_traceback,
)

LONG = "num_train_frames=1000000"


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_until_both_jobs_train(proc: subprocess.Popen, sweep: Path, log: Path) -> None:
    t0 = time.monotonic()
    while not all((sweep / j / "train.csv").is_file() for j in ("0", "1")):
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended (rc={proc.returncode}) before its jobs trained:\n"
                                 + log.read_text()[-3000:])
        if time.monotonic() - t0 > HANG_S:
            proc.kill()
            raise AssertionError("the jobs never logged a row")
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("sig,group", [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM_to_the_parent", "SIGINT_to_the_group_as_ctrl_c"])
def test_signal_to_a_joblib_sweep_snapshots_every_job_and_leaves_no_process(tmp_path: Path, sig, group) -> None:
    sweep = tmp_path / "sweep"
    argv = ["-m", *BASE, "seed=1,2,3", LONG, "snapshot_every_n=1000000", "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"]
    log = tmp_path / "sweep.out"  # a file, not a pipe: workers left behind would hold a pipe open
    with log.open("w") as sink:  # its own session: a scheduler signals the parent alone, a terminal the group
        proc = subprocess.Popen([sys.executable, TRAIN, *argv], cwd=ROOT, env=child_env(), stdout=sink,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    children: list[psutil.Process] = []
    try:
        _wait_until_both_jobs_train(proc, sweep, log)
        children = psutil.Process(proc.pid).children(recursive=True)  # the workers and resource trackers
        assert len(children) >= 2, children
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        proc.wait(HANG_S)
        t0 = time.monotonic()
        while _alive(children) and time.monotonic() - t0 < 60:  # trackers leave once their pipe closes
            time.sleep(0.1)
        out = log.read_text()
        assert not _alive(children), [(p.pid, p.cmdline()) for p in _alive(children)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in _alive(children):
            p.kill()
        proc.wait()
    assert proc.returncode == 128 + sig, out[-3000:]
    assert no_traceback(out), out[-3000:]
    name = signal.Signals(sig).name
    assert f"[sweep] {name} received" in out, out[-3000:]
    frames = {}
    for job in ("0", "1"):  # every job that had started wrote its snapshot
        assert latest(sweep / job).is_file(), sorted(str(p) for p in sweep.rglob("*"))
        frames[job] = counters(latest(sweep / job))["frames"]
        assert frames[job] > 0
    assert not (sweep / "2").exists()  # the queued job did not start after the signal
    assert f"[job 3/3 seed=3] [sweep] this job was not started: the sweep was stopped by {name}" in out, out[-3000:]
    advice = re.search(r"Resume the sweep with: (.+)$", out, re.MULTILINE)
    assert advice, out[-3000:]
    command = shlex.split(advice.group(1))
    assert command[:3] == ["python", "scripts/train.py", "-m"], command
    assert f"hydra.sweep.dir={sweep}" in command and f"resume={sweep}" in command, command
    if sig != signal.SIGTERM:
        return
    # the advised command resumes the sweep: jobs 0 and 1 continue, job 2 starts
    target = max(frames.values()) + 100
    command = [sys.executable, TRAIN] + [f"num_train_frames={target}" if a == LONG else a for a in command[2:]]
    r = subprocess.run(command, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=HANG_S,
                       check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.stdout.count("this job continues its run in") == 2, r.stdout[-3000:]
    for job in ("0", "1", "2"):
        assert counters(latest(sweep / job))["frames"] == target
        assert (sweep / job / "snapshots" / f"{frames.get(job, target)}_snapshot.pt").is_file()


@pytest.mark.slow
def test_sweep_resume_refuses_a_job_directory_started_with_other_overrides(tmp_path: Path) -> None:
    """resume=<sweep dir> maps job N to <sweep dir>/N: a directory another sweep's job N left there
    (here seed=9) is refused, naming both, before anything runs."""
    sweep = tmp_path / "sweep"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text("- experiment=smoke\n- seed=9\n")
    (sweep / "0" / "snapshots").mkdir()
    (sweep / "0" / "snapshots" / "latest_snapshot.pt").write_bytes(b"")
    r = subprocess.run([sys.executable, TRAIN, "-m", "experiment=smoke", "seed=1", f"hydra.sweep.dir={sweep}",
                        f"resume={sweep}"], cwd=ROOT, env=child_env(), capture_output=True, text=True,
                       timeout=HANG_S, check=False)
    assert r.returncode != 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"resume={sweep}: {sweep / '0'} holds a run started with ['experiment=smoke', 'seed=9']" in r.stderr, \
        r.stderr[-3000:]
    assert "not this job's ['experiment=smoke', 'seed=1']" in r.stderr and no_traceback(r.stderr), r.stderr[-3000:]
