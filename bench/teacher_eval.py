"""The pixel student against its state teacher, on the run's own held-out eval episodes.

    python -m bench.teacher_eval <run dir or snapshot of an agent.teacher_weight run> 50

Loads the snapshot the way `resume=` does and evaluates, on the eval env and the episodes the
trainer evaluates on, the pixel actor (what the run's eval.csv reports) and the frozen state
teacher it imitates (which reads the simulator's cube pose). Why: the student can only be as
good as what it copies on the states it reaches, so the teacher's success says whether a
student's shortfall is the teacher's or the camera's.
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


def main(path: str, episodes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_from_snapshot(path, tmp)
        if getattr(trainer.agent, "teacher", None) is None:
            raise SystemExit(f"{path}: the run has no teacher (agent.teacher_weight=0)")
        eval_env = make_factory(trainer.cfg).make_eval_env(trainer.cfg)
        seed = int(trainer.cfg.seed) + EVAL_SEED_OFFSET
        try:
            for name, policy in (("pixel student", trainer.agent), ("state teacher", TeacherAsAgent(trainer.agent))):
                m, _ = evaluate(policy, eval_env, episodes, trainer.frames, seed, trainer.keys, trainer.device)
                print(f"{name}: success {100 * m['eval/success_rate']:.0f} % over {episodes} episodes, "
                      f"return {m['eval/episode_reward']:.0f}, length {m['eval/episode_length']:.0f}", flush=True)
        finally:
            eval_env.close()
            trainer.close_envs()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
