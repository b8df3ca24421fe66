"""WrappedGenesisVectorEnv: the batched lift env (`envs.batched`) as a gymnasium 0.29 VectorEnv, for RoboBase.

The native engine trains on `envs.batched.BatchedLiftEnv` directly; this is its adapter at
RoboBase's edge (NumPy out, same-step auto-reset, the wrapper chain's info).

RoboBase applies RescaleFromTanh -> FrameStack -> ActionSequence -> AppendDemoInfo to each
single env and then vectorises. A natively batched Genesis scene cannot be wrapped that way,
so this class integrates the same transforms for all N envs at once, with the same
semantics (checked against their definitions in tests/factories/test_vector_env.py):

* `is_success` -> `task_success` (0/1) in info, for every env;
* RescaleFromTanh: actions in [-1, 1] map linearly onto the task's action bounds;
* FrameStack on axis 1: obs[k] is (N, F, ...); a reset env's stack is refilled with its
  first observation;
* ActionSequence (T = 1 for RL): actions are (N, T, 4), `action_sequence_mask` in every step's
  info (not in reset's);
* AppendDemoInfo: `demo` zeros in info.
Auto-reset happens in the same step (gymnasium 0.29): `_final_observation`, `final_observation[i]`
(env i's stacked (F, ...) obs), `final_info[i]` (its last step's info, with `task_success`).
With NumPy out (RoboBase's edge) the info is what gymnasium's vector envs build from single envs:
every key `k` has its mask `_k` (N,); scalars are float64/int64/bool arrays, vectors object arrays
of per-env arrays; a finished env's entries hold its NEW episode's reset info (keys a reset does
not give are masked out). With torch out (`as_torch`) the info stays (N, ...) tensors.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from envs.actions import ACTION_MEANING
from envs.batched import BatchedLiftEnv, rescale_from_tanh, stacked_space  # noqa: F401 (stacked_space: API)
from envs.config import make_task_config
from envs.genesis_env import make_genesis_backend
from envs.lift_env import info_to_numpy
from envs.task import LiftTask
from runconfig.rules import check_value


def check_wrapper_args(frame_stack: Any, action_sequence: Any) -> None:
    """The wrapper chain's own parameters, by the run keys' rules; called before any simulator is built."""
    check_value("frame_stack", frame_stack)
    check_value("action_sequence", action_sequence)


def gym_vector_info(info: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """(N, ...) tensors -> the dict gymnasium 0.29's `VectorEnv._add_info` builds from N single-env
    infos: a scalar key becomes a float64 / int64 / bool array (the Python type of `.item()`),
    a vector key an object array of per-env arrays, and each key `k` gets its mask `_k` (N,).
    Every array has memory of its own (the scalars' astype copies, the vectors are copied once),
    as the single envs' infos have: none is a view of the batch's tensors."""
    out: dict[str, np.ndarray] = {}
    for k, v in info.items():
        n = v.shape[0]
        if v.dim() == 1:
            a = v.numpy(force=True)
            arr = a.astype({"f": np.float64, "b": bool}.get(a.dtype.kind, np.int64))
        else:
            a = v.detach().to("cpu", copy=True).numpy()
            arr = np.empty(n, dtype=object)
            for i in range(n):  # object arrays cannot be filled from a 2-D array at once
                arr[i] = a[i]
        out[k] = arr
        out[f"_{k}"] = np.ones(n, bool)
    return out


def merge_rows(out: dict[str, np.ndarray], key: str, values: np.ndarray, rows: np.ndarray) -> None:
    """out[key][rows] = values[rows], creating the key (masked to `rows`) if out lacks it."""
    if key not in out:
        out[key] = np.zeros_like(values) if values.dtype != object else np.full(len(values), None, object)
        out[f"_{key}"] = np.zeros(len(values), bool)
    out[key][rows] = values[rows]
    out[f"_{key}"][rows] = True


class WrappedVectorEnv(gym.vector.VectorEnv):
    """The RoboBase wrapper chain over the batched env contract (`envs.batched.BatchedLiftEnv`),
    with gymnasium 0.29's same-step auto-reset."""

    def __init__(self, task: LiftTask, frame_stack: int, action_sequence: int, autoreset: bool,
                 as_torch: bool) -> None:
        check_wrapper_args(frame_stack, action_sequence)
        self.env = BatchedLiftEnv(task, frame_stack, isolate_invalid=autoreset)
        self.task, self.frame_stack, self.action_sequence = task, frame_stack, action_sequence
        self.autoreset, self.as_torch = autoreset, as_torch
        n = task.n
        self.single_observation_space = self.env.single_observation_space
        self.single_action_space = spaces.Box(-1.0, 1.0, (action_sequence, task.action_dim), np.float32)
        super().__init__(n, self.single_observation_space, self.single_action_space)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)

    # -- helpers ---------------------------------------------------------------------------
    def _out(self, x: torch.Tensor) -> Any:
        return x if self.as_torch else x.numpy(force=True)  # CPU: shares memory, no copy

    def _obs(self, obs: dict[str, torch.Tensor]) -> dict[str, Any]:
        # The stacks are rebuilt (not written in place) every step, so no copy is needed.
        return {k: self._out(v) for k, v in obs.items()}

    def _wrapped(self, info: dict[str, torch.Tensor], step: bool) -> dict[str, torch.Tensor]:
        """The task's info plus what the wrappers add: AppendDemoInfo's `demo` (N,) and, on steps
        only, ActionSequence's `action_sequence_mask` (N, T), both int64 as RoboBase's are."""
        dev = self.task.device
        out = {**info, "demo": torch.zeros(self.num_envs, dtype=torch.int64, device=dev)}
        if step:
            out["action_sequence_mask"] = torch.ones(self.num_envs, self.action_sequence, dtype=torch.int64,
                                                     device=dev)
        return out

    def _info(self, info: dict[str, torch.Tensor], reset_info: dict[str, torch.Tensor] | None = None,
              done: torch.Tensor | None = None) -> dict[str, Any]:
        """Torch out: the (N, ...) tensors. NumPy out: gymnasium's vector info, in which the
        `done` envs (N,) show `reset_info`."""
        if self.as_torch:
            return info
        out = gym_vector_info(info)
        if done is not None and reset_info is not None:
            d = done.numpy(force=True)
            for k, v in gym_vector_info(reset_info).items():
                if not k.startswith("_"):
                    merge_rows(out, k, v, d)
            for k in [k for k in out if not k.startswith("_") and k not in reset_info]:
                out[k][d] = None if out[k].dtype == object else 0  # as an env whose info lacks k
                out[f"_{k}"][d] = False
                if not out[f"_{k}"].any():  # no env has it: gymnasium has no such key at all
                    del out[k], out[f"_{k}"]
        return out

    # -- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed if seed is None or isinstance(seed, int) else int(seed[0]))
        return self._obs(obs), self._info(self._wrapped(info, step=False))

    def step(self, actions):
        a = torch.as_tensor(actions, device=self.task.device, dtype=torch.float32)
        if a.shape != (self.num_envs, self.action_sequence, self.task.action_dim):
            raise ValueError(f"actions have shape {tuple(a.shape)}: expected ({self.num_envs}, "
                             f"{self.action_sequence}, {self.task.action_dim}) = (envs, action sequence, "
                             f"{ACTION_MEANING[self.task.cfg.action_mode]})")
        s = self.env.step(rescale_from_tanh(a[:, 0]))
        done = s.done
        info = self._wrapped(s.info, step=True)
        if not (self.autoreset and done.any()):
            return self._obs(s.obs), self._out_reward(s.reward), self._out(s.terminated), self._out(s.truncated), \
                self._info(info)
        idx = torch.nonzero(done).flatten().tolist()
        final_obs = np.empty(self.num_envs, dtype=object)
        final_info = np.empty(self.num_envs, dtype=object)
        for i in idx:  # only the envs that just ended (rare), not the hot path
            final_obs[i] = {k: v[i].detach().cpu().numpy().copy() for k, v in s.obs.items()}
            final_info[i] = info_to_numpy(info, i)
        obs, reset_info = self.env.reset_envs(done)  # same-step auto-reset: the batch is observed again
        out_info = self._info(info, self._wrapped(reset_info, step=False), done)
        out_info.update({"final_observation": final_obs, "_final_observation": self._out(done.clone()),
                         "final_info": final_info, "_final_info": self._out(done.clone())})
        return self._obs(obs), self._out_reward(s.reward), self._out(s.terminated), self._out(s.truncated), out_info

    def _out_reward(self, reward: torch.Tensor) -> Any:
        """(N,) rewards: float64 in NumPy, as gymnasium's vector envs hold them."""
        return reward if self.as_torch else reward.numpy(force=True).astype(np.float64)

    def render(self) -> np.ndarray:
        return self.task.backend.render_scene(0)

    def close_extras(self, **kwargs) -> None:
        self.task.backend.close()


class WrappedGenesisVectorEnv(WrappedVectorEnv):
    """N Genesis envs in one scene, with the RoboBase wrapper chain integrated."""

    def __init__(self, task_kwargs: dict[str, Any], num_envs: int, frame_stack: int, action_sequence: int,
                 sim_device: str, seed: int | None, as_torch: bool, renderer: str = "auto") -> None:
        check_value("num_train_envs", num_envs)
        check_wrapper_args(frame_stack, action_sequence)
        cfg = make_task_config(**task_kwargs)  # validated before the simulator starts
        backend = make_genesis_backend(cfg, num_envs, sim_device, renderer)
        super().__init__(LiftTask(backend, cfg, seed), frame_stack, action_sequence, True, as_torch)
