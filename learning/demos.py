"""Scripted-expert demonstrations for the native engine, sampled RLPD-style, and BC pre-training on them.

The expert is rolled out in the training env itself, so demos have exactly the observations
(keys, shapes, frame stacking, pixels or state) the agent trains on. Only successful episodes
are kept. They live in a replay of their own, sized to fit them, so the online ring never
evicts them; each update draws `demo_ratio` of its batch from it (symmetric sampling, Ball
et al. 2023, "RLPD": 0.5) and marks those rows with `Batch.demo` for the optional BC term.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import replace
from typing import Any, Callable, Mapping

import torch

from learning.console import PROGRESS_S, duration, say
from learning.replay import Batch, KeySpec, ReplayBuffer

Episode = dict[str, Any]  # obs: {key: (T, F, ...)}, action (T, A), reward/terminated/truncated (T,)


def collect(env: Any, expert_factory: Any, episodes: int, seed: int, keys: list[str],
            stop: Callable[[], bool] | None = None) -> tuple[list[Episode], int]:
    """Roll out the expert for `episodes` episodes in the batched env (N envs in lockstep rounds).

    Each round resets all N envs and steps until the counted ones have finished their first
    episode (the others, and envs past their first episode, keep stepping unrecorded). Returns
    (the successful episodes, the number tried). The expert is built per round: `expert_factory(N)`.
    `stop()` is asked before every env step: when it says yes, collection ends at once (the round
    under way is not counted).
    """
    n = int(env.num_envs)
    kept: list[Episode] = []
    tried, rnd = 0, 0
    t0 = shown = time.perf_counter()
    while tried < episodes and not (stop and stop()):
        if time.perf_counter() - shown >= PROGRESS_S and tried:  # a wait of minutes: how far along
            shown = time.perf_counter()
            say(f"[demos] {tried}/{episodes} episodes, {len(kept)} kept, "
                f"ETA {duration((shown - t0) * (episodes - tried) / tried)}")
        take = min(n, episodes - tried)
        obs, info = env.reset(seed=seed + rnd * n)
        expert = expert_factory(n)
        expert.reset(info)
        steps: list[tuple[Any, ...]] = []
        live = torch.ones(n, dtype=torch.bool)
        end = torch.zeros(n, dtype=torch.long)
        success = torch.zeros(n, dtype=torch.bool)
        while bool(live[:take].any()):
            if stop is not None and stop():
                return kept, tried
            action = env.from_ee_delta(expert.act(info).float()).cpu()              # (N, A) in [-1, 1]
            step = env.step(action.to(env.device))
            steps.append(({k: obs[k].cpu() for k in keys}, action, step.reward.cpu().float(),
                          step.terminated.cpu(), step.truncated.cpu()))
            done = step.done.cpu() & live
            end[done] = len(steps)
            success |= done & (step.info["task_success"].cpu() > 0)
            live &= ~done
            obs, info = step.obs, step.info
        for i in torch.nonzero(success[:take]).flatten().tolist():
            t = int(end[i])
            kept.append({"obs": {k: torch.stack([s[0][k][i] for s in steps[:t]]) for k in keys},
                         "action": torch.stack([s[1][i] for s in steps[:t]]),
                         "reward": torch.stack([s[2][i] for s in steps[:t]]),
                         "terminated": torch.stack([s[3][i] for s in steps[:t]]),
                         "truncated": torch.stack([s[4][i] for s in steps[:t]])})
        tried += take
        rnd += 1
    return kept, tried


def demo_replay(episodes: list[Episode], spec: Mapping[str, KeySpec], frame_stack: int, action_dim: int,
                nstep: int, gamma: float, device: torch.device) -> ReplayBuffer:
    """A replay holding exactly these whole episodes, one after another in one stream."""
    total = sum(len(e["reward"]) for e in episodes)
    buf = ReplayBuffer(spec, frame_stack, action_dim, 1, total, nstep, gamma, device)
    for e in episodes:
        for t in range(len(e["reward"])):
            buf.add({k: v[t:t + 1] for k, v in e["obs"].items()}, e["action"][t:t + 1], e["reward"][t:t + 1],
                    e["terminated"][t:t + 1], e["truncated"][t:t + 1])
    return buf


def load_demos(episodes: int, env: Any, expert_factory: Any, seed: int, spec: Mapping[str, KeySpec],
               frame_stack: int, nstep: int, gamma: float, device: torch.device,
               stop: Callable[[], bool] | None = None) -> ReplayBuffer | None:
    """Collect, report and store the demos; None (with a warning) when the expert never succeeded,
    and None when `stop()` ended the collection early (see `collect`)."""
    t0 = time.perf_counter()
    say(f"[demos] rolling out the scripted expert for {episodes} episodes")
    kept, tried = collect(env, expert_factory, episodes, seed, list(spec), stop)
    if stop is not None and stop():
        say(f"[demos] collection stopped after {tried} of {episodes} episodes: none are kept")
        return None
    transitions = sum(len(e["reward"]) for e in kept)
    say(f"[demos] scripted expert: {len(kept)} of {tried} episodes succeeded and are kept "
          f"({transitions} transitions, {time.perf_counter() - t0:.1f} s)")
    if not kept:
        warnings.warn(f"demos={episodes}: the scripted expert succeeded in none of its {tried} episodes; "
                      "training continues without demos", stacklevel=2)
        return None
    return demo_replay(kept, spec, frame_stack, int(env.action_dim), nstep, gamma, device)


def load_dataset(root: str, env: Any, spec: Mapping[str, KeySpec], frame_stack: int, nstep: int, gamma: float,
                 device: torch.device) -> ReplayBuffer:
    """The episodes of a LeRobotDataset v3.0 directory (checked before the env was built, see
    learning.lerobot_format.check_dataset), as the demo replay of `env`'s task."""
    from learning.lerobot_io import dataset_demos

    t0 = time.perf_counter()
    task = env.task
    eps = dataset_demos(root, spec, task.cfg.action_mode, 1.0 / task.cfg.frame_skip_dt, task.cfg.cube_half_size,
                        task.joint_low, task.joint_high)
    say(f"[demos] {len(eps)} episodes ({sum(len(e['reward']) for e in eps)} transitions) from the LeRobotDataset "
        f"{root} ({time.perf_counter() - t0:.1f} s)")
    return demo_replay(eps, spec, frame_stack, int(env.action_dim), nstep, gamma, device)


def restore_demo_replay(state: Mapping[str, Any], spec: Mapping[str, KeySpec], frame_stack: int, action_dim: int,
                        nstep: int, gamma: float, device: torch.device) -> ReplayBuffer:
    buf = ReplayBuffer(spec, frame_stack, action_dim, 1, int(state["rows"]), nstep, gamma, device)
    buf.load_state_dict(state)
    return buf


def pretrain_bc(agent: Any, demos: ReplayBuffer, batch_size: int, done: int, steps: int,
                stop: Callable[[], str | None]) -> int:
    """Behaviour cloning on the demos up to `steps` BC steps in all, `done` of them already (a
    resumed run finishes the phase); `stop()` names a stop signal, and one ends the phase between
    two steps. Returns the BC steps done, for the snapshot."""
    if steps <= done:
        return done
    t0, first, last, start = time.perf_counter(), None, None, done
    say(f"[demos] BC pre-training: {steps - start} steps ...")
    shown = t0
    while done < steps and stop() is None:
        last = agent.bc_step(demos.sample(batch_size))
        first = last if first is None else first
        done += 1
        now = time.perf_counter()
        if now - shown >= PROGRESS_S:  # a wait of minutes: how far along, and how long still
            shown = now
            say(f"[demos] BC pre-training: {done}/{steps} steps, loss {float(last):.3f}, "
                f"ETA {duration((now - t0) * (steps - done) / (done - start))}")
    if stop() is not None:
        say(f"[demos] BC pre-training stopped by {stop()} after {done} of {steps} steps")
    elif first is not None:
        more = f" (continued from step {start})" if start else ""
        say(f"[demos] BC pre-training: {steps} steps{more}, loss {float(first):.3f} -> {float(last):.3f} "
            f"({time.perf_counter() - t0:.0f} s)")
    return done


def mixed_sample(online: ReplayBuffer, demos: ReplayBuffer | None, batch_size: int, ratio: float,
                 self_imitation: bool = False) -> Batch:
    """round(ratio * batch_size) demo transitions first, the rest online; `demo` marks the former
    (None when no demo is drawn: the plain online batch). With `self_imitation` the online
    episodes marked successful count as demos: the demo rows are drawn from both, in
    proportion to their sizes (RoboBase's `use_self_imitation`, after CQN)."""
    k = int(round(ratio * batch_size)) if demos is not None else 0
    if k == 0:
        return online.sample(batch_size)
    won = online.success_count() if self_imitation else 0
    k_won = int(round(k * won / (won + len(demos))))
    parts = [demos.sample(k - k_won)] if k > k_won else []
    if k_won:
        parts.append(online.sample(k_won, success_only=True))
    if k < batch_size:
        parts.append(online.sample(batch_size - k))
    dev = online.device
    flags = torch.cat([torch.ones(k, dtype=torch.bool, device=dev),
                       torch.zeros(batch_size - k, dtype=torch.bool, device=dev)])
    if len(parts) == 1:
        return replace(parts[0], demo=flags)
    return Batch({key: torch.cat([b.obs[key] for b in parts]) for key in parts[0].obs},
                 torch.cat([b.action for b in parts]), torch.cat([b.reward for b in parts]),
                 torch.cat([b.discount for b in parts]),
                 {key: torch.cat([b.next_obs[key] for b in parts]) for key in parts[0].next_obs}, flags)
