"""Glue between the env contract (NumPy or torch, gymnasium-0.29 vector auto-reset) and the engine.

Everything here is batched over envs; the only Python loops run over the envs that just
finished an episode (a few per hundred steps), never over all envs every step.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from gymnasium import spaces

from engines.native.replay import KeySpec, as_tensor

_TORCH_DTYPES = {np.dtype(np.uint8): torch.uint8, np.dtype(np.float32): torch.float32,
                 np.dtype(np.float64): torch.float32, np.dtype(np.int64): torch.int64}


def obs_spec(space: spaces.Dict) -> tuple[dict[str, KeySpec], int]:
    """Per-env Dict space of (F, ...) boxes -> ({key: KeySpec(frame_shape, dtype)}, F)."""
    spec, stacks = {}, set()
    for key, box in space.spaces.items():
        stacks.add(box.shape[0])
        spec[key] = KeySpec(tuple(int(d) for d in box.shape[1:]), _TORCH_DTYPES[np.dtype(box.dtype)])
    if len(stacks) != 1:
        shapes = {k: s.shape for k, s in space.spaces.items()}
        raise ValueError(f"observation keys disagree on the frame-stack axis: {shapes}")
    return spec, stacks.pop()


def spec_signature(spec: Mapping[str, KeySpec], frame_stack: int) -> dict[str, Any]:
    """A plain, comparable description stored in snapshots."""
    return {k: ((frame_stack, *s.frame_shape), str(s.dtype)) for k, s in sorted(spec.items())}


def single_obs_space(train_env: Any, eval_env: Any) -> spaces.Dict:
    space = getattr(train_env, "single_observation_space", None)
    return space if isinstance(space, spaces.Dict) else eval_env.observation_space


def obs_to_device(obs: Mapping[str, Any], device: torch.device, keys: Any) -> dict[str, torch.Tensor]:
    """Dict of (N, F, ...) NumPy/torch arrays -> torch on `device`, dtypes kept (uint8 images stay uint8)."""
    return {k: as_tensor(obs[k], device) for k in keys}


def finished_mask(info: Mapping[str, Any], terminated: Any, truncated: Any) -> np.ndarray:
    """(N,) bool of envs whose episode ended this step (host side: it drives Python bookkeeping)."""
    done = np.logical_or(_host(terminated), _host(truncated)).astype(bool)
    if "_final_observation" in info:
        done |= _host(info["_final_observation"]).astype(bool)
    return done


def final_obs_batch(next_obs: Mapping[str, Any], info: Mapping[str, Any], done_idx: np.ndarray,
                    device: torch.device, keys: Any) -> dict[str, torch.Tensor]:
    """(N, F, ...) tensors equal to next_obs except rows of finished envs, which hold their final obs."""
    out = {k: as_tensor(next_obs[k], device).clone() for k in keys}
    finals = info.get("final_observation")
    if finals is None or len(done_idx) == 0:
        return out
    rows = [i for i in done_idx if finals[i] is not None]
    if rows:
        idx = torch.as_tensor(rows, device=device)
        for k in keys:
            out[k][idx] = torch.stack([as_tensor(finals[i][k], device) for i in rows]).to(out[k].dtype)
    return out


def finished_infos(info: Mapping[str, Any], done_idx: np.ndarray) -> list[dict[str, Any]]:
    """The final_info dict of each finished env (empty dict if the env gave none)."""
    finals = info.get("final_info")
    if finals is None:
        return [{} for _ in done_idx]
    return [dict(finals[i]) if finals[i] is not None else {} for i in done_idx]


def step_flags(info: Mapping[str, Any], key: str, n: int) -> np.ndarray:
    """A per-env boolean info array (e.g. 'sim_fault'), zeros if absent."""
    if key not in info:
        return np.zeros(n, dtype=bool)
    return _host(info[key]).astype(bool).reshape(n)


def as_cpu(x: Any) -> torch.Tensor:
    """NumPy or torch (any device) -> a CPU tensor."""
    return x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def scalar(x: Any) -> float:
    if isinstance(x, torch.Tensor):
        return float(x.detach().float().mean().cpu())
    return float(np.asarray(x, dtype=np.float64).mean())


def _host(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
