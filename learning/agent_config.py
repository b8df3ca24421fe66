"""The typed config an agent receives: one frozen dataclass per agent, its fields the keys of
`conf/agent/<name>.yaml`.

The yaml holds the defaults and `runconfig.rules` the allowed values; both are checked before a
run starts, so an agent reads plain typed attributes and never a key with a fallback. A snapshot
written before a key existed gets that key's shipped default from the agent's yaml.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from envs.config import ConfigError

AGENT_CONF = Path(__file__).resolve().parents[1] / "conf" / "agent"


@dataclass(frozen=True)
class AgentConfig:
    """What every native agent reads."""

    name: str
    pixels: bool
    actor_lr: float
    critic_lr: float
    encoder_lr: float
    feature_dim: int
    hidden_dim: int
    critic_target_tau: float
    augmentation_pad: int                  # random-shift padding of the image augmentation (pixels)
    bc_weight: float                       # weight of the BC term on the demo rows (0: off)
    actor_q_weight: float                  # weight of the normalised policy term beside imitation terms
    bc_pretrain_steps: int                 # BC steps on the demos before the first env step
    normalize_low_dim: bool                # standardise the low-dim state by running batch statistics
    critic_layer_norm: bool                # LayerNorm in the Q heads' hidden layers
    precision: str                         # encoder speed (pixels): auto | fp32 | bf16
    encoder_chunk: int | str               # images per conv pass: auto | 0 (whole batch) | n
    channels_last: bool | str              # NHWC activations: auto | true | false


@dataclass(frozen=True)
class DrQV2Config(AgentConfig):
    stddev_schedule: float | str           # exploration std: a constant or 'linear(init,final,frames)'
    stddev_clip: float
    privileged_critic: bool                # the critic reads low-dim + privileged state instead of the image
    teacher_weight: float                  # weight of the state-teacher term on every row (0: no teacher)
    teacher_lr: float
    teacher_members: int                   # the teacher is the mean of this many cloned MLPs
    parallel_target: bool | str            # TD target on a second thread: auto | true | false


@dataclass(frozen=True)
class SACConfig(AgentConfig):
    init_temperature: float
    alpha_lr: float
    learnable_temperature: bool
    allow_pixels: bool                     # SAC on images (DrQ-style encoder) must be asked for


AGENT_CONFIGS: dict[str, type[AgentConfig]] = {"drqv2": DrQV2Config, "sac": SACConfig}


def _shipped(name: str) -> dict[str, Any]:
    """conf/agent/<name>.yaml as written (interpolations unresolved)."""
    path = AGENT_CONF / f"{name}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else {}


def agent_config(node: DictConfig | Mapping[str, Any]) -> AgentConfig:
    """The typed config of the agent `node.name` from its (validated) `agent` node. Keys the node
    lacks (a snapshot older than the key) take the shipped default; keys no agent reads are left."""
    values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    name = values.get("name")
    if name not in AGENT_CONFIGS:
        raise ConfigError(f"agent.name={name!r} is invalid: allowed {', '.join(AGENT_CONFIGS)}")
    cls = AGENT_CONFIGS[name]
    shipped = _shipped(name)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            value = values[f.name]
        elif f.name in shipped and not str(shipped[f.name]).startswith("${"):
            value = shipped[f.name]
        else:
            raise ConfigError(f"config key 'agent.{f.name}' is missing: the {name} agent reads it")
        kwargs[f.name] = float(value) if f.type == "float" and isinstance(value, int) else value
    return cls(**kwargs)
