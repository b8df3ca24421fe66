"""What each run key may hold, checked once before a run directory or simulator exists.

The rules are declared with the keys in `runconfig.schema`; `RULES` maps each dotted key to its
rule. A rule marked `native` is a key only the native engine reads, and one with `when` is read
only with that agent or env option (or with pixels), so it is checked only then. `_relations`
holds the checks between keys. The factories (RoboBase's entry) and the batched envs check their
own arguments against the same rules. Every error names the key, the bad value and what is
allowed.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from envs.config import ConfigError
from runconfig.keys import Rule, uses_demos
from runconfig.schema import declared_fields

WRAPPER_KEYS = ("num_train_envs", "frame_stack", "action_sequence")  # what a factory builds from
_MISSING = object()


def _rules() -> dict[str, Rule]:
    out: dict[str, Rule] = {}
    for name, field, option in declared_fields():
        rule = field.metadata.get("rule")
        if rule is None or name in out:
            continue
        out[name] = dataclasses.replace(rule, when=option) if option is not None and rule.when is None else rule
    return out


RULES: dict[str, Rule] = _rules()


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
    """Transitions the online replay allocates: replay.size, but no more than the run can write.
    A resume to more frames grows it."""
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
    if cfg.agent.name == "drqv2" and not privileged and cfg.agent.privileged_critic is True:
        raise ConfigError("agent.privileged_critic=True is invalid with task.privileged_state=false: it reads the "
                          "cube pose the env gives only with task.privileged_state=true")
    if cfg.agent.name == "drqv2" and cfg.agent.teacher_weight > 0:
        for key, ok, allowed in (("agent.privileged_critic", cfg.agent.privileged_critic is True, "true: the "
                                  "critic evaluates the teacher, which reads the cube pose"),
                                 ("agent.bc_pretrain_steps", cfg.agent.bc_pretrain_steps > 0, "> 0: the teacher "
                                  "is cloned from the demos then")):
            if not ok:
                raise ConfigError(f"{key}={_as_typed(cfg, key)} is invalid with "
                                  f"agent.teacher_weight={cfg.agent.teacher_weight}: allowed {allowed}")
    if uses_demos(cfg.demos):
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
                              f"use demos > 0 (or demos=<LeRobotDataset dir>) or {key}={off}")


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
