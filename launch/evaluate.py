"""What `scripts/eval.py` and `scripts/record_expert.py` run: a snapshot's policy or the scripted
expert on the episode loop of `learning.evaluation`, and the block they print."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

import envs  # noqa: F401  (headless GL before mujoco/genesis)
from envs.batched import BatchedLiftEnv
from envs.config import TaskConfig, make_task_config
from envs.expert import ScriptedExpert
from envs.lift_env import make_mujoco_backend
from envs.task import LiftTask
from factories import MujocoLiftFactory, make_factory
from learning import envio
from learning.evaluation import Info, Obs, run_episodes, snapshot_policy, write_video
from learning.snapshot import check_obs_spec, read_snapshot


class ExpertPolicy:
    """The scripted expert of the env's task, for the N envs of a batch."""

    def __init__(self, cfg: TaskConfig, env: BatchedLiftEnv) -> None:
        self.env = env
        self.expert = ScriptedExpert(env.num_envs, cfg.action_scale, cfg.lift_height, cfg.gripper_closed_below)

    def reset(self, info: Info, mask: torch.Tensor) -> None:
        self.expert.reset(info, mask)

    def __call__(self, obs: Obs, info: Info) -> torch.Tensor:
        return self.env.from_ee_delta(self.expert.act(info))               # (N, A) in the task's action_mode


def evaluate_checkpoint(checkpoint: str, episodes: int, seed: int, out_dir: Path, video_episodes: int,
                        device: str = "cpu", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """scripts/eval.py: the snapshot's policy (mean action) on its own eval env."""
    for key, value, low in (("episodes", episodes, 1), ("seed", seed, 0), ("video_episodes", video_episodes, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{key}={value!r} is invalid: allowed an integer >= {low}")
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device={device!r} is invalid: allowed cpu or cuda[:index]")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is invalid here: this torch ({torch.__version__}) sees no CUDA device; "
                         "allowed cpu")
    path, payload = read_snapshot(checkpoint, key="checkpoint")
    cfg = OmegaConf.create(payload["config"])
    for k, v in (overrides or {}).items():
        OmegaConf.update(cfg, k, v, merge=True)
    env = make_factory(cfg).make_batched_eval_env(cfg, episodes)
    try:
        spec, frame_stack = envio.obs_spec(env.single_observation_space)
        check_obs_spec(payload["obs_spec"], envio.spec_signature(spec, frame_stack), path)
        policy = snapshot_policy(payload, cfg.agent, env, torch.device(device))
        stats, eps = run_episodes(policy, env, episodes, seed, video_episodes)
    finally:
        env.close()
    videos = [write_video(e["video"], out_dir / f"episode_{i:03d}.mp4") for i, e in enumerate(eps[:video_episodes])]
    return {"checkpoint": str(path), "frames": policy.frames, **stats,
            "curriculum_stage": int(cfg.curriculum_stage.stage), "reward_version": str(cfg.reward_version.name),
            "videos": [str(v) for v in videos if v]}


def run_expert_episodes(episodes: int, seed: int = 0, video_path: str | None = None,
                        video_episodes: int = 1, num_envs: int | None = None, **task_kwargs: Any) -> dict[str, Any]:
    """scripts/record_expert.py: the scripted expert on the MuJoCo task (`LiftCube-MuJoCo-v0`'s, built
    from `task_kwargs`), `num_envs` episodes at a time (None: MuJoCo's evaluation default); one mp4
    of the first `video_episodes` episodes at `video_path`."""
    cfg = make_task_config(**task_kwargs)
    n = max(1, min(num_envs or MujocoLiftFactory.default_eval_envs, episodes))
    env = BatchedLiftEnv(LiftTask(make_mujoco_backend(cfg, n), cfg, seed), 1)
    try:
        stats, eps = run_episodes(ExpertPolicy(cfg, env), env, episodes, seed, video_episodes if video_path else 0)
    finally:
        env.close()
    written = write_video([f for e in eps for f in e["video"]], Path(video_path)) if video_path else None
    return {**stats, "curriculum_stage": cfg.curriculum_stage, "reward_version": cfg.reward_version,
            "videos": [str(written)] if written else []}


def format_block(s: dict[str, Any]) -> str:
    """The familiar block printed by scripts/eval.py and scripts/record_expert.py."""
    return "\n".join([
        "=" * 44,
        f"Curriculum Stage:  {s['curriculum_stage']} (reward {s['reward_version']})",
        f"Episodes:          {s['episodes']}",
        f"Mean Reward:       {s['mean_reward']:.2f} +- {s['std_reward']:.2f}",
        f"Success Rate:      {100 * s['success_rate']:.1f} %",
        f"Max Cube Z:        {s['max_cube_z']:.3f} +- {s['std_max_cube_z']:.3f} m",
        f"Mean Grasp Steps:  {s['mean_grasp_steps']:.1f} (steps per episode with the cube between the jaws)",
        "=" * 44,
    ])
