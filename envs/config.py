"""Task parameters, validated before any simulator starts.

Every value here has the default fixed by the task (docs/task.md); anything that is a choice
rather than a fact is a field, so Hydra configs and gymnasium kwargs reach it by name.
Validation errors name the key, the bad value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from rewards import available

STAGES = (0, 1, 2, 3, 4)


# Randomisations each backend can apply per env. Genesis renders all envs of a scene with one
# set of lights and one surface per entity, and cannot resize one env's cube.
RANDOMISATIONS = ("cube_xy", "cube_size", "cube_friction", "cube_color", "joint_noise", "camera_jitter", "light")
BACKEND_RANDOMISATIONS = {
    "MuJoCo": frozenset(RANDOMISATIONS),
    "Genesis": frozenset({"cube_xy", "cube_friction", "joint_noise", "camera_jitter"}),
}


# Cameras a backend can give as observations (`rgb_<name>`); Genesis builds the wrist camera only.
CAMERAS = ("wrist", "front")
BACKEND_CAMERAS = {"MuJoCo": CAMERAS, "Genesis": ("wrist",)}
PRIVILEGED_KEY = "privileged_state"  # the observation of the cube pose (privileged_state=true): no policy reads it

# Genesis options: where its physics runs and which renderer draws its cameras.
SIM_DEVICES = ("cpu", "gpu", "auto")

# What an action means: ee_delta (4 values: TCP motion dx, dy, dz and a gripper command, through the
# task's IK) or joint_pos (6 absolute joint targets, each [-1, 1] spread over its joint's range, as a
# real SO-101 follower takes goal positions). See docs/task.md.
STAGE0_HOME = (1.0, 0.0, 0.0)  # stage0_starts of the task as evaluated: every start at home
ACTION_MODES = ("ee_delta", "joint_pos")
ACTION_DIMS = {"ee_delta": 4, "joint_pos": 6}
RENDERERS = ("auto", "rasterizer", "batch")


class ConfigError(ValueError):
    """A task/config value is invalid. The message names key, value and allowed values."""


def _check(cond: bool, key: str, value: Any, allowed: str) -> None:
    """ConfigError naming the key, the value (a sequence as the list a user writes) and what is allowed."""
    if not cond:
        shown = list(value) if isinstance(value, tuple) else value
        raise ConfigError(f"{key}={shown!r} is invalid: allowed {allowed}")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class RandomizationConfig:
    """Domain randomisation, each on/off with its range; applied per env at its reset."""

    cube_xy: bool = True
    cube_xy_range_stage0: float = 0.03  # +- metres around (0.40, -0.10)
    cube_xy_range: float = 0.02  # +- metres around (0.25, 0.00), stages 1-4
    cube_size: bool = False
    cube_size_range: tuple[float, float] = (0.024, 0.036)  # edge length, metres
    cube_friction: bool = False
    cube_friction_range: tuple[float, float] = (0.5, 1.5)
    cube_color: bool = False
    joint_noise: bool = True
    joint_noise_range: float = 0.02  # +- rad on the arm joints
    camera_jitter: bool = False
    camera_pos_range: float = 0.0025  # +- metres
    camera_rot_range: float = 0.005  # +- rad
    light: bool = False

    def validate(self, prefix: str = "randomization") -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            key = f"{prefix}.{f.name}"
            if f.type in ("bool", bool):
                _check(isinstance(v, bool), key, v, "true or false")
            elif f.name.endswith("range") and not isinstance(v, tuple):
                _check(_is_num(v) and v >= 0, key, v, "a number >= 0")
            elif isinstance(v, tuple):
                _check(len(v) == 2 and all(_is_num(x) for x in v) and 0 < v[0] <= v[1], key, v,
                       "[low, high] with 0 < low <= high")


@dataclass
class TaskConfig:
    """Everything that defines the lift task, shared by both physics backends."""

    curriculum_stage: int = 3
    reward_version: str = "v19"
    pixels: bool = True  # False: state only (21 values, no camera)
    cameras: tuple[str, ...] = ("wrist",)  # image observations rgb_<camera>, with pixels
    privileged_state: bool = False  # also observe the cube pose, for a critic that trains in simulation only
    blank_images: bool = False  # with pixels, every image observation is all zeros: a blind control
    image_size: int = 84
    frame_skip_dt: float = 0.02  # one env step = 20 ms (50 Hz control)
    physics_dt: float = 0.002
    episode_length: int = 200
    lift_height: float = 0.08
    hold_steps: int = 10
    gripper_closed_below: float = 0.25  # rad; gripper joint angle under which it is "closed"
    cube_half_size: float = 0.015
    cube_mass: float = 0.03
    cube_friction: float = 0.5
    cube_xy_stage0: tuple[float, float] = (0.40, -0.10)
    cube_xy: tuple[float, float] = (0.25, 0.00)
    action_scale: float = 0.02  # metres of TCP motion per unit action per step
    workspace_low: tuple[float, float, float] = (0.10, -0.30, 0.01)
    workspace_high: tuple[float, float, float] = (0.50, 0.30, 0.40)
    lock_wrist_roll: bool = True
    keep_gripper_vertical: bool = True  # IK also keeps the jaws pointing down
    ik_damping: float = 0.05
    action_mode: str = "ee_delta"  # one of ACTION_MODES
    # Stage 0 only: weights of the arm's start at a reset, (home, above, near): home is stage 0's
    # pose, above and near are stages 3's and 4's poses over this stage's cube. A training-only
    # start distribution: evaluations start at home.
    stage0_starts: tuple[float, float, float] = STAGE0_HOME
    compile: bool = False  # torch.compile the task's step and observation (Genesis): see LiftTask.compile
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)

    def __post_init__(self) -> None:
        if isinstance(self.randomization, Mapping):
            self.randomization = RandomizationConfig(**dict(self.randomization))
        for name in ("cube_xy_stage0", "cube_xy", "workspace_low", "workspace_high", "cameras", "stage0_starts"):
            v = getattr(self, name)
            if isinstance(v, (list, tuple)):
                setattr(self, name, tuple(v))
        rnd = self.randomization
        if isinstance(rnd.cube_size_range, list):
            rnd.cube_size_range = tuple(rnd.cube_size_range)
        if isinstance(rnd.cube_friction_range, list):
            rnd.cube_friction_range = tuple(rnd.cube_friction_range)
        self.validate()

    @property
    def n_substeps(self) -> int:
        return int(round(self.frame_skip_dt / self.physics_dt))

    @property
    def action_dim(self) -> int:
        return ACTION_DIMS[self.action_mode]

    @property
    def max_cube_half_size(self) -> float:
        if self.randomization.cube_size:
            return self.randomization.cube_size_range[1] / 2
        return self.cube_half_size

    def validate(self) -> None:
        _check(_is_int(self.curriculum_stage) and self.curriculum_stage in STAGES,
               "curriculum_stage", self.curriculum_stage, "one of 0, 1, 2, 3, 4")
        _check(self.reward_version in available(), "reward_version", self.reward_version,
               f"one of {', '.join(available())}")
        _check(self.action_mode in ACTION_MODES, "action_mode", self.action_mode, f"one of {', '.join(ACTION_MODES)}")
        _check(isinstance(self.pixels, bool), "pixels", self.pixels, "true or false")
        cams = self.cameras
        _check(isinstance(cams, tuple) and 0 < len(cams) == len(set(cams)) and all(c in CAMERAS for c in cams),
               "cameras", cams,
               f"a non-empty list of distinct names from {list(CAMERAS)}")
        _check(isinstance(self.privileged_state, bool), "privileged_state", self.privileged_state, "true or false")
        _check(_is_int(self.image_size) and 8 <= self.image_size <= 1024, "image_size",
               self.image_size, "an integer from 8 to 1024")
        _check(_is_num(self.physics_dt) and 0 < self.physics_dt <= 0.02, "physics_dt",
               self.physics_dt, "a number in (0, 0.02]")
        _check(_is_num(self.frame_skip_dt) and self.frame_skip_dt >= self.physics_dt, "frame_skip_dt",
               self.frame_skip_dt, f"a number >= physics_dt ({self.physics_dt})")
        _check(_is_int(self.episode_length) and self.episode_length >= 1, "episode_length",
               self.episode_length, "an integer >= 1")
        _check(_is_int(self.hold_steps) and self.hold_steps >= 1, "hold_steps", self.hold_steps,
               "an integer >= 1")
        _check(_is_num(self.cube_half_size) and 0.005 <= self.cube_half_size <= 0.03,
               "cube_half_size", self.cube_half_size, "a number in [0.005, 0.03] metres")
        _check(_is_num(self.cube_mass) and self.cube_mass > 0, "cube_mass", self.cube_mass, "a number > 0")
        _check(_is_num(self.cube_friction) and self.cube_friction > 0, "cube_friction",
               self.cube_friction, "a number > 0")
        rest = self.max_cube_half_size
        _check(_is_num(self.lift_height) and rest < self.lift_height <= self.workspace_high[2],
               "lift_height", self.lift_height,
               f"a number above the cube's rest height {rest:.3f} m and at most {self.workspace_high[2]} m")
        _check(_is_num(self.action_scale) and 0 < self.action_scale <= 0.1, "action_scale",
               self.action_scale, "a number in (0, 0.1] metres")
        _check(_is_num(self.gripper_closed_below), "gripper_closed_below", self.gripper_closed_below,
               "a finite number (rad)")
        _check(_is_num(self.ik_damping) and self.ik_damping > 0, "ik_damping", self.ik_damping, "a number > 0")
        for name in ("cube_xy_stage0", "cube_xy"):
            v = getattr(self, name)
            _check(len(v) == 2 and all(_is_num(x) for x in v), name, v, "[x, y] in metres")
        lo, hi = self.workspace_low, self.workspace_high
        _check(len(lo) == 3 and all(_is_num(x) for x in lo), "workspace_low", lo, "[x, y, z]")
        _check(len(hi) == 3 and all(_is_num(x) for x in hi) and all(a < b for a, b in zip(lo, hi)),
               "workspace_high", hi, f"[x, y, z], each above workspace_low {list(lo)}")
        w = self.stage0_starts
        _check(isinstance(w, tuple) and len(w) == 3 and all(_is_num(x) and x >= 0 for x in w) and sum(w) > 0,
               "stage0_starts", w, "three weights >= 0, not all 0: [home, above, near]")
        _check(self.curriculum_stage == 0 or self.stage0_starts == STAGE0_HOME, "stage0_starts", w,
               f"[1, 0, 0] at curriculum_stage={self.curriculum_stage}: other starts are for stage 0")
        _check(self.hold_steps <= self.episode_length, "hold_steps", self.hold_steps,
               f"at most episode_length ({self.episode_length}): success needs that many lifted steps in one episode")
        self.randomization.validate()
        rnd = self.randomization
        for name, r in (("cube_xy_stage0", rnd.cube_xy_range_stage0), ("cube_xy", rnd.cube_xy_range)):
            r = r if rnd.cube_xy else 0.0
            (x, y), h = getattr(self, name), self.max_cube_half_size
            inside = lo[0] <= x - r - h and x + r + h <= hi[0] and lo[1] <= y - r - h and y + r + h <= hi[1]
            _check(inside, name, [x, y], f"[x, y] with the whole cube (+-{r} m of randomisation) inside the "
                   f"workspace x {lo[0]}..{hi[0]}, y {lo[1]}..{hi[1]} m")
        for name in ("lock_wrist_roll", "keep_gripper_vertical", "compile", "blank_images"):
            _check(isinstance(getattr(self, name), bool), name, getattr(self, name), "true or false")
        _check(isinstance(self.randomization, RandomizationConfig), "randomization",
               self.randomization, "a mapping of randomisation options")
        self.randomization.validate()


def check_randomization(rnd: RandomizationConfig, backend: str, supports: frozenset[str] | None = None) -> None:
    """Refuse, by name and before any simulator starts, randomisations `backend` cannot apply."""
    allowed = BACKEND_RANDOMISATIONS[backend] if supports is None else supports
    unsupported = [r for r in RANDOMISATIONS if getattr(rnd, r) and r not in allowed]
    if unsupported:
        raise ConfigError(f"randomization {unsupported} is not supported by the {backend} backend: "
                          f"allowed {sorted(allowed)}")


def check_cameras(cameras: tuple[str, ...], backend: str) -> None:
    """Refuse, by name and before any simulator starts, cameras `backend` does not build."""
    allowed = BACKEND_CAMERAS[backend]
    if any(c not in allowed for c in cameras):
        raise ConfigError(f"cameras={list(cameras)} is not supported by the {backend} backend: allowed {list(allowed)}")


# Backends whose state read-out is torch ops only, so that torch.compile can fuse the task around it.
BACKEND_COMPILE = ("Genesis",)


def check_compile(compile: bool, backend: str) -> None:
    """Refuse, by name and before any simulator starts, compile=true where it cannot work: a backend
    that reads its state through NumPy, or a machine without the C++ compiler torch.compile builds
    its CPU kernels with."""
    if not compile:
        return
    if backend not in BACKEND_COMPILE:
        raise ConfigError(f"compile=True is invalid with the {backend} backend, which reads its state through "
                          f"NumPy, one env at a time: there is nothing to fuse. Allowed: false "
                          f"(true with {', '.join(BACKEND_COMPILE)})")
    from torch._inductor import config as inductor
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception:  # noqa: BLE001  Inductor's InvalidCxxCompiler, or whatever its search raises
        raise ConfigError(f"compile=True is invalid on this machine: torch.compile builds its kernels with a C++ "
                          f"compiler and found none of {[c for c in inductor.cpp.cxx if c]} on PATH. Install "
                          "g++, or allowed: false") from None


def check_backend(cfg: TaskConfig, backend: str) -> None:
    """Refuse, by name and before any simulator starts, the options `backend` cannot honour: its
    randomisations, cameras and compile. Called where a run is validated and where each backend
    is built (the entry of gym.make and RoboBase users)."""
    check_randomization(cfg.randomization, backend)
    check_cameras(cfg.cameras, backend)
    check_compile(cfg.compile, backend)


def make_task_config(**kwargs: Any) -> TaskConfig:
    """Build a TaskConfig from keyword arguments, rejecting unknown keys by name."""
    names = {f.name for f in dataclasses.fields(TaskConfig)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ConfigError(f"unknown task option(s) {unknown}: allowed {sorted(names)}")
    return TaskConfig(**kwargs)
