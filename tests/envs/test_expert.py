"""The scripted expert proves the physics and the success test (MuJoCo, 20 seeded episodes)."""
from __future__ import annotations

import pytest

from launch.evaluate import run_expert_episodes

EPISODES = 20


@pytest.mark.slow
@pytest.mark.parametrize("stage", [0, 3, 4])
def test_expert_succeeds_from_free_stages(stage):
    s = run_expert_episodes(EPISODES, seed=100, curriculum_stage=stage, pixels=False)
    assert s["success_rate"] >= 0.9, s


@pytest.mark.slow
@pytest.mark.parametrize("stage", [1, 2])
def test_expert_holds_from_grasped_stages(stage):
    s = run_expert_episodes(EPISODES, seed=100, curriculum_stage=stage, pixels=False)
    assert s["success_rate"] >= 0.9, s
    assert s["mean_grasp_steps"] >= 10


@pytest.mark.parametrize("stage", [3])
def test_expert_drives_joint_pos_as_it_drives_ee_delta(stage):
    """action_mode=joint_pos: the expert's moves go through the IK controller to joint targets;
    the episodes are those of ee_delta (the targets make a round trip through [-1, 1])."""
    ee = run_expert_episodes(6, seed=100, curriculum_stage=stage, pixels=False)
    jp = run_expert_episodes(6, seed=100, curriculum_stage=stage, pixels=False, action_mode="joint_pos")
    assert jp["success_rate"] == ee["success_rate"] >= 0.9
    assert abs(jp["max_cube_z"] - ee["max_cube_z"]) < 1e-3
