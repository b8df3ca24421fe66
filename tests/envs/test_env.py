"""The MuJoCo env through gymnasium: API, spaces, seeding, stages, bad input."""
from __future__ import annotations

from unittest import mock

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.config import ConfigError


@pytest.fixture(scope="module")
def pixel_env():
    env = gym.make("LiftCube-MuJoCo-v0")
    yield env
    env.close()


def test_gymnasium_env_checker_pixels(pixel_env):
    check_env(pixel_env.unwrapped, skip_render_check=False)


def test_gymnasium_env_checker_state_only():
    env = gym.make("LiftCube-MuJoCo-v0", pixels=False)
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"low_dim_state"} and obs["low_dim_state"].shape == (21,)
    env.close()


def test_privileged_state_is_the_cube_pose_the_info_reports():
    """task.privileged_state adds (7,) float32: cube position, cube minus TCP position and the
    cube's half size, the same values the info dict carries, at reset and after a step."""
    env = gym.make("LiftCube-MuJoCo-v0", pixels=False, privileged_state=True, curriculum_stage=4,
                   randomization={"cube_size": True})
    check_env(env.unwrapped)
    obs, info = env.reset(seed=3)
    for _ in range(2):
        p = obs["privileged_state"]
        assert p.shape == (7,) and p.dtype == np.float32
        np.testing.assert_allclose(p[:3], info["cube_pos"], atol=1e-6)
        np.testing.assert_allclose(p[3:6], info["gripper_to_cube"], atol=1e-6)
        assert p[6] == pytest.approx(float(info["cube_half_size"])) and p[6] != 0.015
        obs, _, _, _, info = env.step(env.action_space.sample())
    env.close()


def test_front_camera_sees_the_cube_where_the_wrist_camera_does_not():
    """cameras=[wrist, front]: two image keys. On the pixel preset's task (stage 4, cube in +-5 cm)
    the wrist camera misses the (red) cube at some starts; the fixed front camera sees it at
    (nearly) all of them. Genesis builds the wrist camera only and says so before it starts."""
    env = gym.make("LiftCube-MuJoCo-v0", curriculum_stage=4, image_size=64, cameras=["wrist", "front"],
                   randomization={"cube_xy_range": 0.05})
    check_env(env.unwrapped)
    seen = {"wrist": 0, "front": 0}
    for seed in range(20):
        obs, _ = env.reset(seed=10_000 + seed)
        assert set(obs) == {"low_dim_state", "rgb_wrist", "rgb_front"}
        for cam in seen:
            img = obs[f"rgb_{cam}"].astype(int)
            seen[cam] += int(((img[0] > 120) & (img[1] < 90) & (img[2] < 90)).sum() >= 4)
    env.close()
    assert seen["front"] >= 18 and seen["wrist"] <= 17, seen
    with pytest.raises(ConfigError, match=r"cameras=\['wrist', 'front'\] is not supported by the Genesis backend"):
        gym.make("LiftCube-Genesis-v0", cameras=["wrist", "front"])


def test_blank_images_zero_every_camera_and_change_nothing_else():
    """blank_images: the same episode (seed) with every image all zeros; state, reward and info
    as with the cameras on."""
    kw = dict(curriculum_stage=0, image_size=32, cameras=["wrist", "front"], privileged_state=True)
    seeing, blind = gym.make("LiftCube-MuJoCo-v0", **kw), gym.make("LiftCube-MuJoCo-v0", blank_images=True, **kw)
    check_env(blind.unwrapped)
    (a, ia), (b, ib) = seeing.reset(seed=5), blind.reset(seed=5)
    for _ in range(3):
        for cam in ("rgb_wrist", "rgb_front"):
            assert b[cam].shape == a[cam].shape and b[cam].dtype == np.uint8
            assert b[cam].max() == 0 and a[cam].std() > 5
        for key in ("low_dim_state", "privileged_state"):
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(ia["cube_pos"], ib["cube_pos"])
        action = seeing.action_space.sample()
        (a, ra, *_, ia), (b, rb, *_, ib) = seeing.step(action), blind.step(action)
        assert ra == rb
    for e in (seeing, blind):
        e.close()


def test_compile_is_refused_by_name_on_mujoco_and_without_a_compiler():
    with pytest.raises(ConfigError, match=r"compile=True is invalid with the MuJoCo backend.*Allowed: false"):
        gym.make("LiftCube-MuJoCo-v0", compile=True)
    import torch._inductor.config

    import envs.genesis_backend

    # A machine without g++: Inductor searches only this name.
    with torch._inductor.config.patch({"cpp.cxx": ("liftbase-no-such-compiler",)}), \
            mock.patch.object(envs.genesis_backend, "init_genesis", side_effect=AssertionError("Genesis started")):
        with pytest.raises(ConfigError, match=r"compile=True is invalid on this machine.*no-such-compiler.*g\+\+"):
            gym.make("LiftCube-Genesis-v0", compile=True)


def test_spaces_and_observation(pixel_env):
    obs, info = pixel_env.reset(seed=1)
    assert obs["rgb_wrist"].shape == (3, 84, 84) and obs["rgb_wrist"].dtype == np.uint8
    assert obs["low_dim_state"].shape == (18,) and obs["low_dim_state"].dtype == np.float32
    assert pixel_env.action_space.shape == (4,)
    assert obs["rgb_wrist"].std() > 5, "wrist image is blank"
    # the red cube is in view of the wrist camera at a stage-3 start
    img = obs["rgb_wrist"].astype(int)
    assert ((img[0] > 150) & (img[1] < 80) & (img[2] < 80)).sum() > 20
    frame = pixel_env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8


def test_image_size_is_configurable():
    env = gym.make("LiftCube-MuJoCo-v0", image_size=48)
    obs, _ = env.reset(seed=0)
    assert obs["rgb_wrist"].shape == (3, 48, 48)
    env.close()


def test_same_seed_same_episode():
    def rollout(seed):
        env = gym.make("LiftCube-MuJoCo-v0", pixels=False, curriculum_stage=4)
        obs, _ = env.reset(seed=seed)
        out = [obs["low_dim_state"]]
        rng = np.random.default_rng(0)
        for _ in range(5):
            obs, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            out.append(obs["low_dim_state"])
        env.close()
        return np.stack(out)

    a, b, c = rollout(3), rollout(3), rollout(4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], c[0])


def test_stages_start_where_task_md_says():
    def start(stage, seed=0):
        env = gym.make("LiftCube-MuJoCo-v0", pixels=False, curriculum_stage=stage)
        _, info = env.reset(seed=seed)
        env.close()
        return info

    s0 = start(0)
    assert abs(s0["cube_pos"][0] - 0.40) <= 0.03 + 1e-6 and abs(s0["cube_pos"][1] + 0.10) <= 0.03 + 1e-6
    assert np.linalg.norm(s0["gripper_to_cube"]) > 0.1
    s1, s2 = start(1), start(2)
    assert s1["is_grasping"] and s2["is_grasping"]
    assert s1["cube_z"] > 0.08 and s2["cube_z"] < 0.02, "stages 1 and 2 must differ (held high vs at table)"
    s3 = start(3)
    assert not s3["is_grasping"] and s3["gripper_state"] > 0.5
    assert 0.025 < s3["gripper_pos"][2] - s3["cube_z"] < 0.045
    s4 = start(4)
    horiz = np.linalg.norm(s4["gripper_to_cube"][:2])
    assert 0.07 < horiz < 0.13 and abs(s4["gripper_pos"][2] - 0.10) < 0.015


def test_stage0_starts_put_the_arm_home_above_or_near_the_stage0_cube():
    """stage0_starts weighs stage 0's three arm starts; the cube stays in stage 0's region."""
    def starts(weights, n=6):
        env = gym.make("LiftCube-MuJoCo-v0", pixels=False, curriculum_stage=0, stage0_starts=weights)
        infos = [env.reset(seed=seed)[1] for seed in range(n)]
        env.close()
        return infos

    home = [i["gripper_pos"] for i in starts([1, 0, 0], 2)]
    for info in starts([0, 1, 0]):
        assert abs(info["cube_pos"][0] - 0.40) <= 0.03 + 1e-6 and abs(info["cube_pos"][1] + 0.10) <= 0.03 + 1e-6
        assert np.linalg.norm(info["gripper_to_cube"][:2]) < 0.03 and 0.015 < info["gripper_pos"][2] - info["cube_z"] < 0.045
    for info in starts([0, 0, 1]):
        # 8-12 cm away in a random direction, or as far as the arm reaches that way
        assert 0.03 < np.linalg.norm(info["gripper_to_cube"][:2]) < 0.13 and abs(info["gripper_pos"][2] - 0.10) < 0.02
    mixed = [i["gripper_pos"] for i in starts([1, 1, 1], 12)]
    at_home = [any(np.allclose(g, h, atol=0.02) for h in home) for g in mixed]
    assert 0 < sum(at_home) < len(mixed), "a mix draws both home and other starts"


@pytest.mark.parametrize("kwargs,match", [
    ({"curriculum_stage": 0, "stage0_starts": [0, 0, 0]},
     r"stage0_starts=\[0, 0, 0\] is invalid: allowed three weights >= 0, not all 0"),
    ({"curriculum_stage": 0, "stage0_starts": [1, -1, 1]}, r"stage0_starts=\[1, -1, 1\] is invalid"),
    ({"curriculum_stage": 0, "stage0_starts": [1, 1]}, r"stage0_starts=\[1, 1\] is invalid"),
    ({"curriculum_stage": 3, "stage0_starts": [1, 1, 0]},
     r"stage0_starts=\[1, 1, 0\] is invalid: allowed \[1, 0, 0\] at curriculum_stage=3"),
    ({"curriculum_stage": 5}, r"curriculum_stage=5 is invalid: allowed one of 0, 1, 2, 3, 4"),
    ({"curriculum_stage": "3"}, r"curriculum_stage='3' is invalid"),
    ({"reward_version": "v12"}, r"reward_version='v12' is invalid: allowed one of v11, v19"),
    ({"image_size": 0}, r"image_size=0 is invalid"),
    ({"image_size": -84}, r"image_size=-84 is invalid"),
    ({"lift_height": 0.01}, r"lift_height=0.01 is invalid: allowed a number above the cube's rest height 0.015"),
    ({"hold_steps": 0}, r"hold_steps=0 is invalid"),
    ({"no_such_option": 1}, r"unknown task option\(s\) \['no_such_option'\]"),
    ({"cameras": ["top"]}, r"cameras=\['top'\] is invalid: allowed a non-empty list of distinct names from \['wrist', 'front'\]"),
    ({"cameras": []}, r"cameras=\[\] is invalid"),
    ({"cameras": ["wrist", "wrist"]}, r"cameras=\['wrist', 'wrist'\] is invalid"),
    ({"blank_images": "yes"}, r"blank_images='yes' is invalid: allowed true or false"),
])
def test_bad_config_fails_before_any_simulator(kwargs, match, monkeypatch):
    import envs.mujoco_backend as mb

    def boom(*a, **k):
        raise AssertionError("simulator started before validation")

    monkeypatch.setattr(mb, "MujocoBackend", boom)
    with pytest.raises(ConfigError, match=match):
        gym.make("LiftCube-MuJoCo-v0", **kwargs)


@pytest.mark.parametrize("action,match", [
    (np.zeros(3, np.float32), r"shape \(3,\): expected \(4,\)"),
    (np.zeros((1, 4), np.float32), r"shape \(1, 4\): expected \(4,\)"),
    (np.array([0, np.nan, 0, 0], np.float32), r"NaN/inf"),
    (np.array([0, 0, np.inf, 0], np.float32), r"NaN/inf"),
])
def test_bad_actions_never_reach_the_simulator(action, match):
    env = gym.make("LiftCube-MuJoCo-v0", pixels=False)
    env.reset(seed=0)
    data = env.unwrapped.backend.data
    t0, q0 = data.time, data.qpos.copy()
    with pytest.raises(ValueError, match=match):
        env.step(action)
    assert data.time == t0 and np.array_equal(data.qpos, q0)
    env.close()


def test_randomisation_applies_per_reset():
    env = gym.make("LiftCube-MuJoCo-v0", pixels=False, randomization={
        "cube_size": True, "cube_friction": True, "cube_color": True, "camera_jitter": True, "light": True})
    m = env.unwrapped.backend.model
    g = m.geom("cube").id  # the scene's cube, by its name in the MuJoCo model
    sizes, frictions = set(), set()
    for seed in range(4):
        _, info = env.reset(seed=seed)
        sizes.add(round(float(m.geom_size[g, 0]), 5))
        frictions.add(round(float(m.geom_friction[g, 0]), 4))
        assert 0.012 <= m.geom_size[g, 0] <= 0.018 and 0.5 <= m.geom_friction[g, 0] <= 1.5
        # the rewards measure heights from where this cube rests
        assert info["cube_half_size"] == pytest.approx(float(m.geom_size[g, 0]), abs=1e-6)
        assert info["cube_z"] == pytest.approx(info["cube_half_size"], abs=2e-3)
    assert len(sizes) == 4 and len(frictions) == 4, (sizes, frictions)  # each drawn anew per reset
    env.close()


def test_stepping_an_ended_episode_without_reset_is_refused():
    from gymnasium.error import ResetNeeded

    env = gym.make("LiftCube-MuJoCo-v0", pixels=False, episode_length=3, hold_steps=1)
    env.reset(seed=0)
    for _ in range(3):
        *_, trunc, info = env.step(np.zeros(4, np.float32))
    assert trunc and info["steps_left"] == 0
    with pytest.raises(ResetNeeded, match=r"call reset\(\)"):
        env.step(np.zeros(4, np.float32))
    env.reset(seed=1)
    env.step(np.zeros(4, np.float32))  # a reset makes it steppable again
    env.close()
