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
