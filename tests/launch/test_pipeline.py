"""experiment=pixels_full through scripts/train.py: the teacher phase then the student phase in one
command, `teacher=` reuse, `resume=` of the pipeline, and each bad `teacher=` refused before
anything is written, naming both sides. Tiny frame counts: these check the plumbing, not learning."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from launch.rundir import RunLock
from runconfig.compose import compose_train
from tests._cli import (
    HANG_S,
    ROOT,
    child_env,
    counters,
    latest,
    load,
    run_train,
    train_argv,
    wait_for,
)

pytestmark = pytest.mark.slow  # each case starts scripts/train.py (MuJoCo, pixels)

# The student: pixels_full with a budget of frames, not minutes.
STUDENT = ["experiment=pixels_full", "train_minutes=null", "num_train_frames=40", "demos=1",
           "agent.bc_pretrain_steps=2", "replay_size_before_train=20", "eval_every_steps=0", "batch_size=8",
           "replay.size=500", "tb.use=false"]
TEACHER = ("pipeline.teacher_overrides=['num_train_frames=40','demos=1','num_explore_steps=20',"
           "'replay_size_before_train=20','eval_every_steps=20','num_eval_episodes=1','num_val_episodes=1',"
           "'batch_size=8','tb.use=false']")


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline") / "run"
    _ok(run_train(root, *STUDENT, TEACHER, base=False))
    return root


def test_pixels_full_trains_the_teacher_then_the_student(pipeline: Path) -> None:
    teacher, student = pipeline / "teacher", pipeline / "student"
    t, s = load(latest(teacher)), load(latest(student))
    assert t["agent_name"] == "sac" and not t["config"]["pixels"]
    assert s["agent_name"] == "drqv2" and s["config"]["pixels"]
    # the teacher's best snapshot on its validation episodes (pixels_full: pipeline.teacher_snapshot=best)
    assert s["config"]["teacher"] == str(teacher / "snapshots" / "best_snapshot.pt")
    val = [(float(r["val/success_rate"]), float(r["val/episode_reward"]), int(r["frames"]))
           for r in csv.DictReader((teacher / "eval.csv").open())]
    top = max(v[:2] for v in val)
    assert load(teacher / "snapshots" / "best_snapshot.pt")["counters"]["frames"] == next(f for *v, f in val
                                                                                         if tuple(v) == top)
    for key in ("curriculum_stage", "reward_version", "seed"):  # one task, the student's
        assert t["config"][key] == s["config"][key]
    # ... except where training episodes start, which stays the teacher preset's
    preset = compose_train(["experiment=sac_stage0"]).task.stage0_starts
    assert t["config"]["task"]["stage0_starts"] == list(preset) != s["config"]["task"]["stage0_starts"]
    assert {**t["config"]["task"], "stage0_starts": None} == {**s["config"]["task"], "stage0_starts": None}
    assert t["counters"]["frames"] == 40 and s["counters"]["frames"] == 40
    # the student's wall clock starts where the teacher's ended
    assert s["counters"]["wall_s"] > t["counters"]["wall_s"] > 0
    assert json.loads((teacher / "phase_done.json").read_text())["frames"] == 40


def test_teacher_reuse_skips_the_teacher_phase(pipeline: Path, tmp_path: Path) -> None:
    """Reused by the blind baseline's student (task.blank_images=true): what the student observes
    is no task difference."""
    root = tmp_path / "reuse"
    proc = run_train(root, *STUDENT, f"teacher={pipeline / 'teacher'}", "task.blank_images=true", base=False)
    _ok(proc)
    assert not (root / "teacher").exists()
    s = load(latest(root / "student"))
    assert s["config"]["task"]["blank_images"] is True
    assert s["config"]["teacher"] == str(pipeline / "teacher" / "snapshots" / "best_snapshot.pt")
    assert s["counters"]["frames"] == 40
    assert s["counters"]["wall_s"] > counters(latest(pipeline / "teacher"))["wall_s"]


def test_resume_continues_the_student_phase(pipeline: Path, tmp_path: Path) -> None:
    teacher_before = latest(pipeline / "teacher").stat().st_mtime_ns
    proc = run_train(tmp_path / "elsewhere", f"resume={pipeline}", "num_train_frames=60", base=False)
    _ok(proc)
    assert "teacher phase already done" in proc.stdout
    assert counters(latest(pipeline / "student"))["frames"] == 60
    assert latest(pipeline / "teacher").stat().st_mtime_ns == teacher_before   # not trained again


def _changed(key: str, value: object):
    """A copy of the pipeline's teacher snapshot with `key` set to `value` (a teacher of another shape)."""
    def make(pipeline: Path, tmp_path: Path) -> str:
        p = load(latest(pipeline / "teacher"))
        if key == "action_dim":
            p["action_dim"] = value
        else:
            p["obs_spec"] = {**p["obs_spec"], key: value}
        out = tmp_path / "changed_teacher.pt"
        torch.save(p, out)
        return str(out)
    return make


BAD = [  # (teacher, extra overrides, what the error names)
    (lambda root, tmp: str(root / "student"), ["pipeline.teacher_snapshot=final"],
     ["not a state policy", "rgb_wrist"]),
    (lambda root, tmp: str(root / "student"), [],
     ["best_snapshot.pt does not exist", "pipeline.teacher_snapshot=final"]),
    (lambda root, tmp: str(root / "teacher"), ["task.randomization.cube_xy_range_stage0=0.03"],
     ["another task", "teacher 0.05", "student 0.03"]),
    (_changed("privileged_state", ((3, 5), "torch.float32")), [],
     ["privileged_state ((3, 5), 'torch.float32') differs from the student's ((3, 7), 'torch.float32')"]),
    (_changed("low_dim_state", ((3, 24), "torch.float32")), [], ["cannot be built from the student's", "(3, 24)"]),
    (_changed("action_dim", 5), [], ["action size 5", "student's 4"]),
]


@pytest.mark.parametrize("teacher, extra, said", BAD,
                         ids=["pixel_policy", "no_best_snapshot", "task", "privileged_keys", "low_dim", "actions"])
def test_bad_teacher_is_refused_before_anything_is_written(pipeline: Path, tmp_path: Path, teacher, extra,
                                                            said) -> None:
    root = tmp_path / "refused"
    proc = run_train(root, *STUDENT, f"teacher={teacher(pipeline, tmp_path)}", *extra, base=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    err = proc.stderr
    assert "error: teacher=" in err and "Traceback" not in err
    for s in said:
        assert s in err
    assert not root.exists()


def test_teacher_run_in_use_is_refused(pipeline: Path, tmp_path: Path) -> None:
    root = tmp_path / "refused"
    lock = RunLock(pipeline / "teacher").acquire()
    try:
        proc = run_train(root, *STUDENT, f"teacher={pipeline / 'teacher'}", base=False)
    finally:
        lock.release()
    assert proc.returncode == 2
    assert "in use" in proc.stderr and str(pipeline / "teacher") in proc.stderr
    assert not root.exists()


def test_a_stop_in_the_teacher_phase_resumes_there(tmp_path: Path) -> None:
    root = tmp_path / "run"
    longer = TEACHER.replace("'num_train_frames=40'", "'num_train_frames=3000','log_every=100'").replace(
        "'eval_every_steps=20'", "'eval_every_steps=1000'")
    proc = subprocess.Popen(train_argv(root, *STUDENT, longer, base=False), cwd=ROOT, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(root / "teacher" / "train.csv", proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert f"resume={root}" in out and not (root / "student").exists()
    stopped = counters(latest(root / "teacher"))["frames"]
    assert 0 < stopped < 3000

    _ok(run_train(tmp_path / "elsewhere", f"resume={root}", base=False))
    assert counters(latest(root / "teacher"))["frames"] == 3000
    assert (root / "teacher" / ".hydra" / "resumes.yaml").is_file()              # continued, not restarted
    assert (root / "teacher" / "phase_done.json").is_file()
    assert counters(latest(root / "student"))["frames"] == 40


def test_a_sweep_stopped_in_the_teacher_phase_trains_no_student(tmp_path: Path) -> None:
    """Inside a sweep job a stop returns instead of exiting: each pipeline must then end there, its
    teacher snapshotted and not marked done, with no student; a queued job that never started marks
    no teacher done either (a resume would otherwise skip to a student with no teacher)."""
    import sys
    import time

    sweep = tmp_path / "sweep"
    long_teacher = TEACHER.replace("'num_train_frames=40'", "'num_train_frames=1000000'").replace(
        "'eval_every_steps=20'", "'eval_every_steps=100000'")
    argv = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", *STUDENT, long_teacher, "seed=1,2,3",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"]
    log = tmp_path / "sweep.out"
    with log.open("w") as sink:
        proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(), stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        t0 = time.monotonic()
        while not all((sweep / j / "teacher" / "train.csv").is_file() for j in ("0", "1")):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() - t0 < HANG_S, "the teachers never logged a row"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(HANG_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text()
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    for job in ("0", "1"):
        assert latest(sweep / job / "teacher").is_file(), out[-3000:]
        assert not (sweep / job / "teacher" / "phase_done.json").exists()
        assert not (sweep / job / "student").exists(), out[-3000:]
    assert not (sweep / "2" / "teacher" / "phase_done.json").exists(), out[-3000:]


def test_best_teacher_without_validation_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    root = tmp_path / "refused"
    no_val = TEACHER.replace("'num_val_episodes=1'", "'num_val_episodes=0'")
    proc = run_train(root, *STUDENT, no_val, base=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for said in ("pipeline.teacher_snapshot=best", "num_val_episodes=0", "pipeline.teacher_snapshot=final"):
        assert said in proc.stderr
    assert not root.exists()
