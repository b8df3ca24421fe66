"""Observation specs: what the engine reads from an env's observation space and stores in snapshots."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from gymnasium import spaces

from learning.replay import KeySpec

_TORCH_DTYPES = {np.dtype(np.uint8): torch.uint8, np.dtype(np.float32): torch.float32,
                 np.dtype(np.float64): torch.float32, np.dtype(np.int64): torch.int64}


def obs_spec(space: spaces.Dict) -> tuple[dict[str, KeySpec], int]:
    """Per-env Dict space of (F, ...) boxes -> ({key: KeySpec(frame_shape, dtype)}, F)."""
    spec, stacks = {}, set()
    for key, box in space.spaces.items():
        stacks.add(box.shape[0])
        spec[key] = KeySpec(tuple(int(d) for d in box.shape[1:]), _TORCH_DTYPES[np.dtype(box.dtype)])
    if len(stacks) != 1:
        shapes = {k: s.shape for k, s in space.spaces.items()}
        raise ValueError(f"observation keys disagree on the frame-stack axis: {shapes}")
    return spec, stacks.pop()


def spec_signature(spec: Mapping[str, KeySpec], frame_stack: int) -> dict[str, Any]:
    """A plain, comparable description stored in snapshots."""
    return {k: ((frame_stack, *s.frame_shape), str(s.dtype)) for k, s in sorted(spec.items())}
