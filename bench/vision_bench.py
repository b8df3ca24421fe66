"""Does a policy on the pixels_cpu task need the camera? Blind and seeing baselines.

From the same scripted-expert demos the trainer collects (same env, same seed), three
policies are built and evaluated on the trainer's held-out eval episodes:
- open loop: the demos' mean action at each step, observations ignored;
- low-dim BC: an MLP on the frame-stacked `low_dim_state` alone (proprioception, no cube),
  standardised by the demos' statistics;
- image BC: the DrQ-v2 encoder and actor trained on the demos by regression (with the same
  random-shift augmentation), image and low-dim state as the agent sees them.
If the blind two fail where image BC and the RL preset succeed, the camera is what is used.

    python -m bench.vision_bench --seeds 1 2 3 --episodes 50
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

import envs  # noqa: F401  (headless GL before mujoco)
from learning import demos, envio
from learning.agents import make_agent
from envs.batched import rescale_from_tanh
from learning.evaluation import evaluate, run_episodes
from learning.networks import mlp
from learning.trainer import DEMO_SEED_OFFSET, EVAL_SEED_OFFSET
from runconfig.compose import compose_train
from runconfig.rules import validate_config


def compose_cfg(overrides: list[str]) -> DictConfig:
    cfg = compose_train(overrides)
    validate_config(cfg)
    return cfg


class OpenLoop:
    """Replays the demos' per-step mean action (the last one past the longest demo) in every env,
    each from its own episode's first step; a policy of the episode loop (`learning.evaluation`)."""

    def __init__(self, episodes: list[dict[str, Any]], action_dim: int) -> None:
        longest = max(len(e["action"]) for e in episodes)
        total, count = torch.zeros(longest, action_dim), torch.zeros(longest, 1)
        for e in episodes:
            t = len(e["action"])
            total[:t] += e["action"].float()
            count[:t] += 1
        self.mean, self.action_dim = total / count, action_dim  # (T, A)
        self.t = torch.zeros(0, dtype=torch.long)  # (N,) each env's step in its episode

    def reset(self, info: Mapping[str, torch.Tensor], mask: torch.Tensor) -> None:
        if len(self.t) != len(mask):
            self.t = torch.zeros(len(mask), dtype=torch.long)
        self.t[mask.cpu()] = 0

    def __call__(self, obs: Mapping[str, torch.Tensor], info: Mapping[str, torch.Tensor]) -> torch.Tensor:
        a = self.mean[self.t.clamp(max=len(self.mean) - 1)]  # (N, A)
        self.t += 1
        return rescale_from_tanh(a)  # as the agents' actions (learning.evaluation.AgentPolicy)


class LowDimBC(nn.Module):
    """MLP on the flattened (F, 18) proprioceptive state, standardised by the demos' mean and std."""

    def __init__(self, low: torch.Tensor, action_dim: int, hidden: int = 256) -> None:
        super().__init__()
        flat = low.flatten(1).float()                                      # (T, F*D) of the demos
        self.register_buffer("mean", flat.mean(0))
        self.register_buffer("std", flat.std(0).clamp_min(1e-3))
        self.net, self.action_dim = mlp(flat.shape[1], hidden, action_dim), action_dim

    def forward(self, low: torch.Tensor) -> torch.Tensor:                 # (B, F, D) -> (B, A)
        return torch.tanh(self.net((low.flatten(1) - self.mean) / self.std))

    @torch.no_grad()
    def act(self, obs: Mapping[str, torch.Tensor], step: int, eval_mode: bool) -> torch.Tensor:
        return self(obs["low_dim_state"].float())


class ImageBC:
    """The DrQ-v2 agent's encoder + actor, trained by regression on the demo actions."""

    def __init__(self, cfg: DictConfig, spec: Any, frame_stack: int, action_dim: int) -> None:
        self.agent = make_agent(cfg.agent, spec, frame_stack, action_dim, torch.device("cpu"))
        self.params = [*self.agent.encoder.parameters(), *self.agent.actor.parameters()]
        self.action_dim = action_dim

    def loss(self, obs: Mapping[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        a = self.agent
        a.features.observe(obs)  # the low-dim standardisation, when the preset has it
        h = a.encoder(a.features.image(obs), a.aug)
        return F.mse_loss(a.actor(h, a.features.low(obs), 0.1).mean, action)

    def act(self, obs: Mapping[str, torch.Tensor], step: int, eval_mode: bool) -> torch.Tensor:
        return self.agent.act(obs, step, eval_mode=True)


def fit(params: list[torch.nn.Parameter], loss_fn: Any, data: dict[str, Any], steps: int, batch: int,
        lr: float) -> float:
    """Adam on random minibatches of the demo transitions; returns the last loss."""
    opt = torch.optim.Adam(params, lr=lr)
    n = len(data["action"])
    g = torch.Generator().manual_seed(0)
    loss = torch.zeros(())
    for _ in range(steps):
        idx = torch.randint(0, n, (batch,), generator=g)
        loss = loss_fn({k: v[idx] for k, v in data["obs"].items()}, data["action"][idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())


POLICIES = ("open_loop", "lowdim_bc", "image_bc")


def run_seed(overrides: list[str], seed: int, episodes: int, bc_steps: int, batch: int,
             policies: tuple[str, ...] = POLICIES) -> dict[str, Any]:
    from factories import MujocoLiftFactory

    cfg = compose_cfg([*overrides, f"seed={seed}"])
    torch.manual_seed(seed)
    factory = MujocoLiftFactory()
    train_env, eval_env = factory.make_batched_env(cfg), factory.make_batched_eval_env(cfg, episodes)
    try:
        spec, fs = envio.obs_spec(train_env.single_observation_space)
        keys, action_dim = list(spec), int(train_env.action_dim)
        t0 = time.perf_counter()
        kept, tried = demos.collect(train_env, lambda n: factory.make_expert(cfg, n), int(cfg.demos),
                                    seed + DEMO_SEED_OFFSET, keys)
        data = {"obs": {k: torch.cat([e["obs"][k] for e in kept]) for k in keys},
                "action": torch.cat([e["action"] for e in kept]).float()}
        out: dict[str, Any] = {"seed": seed, "demos_kept": len(kept), "demos_tried": tried,
                               "transitions": len(data["action"]), "collect_s": time.perf_counter() - t0}

        def score(name: str, agent: Any, train_s: float) -> None:
            t = time.perf_counter()
            if isinstance(agent, OpenLoop):
                s, _ = run_episodes(agent, eval_env, episodes, seed + EVAL_SEED_OFFSET, progress=False)
                success, max_z = s["success_rate"], s["max_cube_z"]
            else:
                m, _ = evaluate(agent, eval_env, episodes, 0, seed + EVAL_SEED_OFFSET, keys, torch.device("cpu"))
                success, max_z = m["eval/success_rate"], m.get("eval/max_cube_z")
            out[name] = {"success": success, "max_cube_z": max_z, "train_s": train_s,
                         "eval_s": time.perf_counter() - t}
            print(f"seed {seed} {name}: success {100 * success:.0f} %", flush=True)

        if "open_loop" in policies:
            score("open_loop", OpenLoop(kept, action_dim), 0.0)
        if "lowdim_bc" in policies:
            low = LowDimBC(data["obs"]["low_dim_state"], action_dim)
            t = time.perf_counter()
            fit(list(low.parameters()), lambda o, a: F.mse_loss(low(o["low_dim_state"].float()), a), data,
                bc_steps, batch, 1e-3)
            score("lowdim_bc", low, time.perf_counter() - t)
        if "image_bc" in policies:
            img = ImageBC(cfg, spec, fs, action_dim)
            t = time.perf_counter()
            fit(img.params, img.loss, data, bc_steps, batch, 1e-4)
            img.agent.train(False)
            score("image_bc", img, time.perf_counter() - t)
        return out
    finally:
        train_env.close()
        eval_env.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiment", default="pixels_cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--bc-steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--override", nargs="*", default=[])
    ap.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    a = ap.parse_args()
    torch.set_num_threads(2)
    overrides = [f"experiment={a.experiment}", *a.override]
    res = {"overrides": overrides, "episodes": a.episodes, "bc_steps": a.bc_steps, "batch": a.batch,
           "demos": int(compose_cfg(overrides).demos),
           "seeds": [run_seed(overrides, s, a.episodes, a.bc_steps, a.batch, tuple(a.policies)) for s in a.seeds]}
    print("RESULT " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
