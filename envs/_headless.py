"""Headless OpenGL set-up, done by the project rather than by hand.

MuJoCo and Genesis pick their GL platform when first imported, and the two variables must
agree (a mismatch raises an ImportError about the platform). This module is imported by
``envs/__init__.py`` before anything imports mujoco or genesis.
"""
from __future__ import annotations

import os


def setup_headless_gl() -> None:
    """Select EGL (software or GPU) unless the user already chose a platform."""
    gl = os.environ.get("MUJOCO_GL") or os.environ.get("PYOPENGL_PLATFORM") or "egl"
    if gl not in ("egl", "osmesa"):
        # glfw / unset need a display, which these machines do not have.
        gl = "egl" if not os.environ.get("DISPLAY") else gl
    os.environ.setdefault("MUJOCO_GL", gl)
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"] if os.environ["MUJOCO_GL"] != "glfw" else "egl")
