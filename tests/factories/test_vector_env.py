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
    assert info["action_sequence_mask"].shape == (N,)  # an object array of the per-env (T,) masks
    assert all(m.tolist() == [1] and m.dtype == np.int64 for m in info["action_sequence_mask"])
    assert info["demo"].dtype == np.int64 and (info["demo"] == 0).all()
    assert all(info[f"_{k}"].all() for k in info if not k.startswith("_"))
    for k, v in info.items():
        assert len(v) == N, k
    assert set(np.unique(info["task_success"])) <= {0.0, 1.0}


def test_rescale_from_tanh_maps_onto_task_bounds(vec):
    """The task's bounds are [-1, 1]: RescaleFromTanh clamps and (up to float32 rounding) keeps the
    action, as the task reports it in info."""
    vec.reset(seed=3)
    a = np.tile(np.array([[[-1.5, 1.2, 0.3, -0.4]]], np.float32), (N, 1, 1))
    *_, info = vec.step(a)
    for row in info["action"]:
        np.testing.assert_allclose(row, [-1.0, 1.0, 0.3, -0.4], atol=1e-6)


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
    assert trunc.tolist() == [False, False, True] and r[2] == 0.0
    assert info["_final_observation"].tolist() == [False, False, True]
    fi = info["final_info"][2]  # env 2's top-level info is already its new episode's
    assert fi["invalid_action"] is True and fi["sim_fault"] is True  # the trainer cuts n-step returns there
    assert info["_invalid_action"].tolist() == [True, True, False]
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
    assert trunc.tolist() == [False, True, False]
    # gymnasium 0.29: env 1's top-level info is its new episode's reset info, which has no sim_fault
    assert info["sim_fault"].tolist() == [False, False, False] and info["_sim_fault"].tolist() == [True, False, True]
    assert info["steps_left"][1] == vec.task.cfg.episode_length and info["_steps_left"].all()
    fo = info["final_observation"][1]
    assert fo["low_dim_state"].shape == (F, 18) and fo["rgb_wrist"].shape == (F, 3, S, S)
    np.testing.assert_array_equal(fo["low_dim_state"][:-1], prev["low_dim_state"][1, 1:])
    fi = info["final_info"][1]
    assert fi["task_success"] == 0.0 and fi["sim_fault"] is True
    assert fi["demo"] == 0 and fi["action_sequence_mask"].tolist() == [1]
    assert info["final_info"][0] is None
    # env 1 restarted: its stack is refilled with its new first frame; the others continue
    assert all(np.array_equal(obs["low_dim_state"][1, 0], obs["low_dim_state"][1, j]) for j in range(F))
    assert np.isfinite(obs["low_dim_state"]).all()
    np.testing.assert_array_equal(obs["low_dim_state"][0, :-1], prev["low_dim_state"][0, 1:])
    assert vec.task.fault_count >= 1


def _structure(info: dict) -> dict:
    """Per key: dtype, and for object arrays the dtype and shape of the first entry."""
    out = {}
    for k, v in info.items():
        if k.startswith("final_"):
            continue
        first = next((x for x in v if x is not None), None) if v.dtype == object else None
        out[k] = (v.dtype, None if first is None else (np.asarray(first).dtype, np.shape(first)))
    return out


def test_info_is_what_gymnasium_vectorising_single_envs_gives():
    """Keys, `_k` masks, dtypes and auto-reset info of the batched env against gymnasium 0.29's
    SyncVectorEnv over single envs of the same task (RoboBase's chain vectorises this way)."""
    from gymnasium.vector import SyncVectorEnv
    from omegaconf import OmegaConf

    from factories import GenesisLiftFactory

    cfg = OmegaConf.create({"task": {"curriculum_stage": 3, "episode_length": 3, "hold_steps": 1},
                            "env": {"sim_device": "cpu"},
                            "pixels": False, "num_train_envs": 2, "frame_stack": 2, "action_sequence": 1,
                            "seed": 0})
    f = GenesisLiftFactory()
    batch, ref = f.make_train_env(cfg), SyncVectorEnv([lambda: f.make_eval_env(cfg) for _ in range(2)])
    try:
        infos = [batch.reset(seed=1)[1], ref.reset(seed=1)[1]]
        assert _structure(infos[0]) == _structure(infos[1]) and "action_sequence_mask" not in infos[0]
        a = np.zeros((2, 1, 4), np.float32)
        for t in range(3):  # the third step ends both episodes (episode_length=3): auto-reset
            (_, rb, *_, ib), (_, rr, *_, ir) = batch.step(a), ref.step(a)
            assert rb.dtype == rr.dtype == np.float64
            assert _structure(ib) == _structure(ir), t
            for k in ib:
                if k.startswith("_"):
                    assert ib[k].tolist() == ir[k].tolist(), (t, k)
        # both envs ended: top level is reset info only, so the step-only keys are gone
        assert ib["_final_info"].all() and "sim_fault" not in ib and "action_sequence_mask" not in ib
        assert ib["steps_left"].tolist() == ir["steps_left"].tolist() == [3.0, 3.0]
        assert sorted(ib["final_info"][0]) == sorted(ir["final_info"][0])
        assert ib["final_info"][0]["steps_left"] == 0.0 and ib["final_info"][0]["demo"] == 0
    finally:
        batch.close()
        ref.close()


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
