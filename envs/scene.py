"""The scene both backends build: colours, the cube's spawn point and the scene camera.

One place for what the MuJoCo and Genesis scenes must agree on (their parity tests compare
observations), and for what the task's randomisation starts from.
"""
from __future__ import annotations

CUBE_RGBA = (0.85, 0.1, 0.1, 1.0)     # red; task.randomization.cube_color jitters it per env
FLOOR_RGB = (0.55, 0.55, 0.5)
CUBE_SPAWN_XY = (0.25, 0.0)           # where the cube is built; every reset places it anew
SCENE_CAM_POS = (0.62, 0.42, 0.38)    # the video camera (not the wrist camera the agent sees)
SCENE_CAM_LOOKAT = (0.25, 0.0, 0.04)
SCENE_CAM_FOVY = 50
# The front camera (task.cameras: front): fixed, facing the robot across the workspace, so the
# cube is in view wherever it spawns and wherever the gripper starts; the wrist camera is not.
FRONT_CAM_POS = (0.52, 0.0, 0.25)
FRONT_CAM_LOOKAT = (0.22, 0.0, 0.055)
FRONT_CAM_FOVY = 50
