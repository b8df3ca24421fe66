"""Agent registry: config name -> class."""
from __future__ import annotations

from typing import Mapping

import torch
from omegaconf import DictConfig

from learning.drqv2 import DrQV2Agent
from learning.replay import KeySpec
from learning.sac import SACAgent

AGENT_CLASSES = {"drqv2": DrQV2Agent, "sac": SACAgent}


def make_agent(agent_cfg: DictConfig, spec: Mapping[str, KeySpec], frame_stack: int, action_dim: int,
               device: torch.device) -> DrQV2Agent | SACAgent:
    """Build the agent named by `agent_cfg.name` for observations described by `spec`."""
    try:
        cls = AGENT_CLASSES[agent_cfg.name]
    except KeyError:
        raise ValueError(f"agent.name={agent_cfg.name!r} is invalid: expected one of {sorted(AGENT_CLASSES)}") from None
    return cls(spec, frame_stack, action_dim, agent_cfg, device)
