"""Shared fixtures. The project sets up headless GL itself (envs/_headless.py)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import envs  # noqa: E402,F401  (headless GL before mujoco)


def to_batch(info: dict) -> dict[str, torch.Tensor]:
    """A single env's NumPy info dict -> a batch-of-one torch dict (for the expert)."""
    return {k: torch.as_tensor(np.asarray(v))[None] for k, v in info.items()}


@pytest.fixture
def batch():
    return to_batch
