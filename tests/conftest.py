"""Test set-up: the repo on sys.path, and headless GL set up by the project (envs/_headless.py)."""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import envs  # noqa: E402,F401  (headless GL before mujoco)
