"""The env contract the native engine speaks: N envs stepped as one batch, torch on the sim device.

`BatchedLiftEnv.step(action)` takes (N, A) actions (A = 4 or 6, see `task.action_mode`) in [-1, 1] and returns a `Step` of tensors:
frame-stacked observations, reward, terminated, truncated, a `reset` mask and the task's info.
Nothing crosses to NumPy and every step renders the batch exactly once.

Why the auto-reset comes one step late: the step that ends env i's episode must show its final
observation (a truncated episode bootstraps from it) and the new episode must show its first one.
Genesis renders all N cameras in one call and cannot render a subset, so resetting in the same
step (gymnasium 0.29) renders the whole batch twice. Here, as in gymnasium 1.x's default
"next-step" mode, the ending step returns the final observation in `obs`; the next step ignores
env i's action, resets it after the physics step and returns its first observation with
`reset[i]` set: that row is no transition. One env step per episode is spent on it.
The gymnasium 0.29 adapter at RoboBase's edge (`factories.vector_env.WrappedVectorEnv`) resets in
the same step instead (`reset_envs`), paying the second render there only.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from gymnasium import spaces

from envs.config import PRIVILEGED_KEY, TaskConfig
from envs.task import LiftTask

log = logging.getLogger(__name__)


@dataclass
class Step:
    """One batched step; every tensor has the env axis first and lives on the sim device."""

    obs: dict[str, torch.Tensor]   # (N, F, ...): an ended episode's final obs, a reset row's first obs
    reward: torch.Tensor           # (N,) float32; 0 on reset rows
    terminated: torch.Tensor       # (N,) bool: success (no bootstrap)
    truncated: torch.Tensor        # (N,) bool: time limit or fault (bootstrap from obs)
    reset: torch.Tensor            # (N,) bool: obs starts a new episode; the action was ignored, no transition
    fault: torch.Tensor            # (N,) bool: physics went non-finite or the action did (also truncated)
    info: dict[str, torch.Tensor]  # the task's info (N, ...): predicates, reward/<term>, episode/<term>;
    #                                reset rows hold the new episode's reset info

    @property
    def done(self) -> torch.Tensor:
        """(N,) bool: the episode ended at this step."""
        return self.terminated | self.truncated


def observation_space(cfg: TaskConfig) -> spaces.Dict:
    """Per-env observation space (no frame stack): shared by every env and wrapper."""
    d = 18 if cfg.pixels else 21
    s = {"low_dim_state": spaces.Box(-np.inf, np.inf, (d,), np.float32)}
    if cfg.pixels:
        for cam in cfg.cameras:
            s[f"rgb_{cam}"] = spaces.Box(0, 255, (3, cfg.image_size, cfg.image_size), np.uint8)
    if cfg.privileged_state:
        s[PRIVILEGED_KEY] = spaces.Box(-np.inf, np.inf, (7,), np.float32)
    return spaces.Dict(s)


def rescale_from_tanh(a: torch.Tensor) -> torch.Tensor:
    """RoboBase's RescaleFromTanh onto the task's action bounds [-1, 1], computed as it computes it
    (low + (a + 1) / 2 * (high - low) is not the identity in float32); NaN stays NaN."""
    low, high = -1.0, 1.0
    return low + (a.clamp(-1.0, 1.0) + 1.0) * 0.5 * (high - low)


def stacked_space(single: spaces.Dict, frame_stack: int) -> spaces.Dict:
    """Per-env space with a leading frame axis: (F, ...)."""
    out = {}
    for k, s in single.spaces.items():
        low = np.broadcast_to(s.low, s.shape)[None].repeat(frame_stack, 0)
        high = np.broadcast_to(s.high, s.shape)[None].repeat(frame_stack, 0)
        out[k] = spaces.Box(low, high, (frame_stack, *s.shape), s.dtype)
    return spaces.Dict(out)


class FrameStacks:
    """The last F frames of every env, (N, F, ...) per key; RoboBase's FrameStack, batched."""

    def __init__(self, frame_stack: int) -> None:
        self.F = frame_stack
        self.stacks: dict[str, torch.Tensor] = {}

    def fill(self, frame: dict[str, torch.Tensor]) -> None:
        """Every env starts over: F copies of its frame (N, ...)."""
        self.stacks = {k: v.unsqueeze(1).repeat_interleave(self.F, 1) for k, v in frame.items()}

    def push(self, frame: dict[str, torch.Tensor]) -> None:
        # A new tensor each step: observations handed out earlier never change.
        self.stacks = {k: torch.cat([self.stacks[k][:, 1:], v.unsqueeze(1)], 1) for k, v in frame.items()}

    def refill(self, frame: dict[str, torch.Tensor], mask: torch.Tensor) -> None:
        """The envs in `mask` (N,) start over: F copies of their frame. Out of place, like `push`."""
        out = {}
        for k, v in frame.items():
            m = mask.view(-1, *([1] * v.dim()))  # (N, 1, 1, ...) against (N, F, ...)
            out[k] = torch.where(m, v.unsqueeze(1).expand(-1, self.F, *v.shape[1:]), self.stacks[k])
        self.stacks = out


class BatchedLiftEnv:
    """The batched lift task with frame stacks and next-step auto-reset (see the module docstring).

    `isolate_invalid`: a non-finite action row truncates that env (flagged `invalid_action` and
    `sim_fault`) while the others step on; without it the whole step is refused (a single env).
    """

    def __init__(self, task: LiftTask, frame_stack: int, isolate_invalid: bool = True) -> None:
        if not isinstance(frame_stack, int) or isinstance(frame_stack, bool) or frame_stack < 1:
            raise ValueError(f"frame_stack={frame_stack!r} is invalid: allowed an integer >= 1")
        self.task, self.frame_stack, self.isolate_invalid = task, frame_stack, isolate_invalid
        self.num_envs, self.device = task.n, task.device
        self.action_dim = task.action_dim  # 4 (ee_delta) or 6 (joint_pos)
        self.single_observation_space = stacked_space(observation_space(task.cfg), frame_stack)
        self.stacks = FrameStacks(frame_stack)
        self._pending = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def reset(self, seed: int | Sequence[int] | None = None
              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """All envs start a new episode: (obs (N, F, ...), reset info (N, ...)).

        `seed`: an integer seeds env i with seed + i; a sequence of N seeds gives env i seeds[i]
        (see `seed_envs`); None keeps the envs' generators where they are.
        """
        if isinstance(seed, (int, np.integer)):
            self.task.seed(int(seed))
        elif seed is not None:
            if len(seed) != self.num_envs:
                raise ValueError(f"reset got {len(seed)} seeds for {self.num_envs} envs: allowed one integer or "
                                 f"a sequence of {self.num_envs} integers")
            self.seed_envs(range(self.num_envs), seed)
        self.task.reset()
        self.stacks.fill(self.task.observe())
        self._pending.zero_()
        return self.stacks.stacks, self.task.reset_info()

    def step(self, action: torch.Tensor) -> Step:
        """(N, A) actions in [-1, 1] -> Step. Rows that ended last step are reset instead (`reset`)."""
        pending = self._pending
        resetting = bool(pending.any())  # one host sync; rare on most steps
        a = torch.as_tensor(action, device=self.device, dtype=torch.float32)
        if resetting:  # hold still: these envs are teleported after the physics step anyway
            a = torch.where(pending[:, None], torch.zeros_like(a), a)
        reward, term, trunc, info = self.task.step(a, isolate_invalid=self.isolate_invalid)
        invalid, fault = info["invalid_action"], info["sim_fault"]  # (N,) each; a reset row's action was zeroed
        if bool(invalid.any()):
            log.warning(f"non-finite action for env(s) {torch.nonzero(invalid).flatten().tolist()}: truncated and "
                        f"reset, the others stepped on ({self.task.invalid_action_count} such env steps so far)")
        if resetting:
            self.task.reset(pending)
            fresh = self.task.reset_info()
            info = {k: torch.where(pending.view(-1, *([1] * (v.dim() - 1))), fresh[k], v) if k in fresh else v
                    for k, v in info.items()}
            reward = torch.where(pending, torch.zeros_like(reward), reward)
            term, trunc, fault = term & ~pending, trunc & ~pending, fault & ~pending
        frame = self.task.observe()  # the step's one render
        self.stacks.push(frame)
        if resetting:
            self.stacks.refill(frame, pending)
        self._pending = term | trunc
        return Step(self.stacks.stacks, reward, term, trunc, pending, fault, info)

    def from_ee_delta(self, action: torch.Tensor) -> torch.Tensor:
        """The action (N, A) in the task's action_mode for the ee_delta action (N, 4), for the
        next `step` (`LiftTask.from_ee_delta`): how the scripted expert drives either mode."""
        return self.task.from_ee_delta(torch.as_tensor(action, device=self.device, dtype=torch.float32))

    def seed_envs(self, ids: Sequence[int], seeds: Sequence[int]) -> None:
        """Seed the reset sampling of env ids[j] with seeds[j]; its next reset (by `reset`, by the
        auto-reset of the step after its episode ends, or by `reset_envs`) then samples exactly what
        a single env's `reset(seed=seeds[j])` samples, so that episode's start state depends on its
        seed alone, whichever env of the batch runs it and whatever that env ran before."""
        for i, s in zip(ids, seeds, strict=True):
            self.task.gens[int(i)].manual_seed(int(s))

    def reset_envs(self, mask: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Reset the envs in `mask` (N,) now, not at the next step (gymnasium 0.29's auto-reset):
        observes the batch a second time. Returns (obs, reset info) of all envs."""
        self.task.reset(mask)
        self.stacks.refill(self.task.observe(), mask)
        self._pending = self._pending & ~mask
        return self.stacks.stacks, self.task.reset_info()

    def render(self, env: int = 0) -> np.ndarray:
        """A third-person HxWx3 uint8 frame of env `env`, for videos."""
        return self.task.backend.render_scene(env)

    def close(self) -> None:
        self.task.backend.close()
