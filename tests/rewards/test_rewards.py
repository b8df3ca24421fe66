"""Golden values for every reward term of v11, v19 and v20 on hand-built states."""
from __future__ import annotations

import math

import pytest
import torch

import rewards

H = 0.08


def info(z=0.015, half=0.015, d=0.0, d_moving=0.0, grip=0.2, grasp=True, prev_grasp=True, hold=0,
         success=False, a=(0.0, 0.0, 0.0, 0.0), a_prev=(0.0, 0.0, 0.0, 0.0), steps_left=100):
    cube = torch.tensor([[0.25, 0.0, z]])
    return {
        "cube_pos": cube, "cube_z": cube[:, 2], "cube_half_size": torch.tensor([half]),
        "gripper_to_cube": torch.tensor([[d, 0.0, 0.0]]),
        "moving_finger_pos": cube + torch.tensor([[0.0, d_moving, 0.0]]),
        "gripper_state": torch.tensor([grip]),
        "is_grasping": torch.tensor([grasp]), "prev_is_grasping": torch.tensor([prev_grasp]),
        "hold_count": torch.tensor([hold]), "is_success": torch.tensor([success]),
        "action": torch.tensor([a]), "prev_action": torch.tensor([a_prev]),
        "steps_left": torch.tensor([float(steps_left)]),
    }


def terms(version, **kw):
    total, parts = rewards.get(version)(info(**kw))
    assert math.isclose(float(total), sum(float(v) for v in parts.values()), rel_tol=1e-6, abs_tol=1e-5)
    return {k: float(v) for k, v in parts.items()}


def test_available_and_unknown_version_lists_known():
    assert rewards.available()[:2] == ["v11", "v19"]
    with pytest.raises(KeyError, match=r"reward_version='v99' is unknown: allowed v11, v19"):
        rewards.get("v99")


def test_v19_declares_only_differences_and_registry_refuses_edits():
    from rewards.versions import V19

    assert V19.parent == "v11"
    assert set(V19.terms) == {"reach", "grasp", "lift_progress", "binary_lift", "threshold_ramp", "hold",
                              "action_rate"}
    assert set(rewards.resolve_terms("v19")) == set(rewards.resolve_terms("v11")) | {"threshold_ramp", "hold"}
    with pytest.raises(ValueError, match="never edited"):
        rewards.register(V19)


def test_v20_adds_only_the_rest_of_episode_at_success():
    from rewards.versions import V20

    assert V20.parent == "v19" and set(V20.terms) == {"success_rest"}
    assert set(rewards.resolve_terms("v20")) == set(rewards.resolve_terms("v19")) | {"success_rest"}
    v19, v20 = terms("v19", z=0.09, hold=10, success=True), terms("v20", z=0.09, hold=10, success=True, steps_left=150)
    assert v20.pop("success_rest") == pytest.approx(10.0 * 150)
    assert v20 == v19  # every other term as in v19
    assert terms("v20", z=0.09, hold=9, success=False, steps_left=150)["success_rest"] == 0.0
    assert terms("v20", z=0.09, hold=10, success=True, steps_left=0)["success_rest"] == 0.0


def test_table_lists_every_term_with_weight():
    table = rewards.get("v19").table()
    for name, term in rewards.resolve_terms("v19").items():
        assert name in table and f"{term.weight:.3g}" in table


# -- reach ----------------------------------------------------------------------------------
def test_reach_v11():
    assert terms("v11", d=0.05)["reach"] == pytest.approx(1 - math.tanh(0.5))


def test_reach_v19_far_is_plain_reach():
    assert terms("v19", d=0.05, grip=1.0, grasp=False)["reach"] == pytest.approx(1 - math.tanh(0.5))


def test_reach_v19_near_averages_moving_jaw_when_open():
    r = 1 - math.tanh(0.1)  # d = 0.01 -> >= 0.7
    rm = 1 - math.tanh(0.3)
    assert terms("v19", d=0.01, d_moving=0.03, grip=1.0, grasp=False)["reach"] == pytest.approx((r + rm) / 2)


def test_reach_v19_moving_reach_is_one_when_closed():
    r = 1 - math.tanh(0.1)
    assert terms("v19", d=0.01, d_moving=0.03, grip=0.1)["reach"] == pytest.approx((r + 1) / 2)


# -- shared terms ---------------------------------------------------------------------------
@pytest.mark.parametrize("v", ["v11", "v19"])
def test_push_down(v):
    assert terms(v, z=0.004, grasp=False, prev_grasp=False)["push_down"] == pytest.approx(-50 * 0.006)
    assert terms(v, z=0.015)["push_down"] == 0.0


@pytest.mark.parametrize("v", ["v11", "v19"])
def test_drop(v):
    assert terms(v, grasp=False, prev_grasp=True)["drop"] == -2.0
    assert terms(v, grasp=True, prev_grasp=True)["drop"] == 0.0
    assert terms(v, grasp=True, prev_grasp=False)["drop"] == 0.0


@pytest.mark.parametrize("v", ["v11", "v19"])
def test_target_height_and_success(v):
    assert terms(v, z=0.09)["target_height"] == 1.0
    assert terms(v, z=0.07)["target_height"] == 0.0
    assert terms(v, z=0.09, success=True)["success"] == 10.0
    assert terms(v, z=0.09)["success"] == 0.0


# -- grasp / lift ---------------------------------------------------------------------------
@pytest.mark.parametrize("v,w", [("v11", 0.25), ("v19", 1.5)])
def test_grasp_bonus(v, w):
    assert terms(v)["grasp"] == w
    assert terms(v, grasp=False)["grasp"] == 0.0


@pytest.mark.parametrize("v,w", [("v11", 2.0), ("v19", 4.0)])
def test_lift_progress(v, w):
    z = 0.05
    assert terms(v, z=z)["lift_progress"] == pytest.approx(w * (z - 0.015) / (H - 0.015))
    assert terms(v, z=z, grasp=False)["lift_progress"] == 0.0


def test_binary_lift_v11_needs_no_grasp_v19_does():
    assert terms("v11", z=0.03, grasp=False)["binary_lift"] == 1.0
    assert terms("v19", z=0.03, grasp=False)["binary_lift"] == 0.0
    assert terms("v19", z=0.03, grasp=True)["binary_lift"] == 1.0
    assert terms("v11", z=0.019)["binary_lift"] == 0.0


@pytest.mark.parametrize("v", ["v11", "v19", "v20"])
def test_heights_that_are_geometry_follow_the_cube_size(v):
    """A 4.4 cm cube (half 0.022) rests at z = 0.022: at rest it is neither lifted nor pushed
    down, and lift progress counts from there; the fixed 1.5 cm cube's golden values above
    are unchanged."""
    rest = terms(v, z=0.022, half=0.022)
    assert rest["binary_lift"] == 0.0 and rest["push_down"] == 0.0 and rest["lift_progress"] == 0.0
    assert terms(v, z=0.028, half=0.022)["binary_lift"] == 1.0          # 6 mm off the table
    assert terms(v, z=0.012, half=0.022)["push_down"] == pytest.approx(-50 * 0.005)
    w = 2.0 if v == "v11" else 4.0
    assert terms(v, z=0.05, half=0.022)["lift_progress"] == pytest.approx(w * (0.05 - 0.022) / (H - 0.022))


def test_term_parameters_are_data_on_the_version():
    assert rewards.resolve_terms("v19")["binary_lift"].params == {"clearance": 0.005}
    assert rewards.resolve_terms("v19")["threshold_ramp"].params == {"from_z": 0.04}
    fn = rewards.get("v19")
    assert "threshold_ramp" in fn.table() and "from_z=0.04" in fn.table()
    assert fn.as_dict()["terms"]["push_down"]["params"] == {"sink": 0.005}


def test_threshold_ramp_v19_only():
    assert "threshold_ramp" not in terms("v11", z=0.06)
    assert terms("v19", z=0.06)["threshold_ramp"] == pytest.approx(2 * (0.02 / 0.04))
    assert terms("v19", z=0.12)["threshold_ramp"] == pytest.approx(2.0)  # capped at 1
    assert terms("v19", z=0.035)["threshold_ramp"] == 0.0
    assert terms("v19", z=0.06, grasp=False)["threshold_ramp"] == 0.0


def test_hold_bonus_v19_only():
    assert "hold" not in terms("v11", z=0.09, hold=4)
    assert terms("v19", z=0.09, hold=4)["hold"] == pytest.approx(0.5 * 4)
    assert terms("v19", z=0.07, hold=4)["hold"] == 0.0


def test_action_rate_v11_above_6cm():
    kw = dict(a=(1.0, 0.0, 0.0, 1.0), a_prev=(0.0, 0.0, 0.0, -1.0))  # ||.||^2 = 5
    assert terms("v11", z=0.07, **kw)["action_rate"] == pytest.approx(-0.05)
    assert terms("v11", z=0.05, **kw)["action_rate"] == 0.0


def test_action_rate_v19_when_held_above_h():
    kw = dict(a=(1.0, 0.0, 0.0, 1.0), a_prev=(0.0, 0.0, 0.0, -1.0))
    assert terms("v19", z=0.09, hold=1, **kw)["action_rate"] == pytest.approx(-0.1)
    assert terms("v19", z=0.09, hold=0, **kw)["action_rate"] == 0.0
    assert terms("v19", z=0.07, hold=3, **kw)["action_rate"] == 0.0


def test_batch_first_per_env():
    """Rewards are computed per env: a batch equals its rows computed alone."""
    rows = [info(z=0.09, hold=3), info(z=0.004, grasp=False), info(d=0.2, grip=1.0, grasp=False)]
    batch = {k: torch.cat([r[k] for r in rows]) for k in rows[0]}
    total, _ = rewards.get("v19")(batch)
    alone = torch.cat([rewards.get("v19")(r)[0] for r in rows])
    assert torch.allclose(total, alone)
