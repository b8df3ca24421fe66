"""A trained state policy as the pixel actor's frozen teacher (`teacher=<run dir or snapshot>`).

`learning.teacher.StateTeacher` is cloned from the demos, so it is no better than the scripted
expert. Here the teacher is the actor of a state-policy snapshot (SAC trained by RL on the same
task, with the cube position in its low-dim state): its deterministic (mean) action labels every
replay row, and the critic bootstraps with it, exactly as with the cloned teacher.

The teacher reads, per frame, `low_dim_state` of a state-only env: the 18 proprioceptive values
followed by the cube position (3). The student's env gives the 18 values in its own
`low_dim_state` and the cube position as the first 3 values of `privileged_state`
(`envs.task.LiftTask.low_dim` / `.privileged`), so the teacher's observation is their
concatenation, frame by frame. `check_teacher` refuses a snapshot whose keys, widths, frame stack,
action size or task do not allow that mapping, naming the teacher's side and the student's.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from learning.agents import make_agent
from learning.replay import KeySpec
from learning.snapshot import (
    BEST,
    LATEST,
    SnapshotError,
    read_snapshot,
    resolve_snapshot_path,
    snapshot_counters,
)

LOW_KEY, PRIVILEGED_KEY = "low_dim_state", "privileged_state"
CUBE_POS = 3            # privileged_state[:3] is the cube position, the last 3 values of a state-only low_dim_state
STATE_AGENTS = ("sac",)  # agents whose snapshots may teach: state policies with a mean action


class TeacherError(SnapshotError):
    """A `teacher=` that cannot teach this student (the message names both sides)."""


@dataclass(frozen=True)
class TeacherSnapshot:
    """A checked teacher: where its snapshot is and what it holds."""

    path: Path
    payload: dict[str, Any]


def teacher_snapshot_path(teacher: str | Path) -> Path:
    """A run dir, snapshots dir or .pt -> the snapshot file; for a run dir the agent-only numbered
    snapshot of the same frames as latest_snapshot.pt where there is one (no replay to read)."""
    path = resolve_snapshot_path(teacher, key="teacher")
    if path.name == LATEST:
        frames = snapshot_counters(path).get("frames")
        numbered = path.parent / f"{frames}_snapshot.pt"
        if frames is not None and numbered.is_file():
            return numbered
    return path


def best_teacher_path(teacher: str | Path) -> Path:
    """A run dir or snapshots dir -> its best_snapshot.pt (the best on the run's validation
    episodes); a .pt file is taken as named. Raises TeacherError when the run kept none."""
    path = Path(str(teacher)).expanduser()
    if path.is_file():
        return path
    best = path / BEST if path.name == "snapshots" else path / "snapshots" / BEST
    if not best.is_file():
        raise TeacherError(f"teacher={teacher} with pipeline.teacher_snapshot=best: {best} does not exist (the run "
                           "kept no best snapshot: it ran with num_val_episodes=0 or never evaluated); use "
                           "pipeline.teacher_snapshot=final, or a teacher run with num_val_episodes > 0")
    return best


def teacher_run_dir(path: Path) -> Path | None:
    """The run directory a teacher snapshot lives in (None for a .pt outside one)."""
    return path.parent.parent if path.parent.name == "snapshots" else None


def _signature(obs_spec: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    """An observation signature (`envio.spec_signature`, or as a snapshot stores it) with plain tuples."""
    return {k: (tuple(int(d) for d in v[0]), str(v[1])) for k, v in dict(obs_spec).items()}


def check_teacher(teacher: str | Path, student_obs: Mapping[str, Any], student_action_dim: int) -> TeacherSnapshot:
    """Read the snapshot `teacher` and check that it can teach the student whose observation
    signature (`envio.spec_signature`) and action size are given (the task: `launch.teacher_check`).
    Raises TeacherError."""
    path, payload = read_snapshot(teacher_snapshot_path(teacher), key="teacher")
    name = payload["agent_name"]
    sig = _signature(payload["obs_spec"])
    images = sorted(k for k, (shape, _) in sig.items() if len(shape) == 4)
    if name not in STATE_AGENTS or images:
        seen = f"image keys {images}" if images else f"agent {name!r}"
        raise TeacherError(f"teacher={teacher}: {path} is not a state policy ({seen}); the student needs the "
                           f"snapshot of a state-only {' or '.join(STATE_AGENTS)} run (agent=sac, pixels=false)")
    s_sig = _signature(student_obs)
    t_low, s_low, s_priv = sig.get(LOW_KEY), s_sig.get(LOW_KEY), s_sig.get(PRIVILEGED_KEY)
    if s_priv is None:
        raise TeacherError(f"teacher={teacher}: the teacher reads the cube position, which the student's "
                           f"observations {sorted(s_sig)} lack; the student needs task.privileged_state=true")
    if t_low is None or s_low is None or t_low[0][0] != s_low[0][0] \
            or t_low[0][1] != s_low[0][1] + CUBE_POS or s_priv[0][1] < CUBE_POS:
        raise TeacherError(f"teacher={teacher}: its observations {sig} cannot be built from the student's {s_sig}: "
                           f"the teacher's {LOW_KEY} must be the student's {LOW_KEY} followed by the cube position "
                           f"({PRIVILEGED_KEY}[:{CUBE_POS}]), with the same frame stack")
    if PRIVILEGED_KEY in sig and sig[PRIVILEGED_KEY] != s_priv:
        raise TeacherError(f"teacher={teacher}: its {PRIVILEGED_KEY} {sig[PRIVILEGED_KEY]} differs from the "
                           f"student's {s_priv}")
    extra = sorted(set(sig) - {LOW_KEY, PRIVILEGED_KEY})
    if extra:
        raise TeacherError(f"teacher={teacher}: it reads keys {extra} that the student's observations {sorted(s_sig)} "
                           "cannot give")
    t_action = int(payload.get("action_dim", student_action_dim))
    if t_action != student_action_dim:
        raise TeacherError(f"teacher={teacher}: its action size {t_action} differs from the student's "
                           f"{student_action_dim}")
    return TeacherSnapshot(path, payload)


class SnapshotTeacher(nn.Module):
    """The frozen actor of a state-policy snapshot, labelling the student's rows with its mean
    action; nothing of it trains."""

    def __init__(self, snap: TeacherSnapshot, device: torch.device) -> None:
        super().__init__()
        sig = _signature(snap.payload["obs_spec"])
        spec = {k: KeySpec(shape[1:], getattr(torch, dtype.split(".")[-1])) for k, (shape, dtype) in sig.items()}
        self.keys = sorted(spec)
        self.frame_stack = next(iter(sig.values()))[0][0]
        agent = make_agent(OmegaConf.create(snap.payload["config"]["agent"]), spec, self.frame_stack,
                           int(snap.payload["action_dim"]), device)
        agent.load_snapshot_state(snap.payload["agent"])
        agent.close()
        self.policy = agent
        self.requires_grad_(False)
        self.train(False)

    def teacher_obs(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The student's (B, F, ...) obs -> the teacher's: low-dim (B, F, D) then cube position (B, F, 3)."""
        out = {LOW_KEY: torch.cat([obs[LOW_KEY].float(), obs[PRIVILEGED_KEY][..., :CUBE_POS].float()], dim=-1)}
        if PRIVILEGED_KEY in self.keys:
            out[PRIVILEGED_KEY] = obs[PRIVILEGED_KEY]
        return out

    def train(self, mode: bool = True) -> SnapshotTeacher:
        return super().train(False)  # frozen: never leaves eval mode

    @torch.no_grad()
    def label(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, A) the teacher's mean action for the student's obs."""
        return self.policy.act(self.teacher_obs(obs), 0, eval_mode=True)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.label(obs)


def install_teacher(agent: Any, teacher: str | Path, signature: Mapping[str, Any], action_dim: int,
                    device: torch.device) -> TeacherSnapshot:
    """The trainer's hook: check the snapshot `teacher` against the student's observations and
    action size (the task was checked at the door, `launch.teacher_check`) and make it the
    agent's teacher (`DrQV2Agent.use_teacher`)."""
    if not hasattr(agent, "use_teacher"):
        raise TeacherError(f"teacher={teacher}: agent {agent.name!r} has no teacher term; a trained teacher "
                           "teaches agent=drqv2 with agent.teacher_weight > 0")
    snap = check_teacher(teacher, signature, action_dim)
    agent.use_teacher(SnapshotTeacher(snap, device))
    return snap
