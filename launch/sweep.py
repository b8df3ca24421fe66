"""A sweep (`train.py -m`) stops as a whole, and `resume=<sweep dir>` continues it.

The parent (`SweepStop`, around Hydra's multirun) names a stop file for its jobs
(learning.signals.SWEEP_STOP_ENV). A SIGINT or SIGTERM to the parent writes it: each running job
reads it as its own first signal, finishes its iteration and writes a snapshot, and a queued job
that a launcher hands out afterwards does not start (`job_may_start`). The parent waits for its jobs,
then names the command that resumes the sweep and exits with 128 + signal. A second signal, or
jobs still running GRACE_S after the first, is forwarded to the parent's child processes: each job
exits at once, keeping its last complete snapshot.

Resuming: the same `-m` command with `hydra.sweep.dir=<dir> resume=<dir>` gives each job
`resume=<dir>/<job>` when that directory holds a snapshot (`job_resume`); a job without one starts
fresh.
"""
from __future__ import annotations

import os
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

import psutil

from envs.config import ConfigError
from launch.rundir import saved_overrides
from learning.console import say
from learning.signals import (
    SWEEP_STOP_ENV,
    act_on_stop,
    request_sweep_stop,
    stop_acted_on,
    sweep_stop_file,
    sweep_stopped,
)

GRACE_S = 120          # after the first signal: how long the parent waits before forcing its jobs out
FORCED_WAIT_S = 10     # after forwarding a signal: how long the children get before SIGKILL
# Overrides a resumed job may change without being another job of the sweep.
RESUME_MAY_CHANGE = ("resume", "overwrite", "num_train_frames", "train_minutes")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _resource_tracker(proc: psutil.Process) -> bool:
    """joblib's and multiprocessing's resource trackers ignore SIGINT and SIGTERM: each exits by itself
    once the last process holding its pipe (the parent, the workers) has exited."""
    try:
        return "resource_tracker" in " ".join(proc.cmdline())
    except psutil.Error:
        return True


class SweepStop:
    """`with SweepStop(argv) as stop: main()`, then `stop.finish()`: SystemExit(128 + signal) with
    the resume command after a stop, nothing otherwise. `argv` is the command line as typed."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = list(argv)
        self.file = Path(tempfile.gettempdir()) / f"liftbase-sweep-{os.getpid()}.stop"
        self.signum: int | None = None
        self.stopped_by: str | None = None  # read on leaving the `with`, when the files are removed
        self.dir: Path | None = None
        self._previous: dict[int, object] = {}
        self._timer: threading.Timer | None = None

    def _remove_files(self) -> None:
        self.file.unlink(missing_ok=True)
        self.file.with_name(self.file.name + ".dir").unlink(missing_ok=True)

    def __enter__(self) -> SweepStop:
        self._remove_files()
        os.environ[SWEEP_STOP_ENV] = str(self.file)  # launchers' workers inherit it
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> bool:
        if self._timer is not None:
            self._timer.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self.stopped_by, self.dir = sweep_stopped(), self.sweep_dir()
        self._remove_files()
        # Ctrl-C that reached a worker still starting up (before its first job set a handler) comes
        # back as that job's KeyboardInterrupt, and joblib ends the sweep: `finish` reports the stop.
        return exc_type is KeyboardInterrupt and sweep_stopped() is not None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self._force(signum, f"second signal ({signal.Signals(signum).name})")
        self.signum = signum
        name = signal.Signals(signum).name
        request_sweep_stop(name)
        print(f"[sweep] {name} received: each running job finishes its iteration and writes a snapshot; "
              "queued jobs will not start", file=sys.stderr, flush=True)
        late = f"jobs still running {GRACE_S} s after the signal"
        self._timer = threading.Timer(GRACE_S, self._force, (signal.SIGTERM, late))
        self._timer.daemon = True
        self._timer.start()

    def _force(self, signum: int, why: str) -> None:
        """Forward `signum` to every child process (each job's second signal: it exits at once with its
        last complete snapshot), SIGKILL what is left after FORCED_WAIT_S, and exit."""
        children = [c for c in psutil.Process().children(recursive=True) if not _resource_tracker(c)]
        for child in children:
            try:
                child.send_signal(signum)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(children, timeout=FORCED_WAIT_S)
        for child in alive:
            try:
                child.kill()
            except psutil.Error:
                pass
        print(f"[sweep] {why}: the jobs were told to exit at once, each keeping its last complete snapshot. "
              + self.resume_advice(), file=sys.stderr, flush=True)
        self._remove_files()
        os._exit(128 + (self.signum or signum))

    def sweep_dir(self) -> Path | None:
        """The directory the jobs reported (None when no job has begun)."""
        record = _dir_file()
        try:
            return Path(record.read_text().strip()) if record is not None else None
        except OSError:
            return None

    def resume_command(self, sweep_dir: Path) -> str:
        kept = [a for a in self.argv if _key(a) not in ("resume", "hydra.sweep.dir")]
        return shlex.join(["python", "scripts/train.py", *kept, f"hydra.sweep.dir={sweep_dir}",
                           f"resume={sweep_dir}"])

    def resume_advice(self, sweep_dir: Path | None = None) -> str:
        sweep_dir = sweep_dir or self.sweep_dir()
        if sweep_dir is None:
            return "No job had begun: run the sweep again to start it."
        return f"Resume the sweep with: {self.resume_command(sweep_dir)}"

    def finish(self) -> None:
        """After the sweep: if it was stopped, say how to resume it and exit with 128 + signal."""
        name, sweep_dir = self.stopped_by, self.dir
        if name is None:
            return
        signum = self.signum or int(signal.Signals[name])
        saved = sorted((p.parent.parent for p in sweep_dir.glob("*/snapshots/latest_snapshot.pt")),
                       key=lambda p: (len(p.name), p.name)) if sweep_dir else []
        print(f"[sweep] stopped by {name}: " + (f"snapshots written in {', '.join(str(p) for p in saved)}; "
                                                if saved else "no job had written a snapshot; ")
              + f"queued jobs were not started. Exiting with status {128 + signum}. " + self.resume_advice(sweep_dir),
              file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)


def _dir_file() -> Path | None:
    """Where the jobs tell the parent their sweep directory (a launcher resolves it in the job)."""
    stop = sweep_stop_file()
    return stop.with_name(stop.name + ".dir") if stop is not None else None


def _note_signal(signum: int, frame: FrameType | None) -> None:
    """A worker's signal outside a training loop: the sweep's stop, or, once this worker has acted on
    the stop (its loop ended, or it refused a queued job), a second signal that ends it at once."""
    name = signal.Signals(signum).name
    if stop_acted_on():
        print(f"[sweep] second signal ({name}): this worker exits now", file=sys.stderr, flush=True)
        os._exit(128 + signum)
    request_sweep_stop(name)


def job_may_start(sweep_dir: str) -> bool:
    """At a job's start: tell the parent the sweep directory; False (and say so) when the sweep was
    stopped before this job began. In a launcher's worker, a SIGINT or SIGTERM outside the training
    loop (Ctrl-C reaches every process of the terminal's group) stops the sweep instead of raising
    in the worker: the loop's own handler takes over while it runs, and reads the stop file."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):  # not the parent's
                signal.signal(sig, _note_signal)
    record = _dir_file()
    if record is not None and not record.exists():
        tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
        tmp.write_text(str(Path(sweep_dir).resolve()))
        os.replace(tmp, record)
    stopped = sweep_stopped()
    if stopped is not None:
        act_on_stop(stopped)
        say(f"[sweep] this job was not started: the sweep was stopped by {stopped}")
    return stopped is None


def job_resume(resume: str | None, work_dir: Path, sweep_dir: str | None, overrides: list[str]) -> str | None:
    """`resume=<sweep dir>` in a job of that sweep: the job's own directory when it holds a
    snapshot (after checking it was started as this job), else None (the job starts fresh).
    Any other resume= is returned as it is."""
    if not resume or sweep_dir is None:
        return resume
    if Path(resume).resolve() != Path(sweep_dir).resolve():
        if (Path(resume) / "multirun.yaml").is_file():
            raise ConfigError(f"resume={resume} is a sweep directory, but this sweep writes to {sweep_dir}: resume a "
                              f"sweep in its own directory, hydra.sweep.dir={resume} resume={resume}")
        return resume
    if not any((work_dir / "snapshots").glob("*_snapshot.pt")):
        say(f"[sweep] resume={resume}: {work_dir} holds no snapshot, so this job starts from the beginning")
        return None
    saved = saved_overrides(work_dir)

    def job_keys(ovs: list[str]) -> set[str]:
        return {o for o in ovs if _key(o) not in RESUME_MAY_CHANGE and not _key(o).startswith("hydra")}

    if job_keys(saved) != job_keys(overrides):
        raise ConfigError(f"resume={resume}: {work_dir} holds a run started with {sorted(job_keys(saved))}, not "
                          f"this job's {sorted(job_keys(overrides))}; resume a sweep with the command that started "
                          f"it (each job's overrides are in <job>/.hydra/overrides.yaml)")
    say(f"[sweep] resume={resume}: this job continues its run in {work_dir}")
    return str(work_dir)
