"""What each run key may hold: one table, checked once before a run directory or simulator exists.

`schema.py` says which keys exist (the shipped configs under conf/); this module says which values
they take. `RULES` maps a dotted key to its rule; a rule marked `native` is a key only the native
engine reads, and one with `when` is read only with that agent (or with pixels), so it is checked
only then. `RELATIONS` are the checks between keys. The factories (RoboBase's entry) and the
batched envs check their own arguments against the same rules. Every error names the key, the bad
value and what is allowed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from omegaconf import DictConfig, OmegaConf

from envs.config import RENDERERS, SIM_DEVICES, ConfigError

AGENTS = ("drqv2", "sac")
MAX_DEMOS = 10_000  # expert episodes rolled out before training (each up to an episode of frames)
WRAPPER_KEYS = ("num_train_envs", "frame_stack", "action_sequence")  # what a factory builds from
_SCHEDULE = re.compile(r"^\s*linear\(\s*([^,]+),\s*([^,]+),\s*([^,\)]+)\)\s*$")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_MISSING = object()


@dataclass(frozen=True)
class Rule:
    ok: Callable[[Any], bool]
    allowed: str                 # what the error message offers instead
    native: bool = True          # False: both engines read the key
    when: str | None = None      # an agent name, "pixels" or an env name: read only then


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(low: int, high: int | None = None, **kw: Any) -> Rule:
    text = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    return Rule(lambda v: _is_int(v) and v >= low and (high is None or v <= high), text, **kw)


def number(low: float, high: float = float("inf"), low_open: bool = False, **kw: Any) -> Rule:
    above = (lambda v: v > low) if low_open else (lambda v: v >= low)
    text = f"a number in {'(' if low_open else '['}{low}, {high}]"
    return Rule(lambda v: _is_num(v) and above(v) and v <= high, text, **kw)


def boolean(**kw: Any) -> Rule:
    return Rule(lambda v: isinstance(v, bool), "true or false", **kw)


def one_of(*choices: Any, **kw: Any) -> Rule:
    return Rule(lambda v: not isinstance(v, bool) and v in choices, ", ".join(map(repr, choices)), **kw)


def or_null(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.ok(v), f"null or {rule.allowed}", rule.native, rule.when)


def _schedule(v: Any) -> bool:
    """A stddev >= 0, or 'linear(init,final,duration)' with init, final >= 0 and duration > 0 frames."""
    if _is_num(v):
        return v >= 0
    m = _SCHEDULE.match(str(v))
    try:
        return m is not None and float(m.group(1)) >= 0 and float(m.group(2)) >= 0 and float(m.group(3)) > 0
    except ValueError:
        return False


RULES: dict[str, Rule] = {
    # both engines
    "seed": integer(0, native=False),
    "num_train_envs": integer(1, 65536, native=False),
    "frame_stack": integer(1, 32, native=False),
    "action_sequence": one_of(1, native=False),   # RL without action chunking
    "torch_threads": or_null(integer(1, native=False)),
    "allow_state_reward_with_pixels": boolean(native=False),
    "env.sim_device": one_of(*SIM_DEVICES, native=False, when="genesis_lift"),
    "env.renderer": one_of(*RENDERERS, native=False, when="genesis_lift"),
    "env.as_torch": Rule(lambda v: v == "auto" or isinstance(v, bool), "'auto', true or false", native=False,
                         when="genesis_lift"),
    # the native engine: what it is and how long it runs
    "pixels": boolean(),
    "agent.name": one_of(*AGENTS),
    "num_train_frames": integer(1),
    "train_minutes": or_null(number(0.0, 1e6, low_open=True)),
    "num_explore_steps": integer(0),
    "replay_size_before_train": integer(0),
    "update_every_steps": integer(1),
    "overlap_env_step": Rule(lambda v: v == "auto" or isinstance(v, bool), "'auto', true or false"),
    "batch_size": integer(1),
    "eval_every_steps": integer(0),
    "eval_at_start": boolean(),
    "num_eval_episodes": integer(0),
    "num_eval_envs": or_null(integer(1, 1024)),   # null: the backend's default (factories.factory)
    "save_snapshot": boolean(),
    "snapshot_every_n": integer(1),
    "keep_snapshots": integer(0),
    "log_every": integer(1),
    "log_eval_video": boolean(),
    "resume": Rule(lambda v: v is None or (isinstance(v, str) and bool(v.strip())),
                   "null or a path (run directory or .pt file)"),
    "resume_replay": boolean(),
    "device": Rule(lambda v: isinstance(v, str) and bool(_DEVICE.match(v)), "'auto', 'cpu', 'cuda' or 'cuda:<index>'"),
    "replay.size": integer(1),
    "replay.nstep": integer(1),
    "replay.gamma": number(0.0, 1.0, low_open=True),
    "demos": integer(0, MAX_DEMOS),
    "demo_noise": number(0.0, 1.0),
    "demo_ratio": or_null(number(0.0, 1.0)),
    "use_self_imitation": boolean(),
    "wandb.use": boolean(),
    "wandb.mode": one_of("offline", "online", "disabled"),
    "tb.use": boolean(),
    "csv.use": boolean(),
    # every native agent
    "agent.actor_lr": number(0.0, 1.0, low_open=True),
    "agent.critic_lr": number(0.0, 1.0, low_open=True),
    "agent.encoder_lr": number(0.0, 1.0, low_open=True),
    "agent.feature_dim": integer(1),
    "agent.hidden_dim": integer(1),
    "agent.critic_target_tau": number(0.0, 1.0, low_open=True),
    "agent.bc_weight": number(0.0),
    "agent.bc_pretrain_steps": integer(0),
    "agent.actor_q_weight": number(0.0),
    "agent.normalize_low_dim": boolean(),
    "agent.critic_layer_norm": boolean(),
    # one agent's own keys (each agent yaml carries them)
    "agent.stddev_schedule": Rule(_schedule, "a stddev >= 0 or 'linear(init,final,duration)' with a positive "
                                             "duration in env frames", when="drqv2"),
    "agent.stddev_clip": number(0.0, when="drqv2"),
    "agent.privileged_critic": boolean(when="drqv2"),
    "agent.aux_weight": number(0.0, when="drqv2"),
    "agent.actor_objective": one_of("dpg", "crr", when="drqv2"),
    "agent.ibrl": boolean(when="drqv2"),
    "agent.cql_weight": number(0.0, when="drqv2"),
    "agent.teacher_weight": number(0.0, when="drqv2"),
    "agent.teacher_lr": number(0.0, 1.0, low_open=True, when="drqv2"),
    "agent.teacher_members": integer(1, when="drqv2"),
    "agent.parallel_target": Rule(lambda v: v == "auto" or isinstance(v, bool), "'auto', true or false",
                                  when="drqv2"),
    "agent.alpha_lr": number(0.0, 1.0, low_open=True, when="sac"),
    "agent.init_temperature": number(0.0, low_open=True, when="sac"),
    "agent.learnable_temperature": boolean(when="sac"),
    "agent.allow_pixels": boolean(when="sac"),
    # the pixel encoder
    "agent.augmentation_pad": integer(0, when="pixels"),
    "agent.precision": one_of("auto", "fp32", "bf16", when="pixels"),
    "agent.encoder_chunk": Rule(lambda v: v == "auto" or (_is_int(v) and v >= 0),
                                "'auto' or an integer >= 0 (0 = the whole batch at once)", when="pixels"),
    "agent.channels_last": Rule(lambda v: v == "auto" or isinstance(v, bool), "'auto', true or false",
                                when="pixels"),
}


def _select(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=_MISSING)


def check_value(key: str, value: Any) -> Any:
    """`value` for `key` by the table; returns it, or raises ConfigError naming what is allowed."""
    rule = RULES[key]
    if not rule.ok(value):
        raise ConfigError(f"{key}={value!r} is invalid: allowed {rule.allowed}")
    return value


def check_keys(cfg: DictConfig, keys: Iterable[str]) -> None:
    """These keys of `cfg` by the table; conf/ declares them all, so a missing one is an error."""
    for key in keys:
        value = _select(cfg, key)
        if value is _MISSING:
            raise ConfigError(f"config key '{key}' is missing")
        check_value(key, value)


def ring_capacity(cfg: DictConfig) -> int:
    """Transitions the online replay allocates: replay.size, but no more than the run can write
    (a 2000-frame pixel run used to allocate 250k rows, 7 GB). A resume to more frames grows it."""
    return min(int(cfg.replay.size), int(cfg.num_train_frames) + int(cfg.num_train_envs))


def _agent_fits_observations(cfg: DictConfig) -> None:
    """Checked before the agent's own keys: a wrong agent would be reported as missing keys."""
    if cfg.agent.name == "drqv2" and not cfg.pixels:
        raise ConfigError("agent.name='drqv2' needs pixels=true (got pixels=false): use agent.name=sac for "
                          "state-only runs")
    if cfg.agent.name == "sac" and cfg.pixels and not check_value("agent.allow_pixels", cfg.agent.allow_pixels):
        raise ConfigError("agent.name='sac' with pixels=true is not allowed unless agent.allow_pixels=true "
                          "(use agent.name=drqv2 for pixel runs)")


def _as_typed(cfg: DictConfig, key: str) -> Any:
    """The key's value as a user types it on the command line (booleans lower case)."""
    value = OmegaConf.select(cfg, key)
    return str(value).lower() if isinstance(value, bool) else value


def _relations(cfg: DictConfig) -> None:
    """The native engine's checks between keys, after each key passed on its own."""
    nstep, stack = cfg.replay.nstep, cfg.frame_stack
    if ring_capacity(cfg) // cfg.num_train_envs < nstep + stack + 1:
        raise ConfigError(f"replay.size={cfg.replay.size} is invalid: with num_train_envs={cfg.num_train_envs} "
                          f"it must hold at least replay.nstep + frame_stack + 1 = {nstep + stack + 1} steps per env")
    privileged = OmegaConf.select(cfg, "task.privileged_state", default=False) is True
    if cfg.agent.name == "drqv2" and not privileged:
        for key, used in (("agent.privileged_critic", cfg.agent.privileged_critic is True),
                          ("agent.aux_weight", cfg.agent.aux_weight > 0)):
            if used:
                raise ConfigError(f"{key}={OmegaConf.select(cfg, key)} is invalid with task.privileged_state=false: "
                                  f"it reads the cube pose the env gives only with task.privileged_state=true")
    if cfg.agent.name == "drqv2" and cfg.agent.ibrl is True and cfg.agent.bc_pretrain_steps <= 0:
        raise ConfigError(f"agent.ibrl=true is invalid with agent.bc_pretrain_steps={cfg.agent.bc_pretrain_steps}: "
                          "IBRL keeps the BC-pre-trained policy; use agent.bc_pretrain_steps > 0 (and demos > 0)")
    if cfg.agent.name == "drqv2" and cfg.agent.teacher_weight > 0:
        for key, ok, allowed in (("agent.privileged_critic", cfg.agent.privileged_critic is True, "true: the "
                                  "critic evaluates the teacher, which reads the cube pose"),
                                 ("agent.bc_pretrain_steps", cfg.agent.bc_pretrain_steps > 0, "> 0: the teacher "
                                  "is cloned from the demos then"),
                                 ("agent.ibrl", cfg.agent.ibrl is False, "false"),
                                 ("agent.actor_objective", cfg.agent.actor_objective == "dpg", "dpg")):
            if not ok:
                raise ConfigError(f"{key}={_as_typed(cfg, key)} is invalid with "
                                  f"agent.teacher_weight={cfg.agent.teacher_weight}: allowed {allowed}")
    if cfg.demos > 0:
        return
    for key, used, what, off in (
            ("demo_ratio", (cfg.demo_ratio or 0) > 0, "drawing a share of each batch from the demos", "null"),
            ("demo_noise", cfg.demo_noise > 0, "noise on the expert's demo actions", "0"),
            ("use_self_imitation", cfg.use_self_imitation, "adding successful episodes to the demos' share",
             "false"),
            ("agent.bc_pretrain_steps", cfg.agent.bc_pretrain_steps > 0, "BC pre-training", "0"),
            ("agent.bc_weight", cfg.agent.bc_weight > 0, "behaviour cloning", "0")):
        if used:
            raise ConfigError(f"{key}={_as_typed(cfg, key)} is invalid with demos=0: {what} needs demos; "
                              f"use demos > 0 or {key}={off}")


def validate_config(cfg: DictConfig, engine: str = "native") -> None:
    """Every key the engine reads, by the table, then (native) the relations between them."""
    native = engine == "native"
    if native:
        check_keys(cfg, ("agent.name", "pixels"))
        _agent_fits_observations(cfg)
    active = {None, cfg.agent.name, OmegaConf.select(cfg, "env.name"), "pixels" if native and cfg.pixels else None}
    check_keys(cfg, [k for k, r in RULES.items() if (native or not r.native) and r.when in active])
    if native:
        _relations(cfg)
    elif OmegaConf.select(cfg, "task.privileged_state", default=False) is True:
        raise ConfigError(f"task.privileged_state=true is invalid with engine={engine}: RoboBase's agents would "
                          "read the cube pose as an observation; allowed false")
    elif OmegaConf.select(cfg, "env.name") == "genesis_lift" and cfg.env.as_torch is True:
        raise ConfigError(f"env.as_torch=true is invalid with engine={engine}: RoboBase takes NumPy; allowed auto "
                          "or false")
