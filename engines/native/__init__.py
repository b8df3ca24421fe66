"""The native off-policy engine: DrQ-v2 (pixels) and SAC (state) over N batched envs.

    from engines.native import NativeTrainer, default_config
    NativeTrainer(default_config(**{"agent.name": "drqv2"}), factory, work_dir).train()
"""
from engines.config import default_config
from engines.native.replay import Batch, KeySpec, ReplayBuffer
from engines.native.trainer import NativeTrainer
from engines.rules import validate_config

__all__ = ["Batch", "KeySpec", "NativeTrainer", "ReplayBuffer", "default_config", "validate_config"]
