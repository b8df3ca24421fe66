"""The pixel student against its state teacher, on the run's own held-out eval episodes.

    python -m bench.teacher_eval <run dir or snapshot of an agent.teacher_weight run> 50   # 0: the critic line only

Loads the snapshot the way `resume=` does and evaluates, on the eval env and the episodes the
trainer evaluates on, the pixel actor (what the run's eval.csv reports) and the frozen state
teacher it imitates (which reads the simulator's cube pose). Why: the student can only be as
good as what it copies on the states it reaches, so the teacher's success says whether a
student's shortfall is the teacher's or the camera's.

First, on rows of the run's online replay, what its critic says of the two: Q of the student's
mean action against Q of the teacher's label, and the size of the two pulls on the student's
action in the actor loss, the Q term (`agent.actor_q_weight`, divided by the batch's mean |Q|
as in training) against the teacher term. Why: with a Q term on, this says whether RL moves the
student away from its teacher, and whether the critic rates the move as better.
"""
from __future__ import annotations

import sys
import tempfile
from typing import Any, Mapping

import torch

from bench.policy_noise import trainer_from_snapshot
from engines.evaluation import evaluate
from engines.native.trainer import EVAL_SEED_OFFSET
from engines.run import make_factory


class TeacherAsAgent:
    """What `evaluate` calls on an agent, answered by the teacher."""

    def __init__(self, agent: Any) -> None:
        self.teacher, self.action_dim = agent.teacher, agent.action_dim

    def act(self, obs: Mapping[str, torch.Tensor], step: int, eval_mode: bool) -> torch.Tensor:
        return self.teacher.label(obs)                                     # (1, A)


def critic_view(trainer: Any, rows: int = 1024) -> str:
    """One line: the critic on `rows` online replay rows, student mean against teacher label."""
    agent = trainer.agent
    batch = trainer.replay.sample(rows)
    with torch.no_grad():
        student = agent.policy_mean(batch.obs, augment=False)            # (B, A)
        teacher = agent.teacher.label(batch.obs)                          # (B, A)
        gap = (student - teacher).norm(dim=-1)                            # (B,)
    a = student.clone().requires_grad_(True)
    critic_in = agent.critic_inputs(None, batch.obs)  # a teacher needs the privileged critic: no image
    q = torch.min(*agent.critic(*critic_in, a))                           # (B,)
    (dq,) = torch.autograd.grad(q.sum(), a)                               # (B, A)
    with torch.no_grad():
        q_teacher = torch.min(*agent.critic(*critic_in, teacher))
        pull_q = dq.norm(dim=-1) / q.abs().mean()                        # (B,) at actor_q_weight=1
        pull_t = 2 * agent.teacher_weight * gap                           # (B,)
    return (f"critic on {rows} online rows: Q(student) {q.mean():.1f}, Q(teacher) {q_teacher.mean():.1f}, "
            f"student higher on {100 * (q > q_teacher).float().mean():.0f} % of rows; |student - teacher| "
            f"{gap.mean():.3f}; pull on the action, median over rows: "
            f"Q term {pull_q.median():.3f} x actor_q_weight (here {agent.actor_q_weight:g}), "
            f"teacher term {pull_t.median():.3f}")


def evaluate_both(trainer: Any, episodes: int) -> None:
    """Student and teacher on the run's eval env and eval episodes, one line each."""
    eval_env = make_factory(trainer.cfg).make_eval_env(trainer.cfg)
    seed = int(trainer.cfg.seed) + EVAL_SEED_OFFSET
    try:
        for name, policy in (("pixel student", trainer.agent), ("state teacher", TeacherAsAgent(trainer.agent))):
            m, _ = evaluate(policy, eval_env, episodes, trainer.frames, seed, trainer.keys, trainer.device)
            print(f"{name}: success {100 * m['eval/success_rate']:.0f} % over {episodes} episodes, "
                  f"return {m['eval/episode_reward']:.0f}, length {m['eval/episode_length']:.0f}", flush=True)
    finally:
        eval_env.close()


def main(path: str, episodes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_from_snapshot(path, tmp)
        try:
            if getattr(trainer.agent, "teacher", None) is None:
                raise SystemExit(f"{path}: the run has no teacher (agent.teacher_weight=0)")
            if trainer.replay.written > 0:
                print(critic_view(trainer), flush=True)
            if episodes > 0:
                evaluate_both(trainer, episodes)
        finally:
            trainer.close_envs()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
