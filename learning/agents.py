"""Agent registry: config name -> class, built from its typed config."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from learning.drqv2 import DrQV2Agent
from learning.replay import KeySpec
from learning.sac import SACAgent
from runconfig.schema import AgentConfig, agent_config

AGENT_CLASSES = {"drqv2": DrQV2Agent, "sac": SACAgent}


def make_agent(agent_cfg: AgentConfig | Mapping[str, Any], spec: Mapping[str, KeySpec], frame_stack: int,
               action_dim: int, device: torch.device) -> DrQV2Agent | SACAgent:
    """Build the agent named by `agent_cfg.name` (a typed config, or the run config's `agent` node)
    for observations described by `spec`."""
    cfg = agent_cfg if isinstance(agent_cfg, AgentConfig) else agent_config(agent_cfg)
    return AGENT_CLASSES[cfg.name](spec, frame_stack, action_dim, cfg, device)
