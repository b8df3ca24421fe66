"""WrappedGenesisVectorEnv: each integrated transform against its definition (Genesis, CPU).

Genesis compiles kernels on first use (~60 s cold, ~10 s per scene warm), so scenes are
module-scoped and small.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.vector.utils import batch_space

from envs.lift_env import observation_space
from factories.vector_env import WrappedGenesisVectorEnv, stacked_space

pytestmark = pytest.mark.slow
N, F, S = 3, 3, 32


@pytest.fixture(scope="module")
def vec():
    env = WrappedGenesisVectorEnv({"curriculum_stage": 3, "image_size": S}, num_envs=N, frame_stack=F,
                                  action_sequence=1, sim_device="cpu", seed=0, as_torch=False)
    yield env
    env.close()


def test_spaces_batch_the_single_env_spaces(vec):
    single = stacked_space(observation_space(vec.task.cfg), F)
    assert vec.single_observation_space == single
    assert vec.observation_space == batch_space(single, N)
    assert vec.single_action_space.shape == (1, 4) and vec.action_space.shape == (N, 1, 4)
    obs, info = vec.reset(seed=0)
    assert obs["rgb_wrist"].shape == (N, F, 3, S, S) and obs["rgb_wrist"].dtype == np.uint8
    assert obs["low_dim_state"].shape == (N, F, 18)
    assert vec.observation_space.contains(obs)


def test_frame_stack_refill_on_reset_and_shift_on_step(vec):
    obs, _ = vec.reset(seed=1)
    for k in obs:  # FrameStack reset: F copies of the first frame
        assert all(np.array_equal(obs[k][:, 0], obs[k][:, j]) for j in range(F))
    prev = obs
    obs, *_ = vec.step(np.zeros((N, 1, 4), np.float32))
    for k in obs:
        np.testing.assert_array_equal(obs[k][:, :-1], prev[k][:, 1:])
    assert not np.array_equal(obs["low_dim_state"][:, -1], prev["low_dim_state"][:, -1])


def test_info_keys_per_env(vec):
    vec.reset(seed=2)
    _, r, term, trunc, info = vec.step(np.zeros((N, 1, 4), np.float32))
    assert r.shape == term.shape == trunc.shape == (N,)
    assert info["action_sequence_mask"].shape == (N, 1) and (info["action_sequence_mask"] == 1).all()
    assert info["demo"].shape == (N,) and (info["demo"] == 0).all()
    for k, v in info.items():
        assert len(v) == N, k
    assert set(np.unique(info["task_success"])) <= {0.0, 1.0}


def test_rescale_from_tanh_maps_onto_task_bounds(vec):
    vec.reset(seed=3)
    lo, hi = vec._low.clone(), vec._high.clone()
    try:
        vec._low[:] = torch.tensor([0.0, 0.0, 0.0, -1.0])
        vec._high[:] = torch.tensor([1.0, 0.5, 0.2, 1.0])
        a = np.tile(np.array([[[-1.0, 1.0, 0.0, 0.5]]], np.float32), (N, 1, 1))
        *_, info = vec.step(a)
        np.testing.assert_allclose(info["action"][0], [0.0, 0.5, 0.1, 0.5], atol=1e-6)
    finally:
        vec._low[:], vec._high[:] = lo, hi


def test_bad_action_shape_rejected_before_the_simulator(vec):
    vec.reset(seed=4)
    steps = vec.task.steps.clone()
    with pytest.raises(ValueError, match=r"expected \(3, 1, 4\)"):
        vec.step(np.zeros((N, 4), np.float32))
    assert torch.equal(vec.task.steps, steps)


def test_one_env_with_a_nan_action_is_reset_and_the_others_step_on(vec, caplog):
    obs, _ = vec.reset(seed=4)
    prev, *_ = vec.step(np.zeros((N, 1, 4), np.float32))
    a = np.zeros((N, 1, 4), np.float32)
    a[2, 0, 1] = np.nan
    with caplog.at_level("WARNING"):
        obs, r, term, trunc, info = vec.step(a)
    assert info["invalid_action"].tolist() == [False, False, True]
    assert trunc.tolist() == [False, False, True] and r[2] == 0.0
    assert info["_final_observation"].tolist() == [False, False, True]
    assert info["final_info"][2]["sim_fault"] in (True, 1)  # the trainer cuts n-step returns there
    np.testing.assert_array_equal(obs["low_dim_state"][0, :-1], prev["low_dim_state"][0, 1:])  # env 0 moved on
    assert all(np.array_equal(obs["low_dim_state"][2, 0], obs["low_dim_state"][2, j]) for j in range(F))
    assert np.isfinite(obs["low_dim_state"]).all()
    assert "non-finite action for env(s) [2]" in caplog.text


def test_autoreset_final_observation_and_fault_in_one_env(vec, monkeypatch):
    obs, _ = vec.reset(seed=5)
    for _ in range(2):
        prev, _r, _t, _tr, _i = vec.step(np.zeros((N, 1, 4), np.float32))
    real_read = vec.task.backend.read

    def faulty_read():
        s = real_read()
        s.cube_pos[1] = float("nan")  # env 1's physics blows up
        return s

    monkeypatch.setattr(vec.task.backend, "read", faulty_read)
    obs, r, term, trunc, info = vec.step(np.zeros((N, 1, 4), np.float32))
    monkeypatch.setattr(vec.task.backend, "read", real_read)
    assert info["_final_observation"].tolist() == [False, True, False]
    assert info["sim_fault"].tolist() == [False, True, False] and trunc.tolist() == [False, True, False]
    fo = info["final_observation"][1]
    assert fo["low_dim_state"].shape == (F, 18) and fo["rgb_wrist"].shape == (F, 3, S, S)
    np.testing.assert_array_equal(fo["low_dim_state"][:-1], prev["low_dim_state"][1, 1:])
    fi = info["final_info"][1]
    assert fi["task_success"] == 0.0 and fi["sim_fault"] is True or fi["sim_fault"] == 1
    assert info["final_info"][0] is None
    # env 1 restarted: its stack is refilled with its new first frame; the others continue
    assert all(np.array_equal(obs["low_dim_state"][1, 0], obs["low_dim_state"][1, j]) for j in range(F))
    assert np.isfinite(obs["low_dim_state"]).all()
    np.testing.assert_array_equal(obs["low_dim_state"][0, :-1], prev["low_dim_state"][0, 1:])
    assert vec.task.fault_count >= 1


def test_batch_equals_single_env_runs_from_the_same_seeds():
    kw = {"curriculum_stage": 4, "pixels": False}
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (8, 2, 1, 4)).astype(np.float32)
    batch = WrappedGenesisVectorEnv(kw, num_envs=2, frame_stack=1, action_sequence=1, sim_device="cpu",
                                    seed=0, as_torch=False)
    ob, _ = batch.reset(seed=10)
    traj_b = [ob["low_dim_state"]]
    for a in actions:
        ob, *_ = batch.step(a)
        traj_b.append(ob["low_dim_state"])
    traj_b = np.stack(traj_b)  # (T, 2, 1, 21)
    batch.close()
    for i in range(2):
        one = WrappedGenesisVectorEnv(kw, num_envs=1, frame_stack=1, action_sequence=1, sim_device="cpu",
                                      seed=0, as_torch=False)
        o, _ = one.reset(seed=10 + i)
        traj = [o["low_dim_state"]]
        for a in actions:
            o, *_ = one.step(a[i:i + 1])
            traj.append(o["low_dim_state"])
        one.close()
        np.testing.assert_allclose(np.stack(traj)[:, 0], traj_b[:, i], atol=2e-4)


def test_batch_renderer_needs_cuda_and_says_so():
    from envs.config import ConfigError

    with pytest.raises(ConfigError, match=r"renderer='batch' is invalid here: .*CUDA.*allowed on CPU: auto, rasterizer"):
        WrappedGenesisVectorEnv({"curriculum_stage": 3}, num_envs=1, frame_stack=1, action_sequence=1,
                                sim_device="cpu", seed=0, as_torch=False, renderer="batch")
