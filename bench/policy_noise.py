"""How much exploration noise a trained policy tolerates, in the env it trains in.

    python -m bench.policy_noise <run dir or snapshot> 10 0.03 0.05 0.1 0.2

Loads the snapshot the way `resume=` does, then rolls the agent's mean action out in the
trainer's own batched env (not the eval env), once without noise and once per std with
Gaussian noise of that std added, as DrQ-v2 explores. Prints successes and mean return per
setting. Why: a BC-pre-trained pixel policy that succeeds in half its episodes fails in all of
them at the preset's exploration std (docs/learning.md), so its online episodes teach the
critic little but failure; this measures where that starts.
"""
from __future__ import annotations

import sys
import tempfile

import torch
from omegaconf import OmegaConf

import envs  # noqa: F401  (headless GL before mujoco/genesis)
from engines.native import default_config
from engines.native.networks import TruncatedNormal
from engines.native.snapshot import read_snapshot
from engines.native.trainer import NativeTrainer
from factories import GenesisLiftFactory, MujocoLiftFactory


def rollout(trainer: NativeTrainer, episodes: int, std: float | None, seed: int) -> tuple[int, float]:
    """Successes and mean return of `episodes` episodes of env 0, mean action (+ noise of `std`)."""
    env, agent, keys = trainer.train_env, trainer.agent, trainer.keys
    obs, _ = env.reset(seed=seed)
    done, successes, returns, ret = 0, 0, [], 0.0
    while done < episodes:
        with torch.no_grad():
            a = agent.act({k: obs[k] for k in keys}, trainer.frames, eval_mode=True)   # (N, A)
            if std is not None:
                a = TruncatedNormal(a, torch.full_like(a, std)).sample(clip=None).clamp(-1.0, 1.0)
        step = env.step(a)
        if not bool(step.reset[0]):          # a reset row carries no transition
            ret += float(step.reward[0])
        if bool(step.done[0]):
            done += 1
            successes += int(step.info["task_success"][0] > 0)
            returns.append(ret)
            ret = 0.0
        obs = step.obs
    return successes, sum(returns) / len(returns)


def trainer_from_snapshot(path: str, run_dir: str) -> NativeTrainer:
    """The trainer `resume=path` builds (agent in eval mode, no eval env), writing into run_dir."""
    _, payload = read_snapshot(path)
    # the shipped defaults under the run's config: keys added since the run get their defaults
    cfg = OmegaConf.merge(default_config(), OmegaConf.create(dict(payload["config"])))
    cfg.resume, cfg.eval_every_steps = path, 0    # the training env only
    factory = GenesisLiftFactory() if cfg.env.name == "genesis_lift" else MujocoLiftFactory()
    trainer = NativeTrainer(cfg, factory, run_dir)
    trainer.agent.train(False)
    return trainer


def main(path: str, episodes: int, stds: list[float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_from_snapshot(path, tmp)
        for std in [None, *stds]:
            successes, mean_return = rollout(trainer, episodes, std, int(trainer.cfg.seed) + 5_000_000)
            print(f"noise std {std or 0}: success {successes}/{episodes}, mean return {mean_return:.0f}",
                  flush=True)
        trainer.close_envs()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), [float(s) for s in sys.argv[3:]])
