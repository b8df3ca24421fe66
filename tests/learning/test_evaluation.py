"""The batched evaluation (learning.evaluation on the factory's eval env) against single gymnasium
envs: on the same episode seeds it gives the same episodes, whichever number of envs runs them.

The reference is `gym.make("LiftCube-MuJoCo-v0")`, one episode after another, read through its
public surface only (reset(seed), step, the info's task_success and cube_z); the batched road is
read through `run_episodes`' per-episode results.
"""
from __future__ import annotations

import functools
import importlib.util
import io
from contextlib import redirect_stderr
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
from tests.fakes import FakeEvalEnv

from envs.expert import ScriptedExpert, batch_info
from factories import GenesisLiftFactory, MujocoLiftFactory, task_kwargs
from launch.evaluate import ExpertPolicy
from learning import envio
from learning.agents import make_agent
from learning.evaluation import AgentPolicy, run_episodes
from runconfig.compose import default_config

EPISODES, SEED = 6, 4242
FIELDS = ("success", "return", "max_cube_z", "length")


def make_cfg(case: str, num_eval_envs: int | None = None) -> Any:
    """The run config of a case: the scripted expert (state, stage 3), SAC from state or DrQ-v2 on
    32x32 pixels (stage 2, short episodes)."""
    if case == "expert":
        over = {"agent.name": "sac", "pixels": False, "curriculum_stage.stage": 3}
    elif case == "sac":
        over = {"agent.name": "sac", "pixels": False, "curriculum_stage.stage": 2, "env.episode_length": 40}
    else:
        over = {"agent.name": "drqv2", "pixels": True, "visual_observation_shape": [32, 32],
                "curriculum_stage.stage": 2, "env.episode_length": 40, "agent.hidden_dim": 64,
                "agent.feature_dim": 16}
    return default_config(num_eval_envs=num_eval_envs, num_eval_episodes=EPISODES, device="cpu", **over)


@functools.lru_cache(maxsize=None)
def random_agent(case: str) -> Any:
    """A freshly initialised agent (seeded): deterministic, and far from the expert."""
    cfg = make_cfg(case)
    env = MujocoLiftFactory().make_batched_eval_env(cfg, 1)
    spec, frame_stack = envio.obs_spec(env.single_observation_space)
    env.close()
    torch.manual_seed(0)
    return make_agent(cfg.agent, spec, frame_stack, 4, torch.device("cpu")), list(spec)


def single_env_episodes(case: str) -> list[tuple]:
    """The episodes of seeds SEED, SEED+1, ... on one gymnasium env: for an agent the wrapper-chain
    form (frame stack, (1, 4) actions rescaled as RoboBase's RescaleFromTanh), as RoboBase evaluates."""
    cfg = make_cfg(case)
    kw = task_kwargs(cfg)
    if case == "expert":
        env = gym.make("LiftCube-MuJoCo-v0", **kw)
        t = env.unwrapped.cfg
        expert = ScriptedExpert(1, t.action_scale, t.lift_height, t.gripper_closed_below)
        start: Callable[[dict], None] = lambda info: expert.reset(batch_info(info))  # noqa: E731
        act: Callable[[dict, dict], np.ndarray] = lambda obs, info: expert.act(batch_info(info))[0].numpy()  # noqa: E731
    else:
        env = gym.make("LiftCube-MuJoCo-v0", frame_stack=int(cfg.frame_stack), action_sequence=1, **kw)
        agent, keys = random_agent(case)
        start = lambda info: None  # noqa: E731
        act = lambda obs, info: agent.act({k: torch.as_tensor(obs[k])[None] for k in keys}, 0,  # noqa: E731
                                          eval_mode=True).numpy()
    out = []
    for k in range(EPISODES):
        obs, info = env.reset(seed=SEED + k)
        start(info)
        ret, success, z, length, done = 0.0, 0.0, float(info["cube_z"]), 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs, info))
            ret += float(reward)
            success = max(success, float(info["task_success"]))
            z = max(z, float(info["cube_z"]))
            length += 1
            done = terminated or truncated
        out.append((success, ret, z, length))
    env.close()
    return out


_reference = functools.lru_cache(maxsize=None)(single_env_episodes)


def batched_episodes(case: str, num_eval_envs: int) -> list[tuple]:
    cfg = make_cfg(case, num_eval_envs)
    env = MujocoLiftFactory().make_batched_eval_env(cfg)
    assert env.num_envs == num_eval_envs
    if case == "expert":
        policy: Any = ExpertPolicy(env.task.cfg, env)
    else:
        agent, keys = random_agent(case)
        policy = AgentPolicy(agent, 0, keys, torch.device("cpu"))
    try:
        _, eps = run_episodes(policy, env, EPISODES, SEED, progress=False)
    finally:
        env.close()
    return [tuple(e[f] for f in FIELDS) for e in eps]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["expert", "sac", "drqv2_pixels"])
@pytest.mark.parametrize("num_eval_envs", [1, 3])
def test_batched_evaluation_gives_the_single_env_episodes(case: str, num_eval_envs: int) -> None:
    """Success, return, max cube z and length of every episode are bitwise those of a single env
    reset with the episode's seed (MuJoCo; the expert succeeds, the random agents do not)."""
    ref = _reference(case)
    got = batched_episodes(case, num_eval_envs)
    assert got == ref
    if case == "expert":
        assert sum(r[0] for r in ref) >= EPISODES - 1
    assert len({r[1] for r in ref}) == EPISODES  # the seeds give different episodes


def test_episode_queue_order_video_and_progress_on_a_fake_env() -> None:
    """Five episodes of fixed length on two envs: results in episode order, episode k seeded
    seed + k, the first two recorded frame by frame (first obs and every step), a progress line
    per episode in order."""
    env = FakeEvalEnv(num_envs=2, pixels=False, ep_len=4)
    seeds_used: list[dict[int, int]] = []

    class Up:
        def reset(self, info, mask) -> None:
            seeds_used.append(dict(env.seeds))

        def __call__(self, obs, info) -> torch.Tensor:
            return torch.tensor([[0.0, 0.0, 1.0, 0.0]]).repeat(env.num_envs, 1)

    err = io.StringIO()
    with redirect_stderr(err):
        stats, eps = run_episodes(Up(), env, 5, 100, record=2)
    assert stats["episodes"] == 5 and [e["length"] for e in eps] == [4] * 5
    assert all(e["max_cube_z"] == pytest.approx(0.055) and e["success"] == 1.0 for e in eps)
    assert [len(e["video"]) for e in eps] == [5, 5, 0, 0, 0]
    assert seeds_used[0] == {0: 100, 1: 101} and seeds_used[1] == {0: 102, 1: 103} and seeds_used[2][0] == 104
    lines = err.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"episode {k}/5" for k in range(1, 6)]


class ZeroPolicy:
    def reset(self, info, mask) -> None:
        pass

    def __call__(self, obs, info) -> torch.Tensor:
        return torch.zeros(len(info["cube_z"]), 4)


def test_stop_aborts_the_evaluation() -> None:
    """A stop signal mid-evaluation gives None (a partial evaluation would mislead)."""
    env = FakeEvalEnv(num_envs=3, pixels=False, ep_len=4)
    calls = iter(range(100))
    assert run_episodes(ZeroPolicy(), env, 6, 0, progress=False, stop=lambda: next(calls) >= 3) is None
    assert run_episodes(ZeroPolicy(), env, 6, 0, progress=False, stop=lambda: False) is not None


def test_eval_envs_default_per_backend_and_capped_by_the_episodes() -> None:
    cfg = make_cfg("sac")
    assert MujocoLiftFactory().eval_envs(cfg, 50) == 10 and GenesisLiftFactory().eval_envs(cfg, 50) == 16
    assert MujocoLiftFactory().eval_envs(cfg, 4) == 4 and MujocoLiftFactory().eval_envs(cfg) == EPISODES
    assert MujocoLiftFactory().eval_envs(make_cfg("sac", 3), 50) == 3


@pytest.mark.slow
def test_genesis_evaluates_on_one_batched_scene() -> None:
    """Genesis (state only): one scene of num_eval_envs envs runs the queue of episodes; the expert
    holds the grasped cube (stage 2) in every one."""
    if importlib.util.find_spec("genesis") is None:  # not imported here: the backend imports it in its order
        pytest.skip("genesis is not installed")
    cfg = default_config(**{"agent.name": "sac", "pixels": False, "curriculum_stage.stage": 2,
                            "env.name": "genesis_lift", "env.factory": "factories.GenesisLiftFactory",
                            "env.sim_device": "cpu", "env.renderer": "auto", "env.episode_length": 60,
                            "num_eval_envs": 3, "num_eval_episodes": 5})
    env = GenesisLiftFactory().make_batched_eval_env(cfg)
    try:
        assert env.num_envs == 3 and env.task.backend.num_envs == 3
        stats, eps = run_episodes(ExpertPolicy(env.task.cfg, env), env, 5, SEED, progress=False)
    finally:
        env.close()
    assert stats["episodes"] == 5 and stats["success_rate"] == 1.0
    assert all(1 <= e["length"] <= 60 for e in eps)
