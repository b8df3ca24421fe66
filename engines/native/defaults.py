"""Default config of the native engine.

The keys reuse RoboBase's names (``num_train_frames``, ``replay.nstep``, ``agent.*`` ...) so one
Hydra vocabulary drives both engines; the Hydra yaml files are generated from this function.
All cadences (``*_steps``, ``*_every*``, ``num_explore_steps``, the stddev schedule) count ENV
FRAMES (transitions summed over the N train envs), not loop iterations, so changing
``num_train_envs`` does not silently change the schedule.
"""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

_DEFAULTS: dict[str, Any] = {
    "seed": 1,
    "pixels": True,
    "frame_stack": 3,
    "num_train_envs": 1,
    "num_train_frames": 1_000_000,
    "num_explore_steps": 4_000,          # env frames of uniform random actions
    "replay_size_before_train": 4_000,   # env frames stored before the first update
    "update_every_steps": 2,             # env frames per gradient update (UTD 0.5)
    "batch_size": 256,
    "eval_every_steps": 10_000,          # 0 disables evaluation
    "num_eval_episodes": 10,
    "save_snapshot": True,
    "snapshot_every_n": 50_000,
    "log_every": 1_000,
    "log_eval_video": True,
    "resume": None,                      # a run directory or a .pt snapshot
    "resume_replay": True,
    "device": "auto",                    # auto -> cuda if available else cpu
    "demos": 0,                          # scripted-expert episodes rolled out before training
    "demo_ratio": None,                  # share of each batch drawn from demos; None: 0.5 with demos
    "replay": {"size": 1_000_000, "nstep": 3, "gamma": 0.99},
    "wandb": {"use": False, "project": "liftbase", "entity": None, "name": None, "mode": "offline"},
    "tb": {"use": True},
    "csv": {"use": True},
    "agent": {
        "name": "drqv2",
        "actor_lr": 1e-4,
        "critic_lr": 1e-4,
        "encoder_lr": 1e-4,
        "feature_dim": 50,
        "hidden_dim": 1024,
        "critic_target_tau": 0.01,
        "stddev_schedule": "linear(1.0,0.1,500000)",
        "stddev_clip": 0.3,
        "augmentation_pad": 4,
        "bc_weight": 0.0,                # behaviour cloning on demo rows in the actor loss (0 = off)
        "precision": "auto",             # conv encoder speed settings, 'auto' per device (networks.py)
        "encoder_chunk": "auto",
        "channels_last": "auto",
        # SAC only
        "init_temperature": 0.1,
        "alpha_lr": 1e-4,
        "learnable_temperature": True,
        "allow_pixels": False,  # SAC on pixels (DrQ-style encoder) must be asked for
    },
}


def default_config(**overrides: Any) -> DictConfig:
    """A fresh DictConfig of the defaults; ``overrides`` are dotted keys, e.g. ``**{"agent.name": "sac"}``."""
    cfg = OmegaConf.create(_DEFAULTS)
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=True)
    return cfg
