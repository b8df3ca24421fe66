"""Checks of the engine's config keys, run before any env, file or network is touched.

Each error names the key, the bad value and what is allowed, so a typo in a Hydra override
fails in a second instead of hours into a run.
"""
from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

AGENTS = ("drqv2", "sac")
MAX_DEMOS = 10_000  # expert episodes rolled out before training (each up to an episode of frames)
_SCHEDULE = re.compile(r"^\s*linear\(\s*([^,]+),\s*([^,]+),\s*([^,\)]+)\)\s*$")


def _get(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default="__missing__")
    if value == "__missing__":
        raise ValueError(f"config key '{key}' is missing")
    return value


def _int(cfg: DictConfig, key: str, minimum: int) -> int:
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key}={value!r} is invalid: expected an integer >= {minimum}")
    return value


def _num(cfg: DictConfig, key: str, low: float, high: float, low_open: bool = False) -> float:
    value = _get(cfg, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{key}={value!r} is invalid: expected a number in {bracket}{low}, {high}]")
    return float(value)


def _bool(cfg: DictConfig, key: str) -> bool:
    value = _get(cfg, key)
    if not isinstance(value, bool):
        raise ValueError(f"{key}={value!r} is invalid: expected true or false")
    return value


def check_schedule(key: str, value: Any) -> None:
    """A float, or 'linear(init,final,duration_frames)' with duration > 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{key}={value!r} is invalid: expected a stddev >= 0")
        return
    match = _SCHEDULE.match(str(value))
    try:
        ok = match is not None and float(match.group(3)) > 0 and float(match.group(1)) >= 0 \
            and float(match.group(2)) >= 0
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{key}={value!r} is invalid: expected a float or 'linear(init,final,duration)' "
                         "with a positive duration in env frames")


def check_encoder_options(cfg: DictConfig) -> None:
    """agent.precision, agent.encoder_chunk, agent.channels_last: a value or 'auto' (per device)."""
    precision = OmegaConf.select(cfg, "agent.precision", default="fp32")
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"agent.precision={precision!r} is invalid: expected 'auto', 'fp32' or 'bf16'")
    chunk = OmegaConf.select(cfg, "agent.encoder_chunk", default=0)
    if chunk != "auto" and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 0):
        raise ValueError(f"agent.encoder_chunk={chunk!r} is invalid: expected 'auto' or an integer >= 0 "
                         "(0 = the whole batch at once)")
    channels_last = OmegaConf.select(cfg, "agent.channels_last", default=False)
    if channels_last != "auto" and not isinstance(channels_last, bool):
        raise ValueError(f"agent.channels_last={channels_last!r} is invalid: expected 'auto', true or false")


def ring_capacity(cfg: DictConfig) -> int:
    """Transitions the online replay allocates: replay.size, but no more than the run can write
    (a 2000-frame pixel run used to allocate 250k rows, 7 GB). A resume to more frames grows it."""
    return min(int(cfg.replay.size), int(cfg.num_train_frames) + int(cfg.num_train_envs))


def validate_config(cfg: DictConfig) -> None:
    """Raise ValueError on the first bad engine key (naming key, value and what is allowed)."""
    _int(cfg, "seed", 0)
    pixels = _bool(cfg, "pixels")
    _int(cfg, "frame_stack", 1)
    _int(cfg, "num_train_envs", 1)
    _int(cfg, "num_train_frames", 1)
    if _get(cfg, "train_minutes") is not None:
        _num(cfg, "train_minutes", 0.0, 1e6, low_open=True)
    _int(cfg, "num_explore_steps", 0)
    _int(cfg, "replay_size_before_train", 0)
    _int(cfg, "update_every_steps", 1)
    _int(cfg, "batch_size", 1)
    _int(cfg, "eval_every_steps", 0)
    _int(cfg, "num_eval_episodes", 0)
    _bool(cfg, "save_snapshot")
    _int(cfg, "snapshot_every_n", 1)
    _int(cfg, "keep_snapshots", 0)
    _int(cfg, "log_every", 1)
    _bool(cfg, "log_eval_video")
    _bool(cfg, "eval_at_start")
    _bool(cfg, "resume_replay")
    resume = _get(cfg, "resume")
    if resume is not None and (not isinstance(resume, str) or not resume.strip()):
        raise ValueError(f"resume={resume!r} is invalid: expected null or a path (run directory or .pt file)")
    device = _get(cfg, "device")
    if not isinstance(device, str) or not re.match(r"^(auto|cpu|cuda(:\d+)?)$", device):
        raise ValueError(f"device={device!r} is invalid: expected 'auto', 'cpu', 'cuda' or 'cuda:<index>'")
    size = _int(cfg, "replay.size", 1)
    nstep = _int(cfg, "replay.nstep", 1)
    _num(cfg, "replay.gamma", 0.0, 1.0, low_open=True)
    rows = ring_capacity(cfg) // _get(cfg, "num_train_envs")
    if rows < nstep + _get(cfg, "frame_stack") + 1:
        raise ValueError(f"replay.size={size} is invalid: with num_train_envs={cfg.num_train_envs} it must hold "
                         f"at least replay.nstep + frame_stack + 1 = {nstep + cfg.frame_stack + 1} steps per env")
    demos = _int(cfg, "demos", 0)
    if demos > MAX_DEMOS:
        raise ValueError(f"demos={demos!r} is invalid: expected an integer from 0 to {MAX_DEMOS}")
    if _get(cfg, "demo_ratio") is not None:
        ratio = _num(cfg, "demo_ratio", 0.0, 1.0)
        if ratio > 0 and demos == 0:
            raise ValueError(f"demo_ratio={_get(cfg, 'demo_ratio')!r} is invalid with demos=0: use demos > 0 "
                             "or demo_ratio=null")
    if _bool(cfg, "use_self_imitation") and demos == 0:
        raise ValueError("use_self_imitation=true is invalid with demos=0: successful episodes join the demos' "
                         "share of each batch; use demos > 0 or use_self_imitation=false")
    pre = _int(cfg, "agent.bc_pretrain_steps", 0)
    if pre > 0 and demos == 0:
        raise ValueError(f"agent.bc_pretrain_steps={pre} is invalid with demos=0: BC pre-training needs demos; use "
                         "demos > 0 or agent.bc_pretrain_steps=0")
    bc = _num(cfg, "agent.bc_weight", 0.0, float("inf"))
    if bc > 0 and demos == 0:
        raise ValueError(f"agent.bc_weight={_get(cfg, 'agent.bc_weight')!r} is invalid with demos=0: behaviour "
                         "cloning needs demos; use demos > 0 or agent.bc_weight=0")
    _num(cfg, "agent.actor_q_weight", 0.0, float("inf"))
    _bool(cfg, "agent.normalize_low_dim")
    for key in ("wandb.use", "tb.use", "csv.use"):
        _bool(cfg, key)
    mode = _get(cfg, "wandb.mode")
    if mode not in ("offline", "online", "disabled"):
        raise ValueError(f"wandb.mode={mode!r} is invalid: expected 'offline', 'online' or 'disabled'")
    name = _get(cfg, "agent.name")
    if name not in AGENTS:
        raise ValueError(f"agent.name={name!r} is invalid: expected one of {list(AGENTS)}")
    if name == "drqv2" and not pixels:
        raise ValueError("agent.name='drqv2' needs pixels=true (got pixels=false): use agent.name=sac for "
                         "state-only runs")
    if name == "sac" and pixels and not _get(cfg, "agent.allow_pixels"):
        raise ValueError("agent.name='sac' with pixels=true is not allowed unless agent.allow_pixels=true "
                         "(use agent.name=drqv2 for pixel runs)")
    for key in ("actor_lr", "critic_lr", "encoder_lr"):
        _num(cfg, f"agent.{key}", 0.0, 1.0, low_open=True)
    _int(cfg, "agent.feature_dim", 1)
    _int(cfg, "agent.hidden_dim", 1)
    _num(cfg, "agent.critic_target_tau", 0.0, 1.0, low_open=True)
    # Only the keys the chosen agent reads are required (each agent yaml carries its own).
    if name == "drqv2":
        check_schedule("agent.stddev_schedule", _get(cfg, "agent.stddev_schedule"))
        _num(cfg, "agent.stddev_clip", 0.0, float("inf"))
    if pixels:
        _int(cfg, "agent.augmentation_pad", 0)
        check_encoder_options(cfg)
    if name == "sac":
        _num(cfg, "agent.alpha_lr", 0.0, 1.0, low_open=True)
        _num(cfg, "agent.init_temperature", 0.0, float("inf"), low_open=True)
        _bool(cfg, "agent.learnable_temperature")
