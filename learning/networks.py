"""Building blocks shared by the agents (DrQ-v2 as published, Yarats et al. 2021).

Images stay uint8 until they reach `ObsFeatures`, so the replay and the env->device copy
move 4x fewer bytes; the float conversion and the /255 - 0.5 scaling happen on the device.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
from torch import nn

from envs.config import PRIVILEGED_KEY
from learning.replay import KeySpec


def weight_init(m: nn.Module) -> None:
    """DrQ-v2's init: orthogonal weights, zero bias, ReLU gain for convs."""
    if isinstance(m, nn.Linear):
        nn.init.orthogonal_(m.weight.data)
        if m.bias is not None:
            m.bias.data.fill_(0.0)
    elif isinstance(m, nn.Conv2d):
        nn.init.orthogonal_(m.weight.data, nn.init.calculate_gain("relu"))
        if m.bias is not None:
            m.bias.data.fill_(0.0)


def mlp(in_dim: int, hidden_dim: int, out_dim: int, depth: int = 2, layer_norm: bool = False) -> nn.Sequential:
    """`depth` hidden ReLU layers; with `layer_norm`, each normalised before its ReLU (RLPD's critic:
    it keeps Q from extrapolating far beyond the data, Ball et al. 2023)."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden_dim), *([nn.LayerNorm(hidden_dim)] if layer_norm else []),
                   nn.ReLU(inplace=True)]
        d = hidden_dim
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def soft_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- tau * net + (1 - tau) * target, fused over all parameters."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(net.parameters()), tau)


def adam(params: Iterable[torch.Tensor], lr: float, fused: bool = False) -> torch.optim.Adam:
    """Adam with its per-parameter updates batched. `foreach` gives bitwise the steps of the
    default loop (the CPU default) in about 0.55x its time; `fused`, one kernel per parameter,
    takes about 0.16x but rounds differently (~1e-7 relative per step), so it is for the pixel
    agents, whose updates are heavy and already approximate (bf16 convs), not the state agents."""
    return torch.optim.Adam(params, lr=lr, fused=True) if fused else torch.optim.Adam(params, lr=lr, foreach=True)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Forward passes inside record no gradient for `module`'s parameters; gradients still flow
    through it to its inputs. For a loss that trains another network through this one (the
    actor through the critic): the weight gradients it would otherwise compute are never used."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def restore_optimizer(opt: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """Load an optimiser's state but keep how it runs (`foreach`, `fused`): a state dict carries
    the settings of the optimiser that saved it, which would otherwise replace the current ones."""
    how = [{k: g[k] for k in ("foreach", "fused") if k in g} for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, settings in zip(opt.param_groups, how):
        group.update(settings)


def schedule(spec: float | str, step: int) -> float:
    """'linear(init,final,duration)' (duration in env frames) or a constant."""
    try:
        return float(spec)
    except (TypeError, ValueError):
        pass
    match = re.match(r"^\s*linear\(\s*([^,]+),\s*([^,]+),\s*([^,\)]+)\)\s*$", str(spec))
    if not match:
        raise ValueError(f"stddev schedule {spec!r} is not a float or 'linear(init,final,duration)'")
    init, final, duration = (float(g) for g in match.groups())
    mix = min(max(step / duration, 0.0), 1.0)
    return (1.0 - mix) * init + mix * final


class RandomShiftsAug(nn.Module):
    """Pad by `pad` px (replicate) and crop back at a random integer offset, per sample (DrQ-v2).

    DrQ-v2 crops with `grid_sample` at pixel centres, an integer crop up to float rounding (it
    is off by up to ~4e-3 of a grey level). Here the crop is indexing: exact, in any dtype (the
    encoder crops its uint8 frames, 4x fewer bytes than floats), no padded copy (replicate
    padding is a clamp of the row and column indices), each output pixel one row gather of its
    C channels from the NHWC view: about a quarter of `grid_sample`'s time on a CPU. The
    offsets are drawn as DrQ-v2 draws them (one (x, y) pair per sample). The result comes back
    channels-last in memory, the layout CPU conv kernels take.
    """

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        if self.pad == 0:
            return x
        n, _, h, w = x.shape
        p, dev = self.pad, x.device
        shift = torch.randint(0, 2 * p + 1, (n, 2), device=dev)                  # (B, 2) as (x, y)
        rows = (torch.arange(h, device=dev) + shift[:, 1:] - p).clamp_(0, h - 1)  # (B, H)
        cols = (torch.arange(w, device=dev) + shift[:, :1] - p).clamp_(0, w - 1)  # (B, W)
        pixel = (torch.arange(n, device=dev)[:, None, None] * h + rows[:, :, None]) * w + cols[:, None, :]  # (B, H, W)
        src = x.permute(0, 2, 3, 1).reshape(n * h * w, -1)                     # (B*H*W, C): one row per pixel
        out = src.index_select(0, pixel.flatten()).view(n, h, w, -1)           # (B, H, W, C)
        return out.permute(0, 3, 1, 2)                                         # (B, C, H, W), NHWC in memory


class Encoder(nn.Module):
    """DrQ-v2 conv encoder: 4 3x3 convs (first stride 2), 32 channels, flattened.

    `chunk` > 0 runs the convs on slices of that many images: on a CPU the activations of a
    slice of 32 stay in cache, which more than halved the encoder's time at batch 256
    (docs/benchmarks.md). `channels_last` stores activations NHWC, the layout CPU conv kernels
    prefer. `bf16` runs the convs under bfloat16 autocast (weights stay fp32; the features come
    back as fp32, so the heads and the critic's values keep full precision). None of these
    changes the parameters or the features' order: snapshots move freely between settings.
    """

    def __init__(self, in_channels: int, height: int, width: int, chunk: int = 0,
                 channels_last: bool = False, bf16: bool = False) -> None:
        super().__init__()
        self.chunk, self.channels_last, self.bf16 = int(chunk), bool(channels_last), bool(bf16)
        self.convnet = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, stride=2), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=1), nn.ReLU())
        with torch.no_grad():
            self.repr_dim = int(self.convnet(torch.zeros(1, in_channels, height, width)).numel())
        self.apply(weight_init)
        if self.channels_last:
            self.convnet.to(memory_format=torch.channels_last)

    def forward(self, img: torch.Tensor, aug: nn.Module | None = None) -> torch.Tensor:
        """(B, C, H, W) uint8 or float in [0, 255] -> (B, repr_dim) fp32 features."""
        return self.encode(self.augment(img, aug))

    def augment(self, img: torch.Tensor, aug: nn.Module | None = None) -> list[torch.Tensor]:
        """The batch in slices of `chunk`, each cropped by `aug` (on the uint8 frames): every
        random draw of an encoding happens here, so a caller can order its draws against other
        threads' and run `encode` wherever it likes."""
        parts = img.split(self.chunk) if 0 < self.chunk < img.shape[0] else (img,)
        return [aug(part) if aug is not None else part for part in parts]

    def encode(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Slices from `augment` -> (B, repr_dim) fp32 features. The float conversion and the
        scaling run slice by slice with the convs, so each slice's pixels are still in cache when
        the first conv reads them."""
        h = []
        for part in parts:
            x = part.to(torch.float32, copy=True).div_(255.0).sub_(0.5)  # a copy: scaled in place
            # the layout the convs run in: the crop hands back NHWC, the plain path wants NCHW
            x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                h.append(self.convnet(x).flatten(1))
        return (torch.cat(h) if len(h) > 1 else h[0]).float()   # (B, repr_dim)


@functools.cache
def cpu_has_bf16() -> bool:
    """Native bfloat16 on this CPU (AVX512-BF16 or AMX): elsewhere bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def spare_cpu_core() -> bool:
    """Do torch's intra-op threads leave a CPU core of this process free (for a second thread)?"""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return torch.get_num_threads() < cores


class SideThread:
    """One worker thread for work that may overlap this thread's (`start` returns a Future), or,
    disabled, the same work done at once: the caller reads `.result()` either way. The thread
    starts on first use; a copy (deepcopy, pickle) gets its own."""

    def __init__(self, enabled: bool, name: str) -> None:
        self.enabled, self.name = enabled, name
        self._pool: ThreadPoolExecutor | None = None

    def start(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self.enabled:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
            return self._pool.submit(fn, *args)
        done: Future = Future()
        done.set_result(fn(*args))
        return done

    def close(self) -> None:
        """Wait for what was started and stop the thread (a later `start` starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __getstate__(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)


def encoder_options(cfg: Any, device: torch.device) -> dict[str, Any]:
    """The encoder's speed settings of an agent config (`precision`, `encoder_chunk`,
    `channels_last`) with 'auto' resolved for the device: on a CPU, slices of 32, channels-last
    and bf16 (where the CPU has it); on a GPU, the published fp32 path."""
    cpu = device.type == "cpu"
    precision, chunk, channels_last = cfg.precision, cfg.encoder_chunk, cfg.channels_last
    return {"bf16": (cpu and cpu_has_bf16()) if precision == "auto" else precision == "bf16",
            "chunk": (32 if cpu else 0) if chunk == "auto" else int(chunk),
            "channels_last": cpu if channels_last == "auto" else bool(channels_last)}


def split_spec(spec: Mapping[str, KeySpec]) -> tuple[list[str], list[str]]:
    """Image keys (uint8 (C, H, W) frames) and low-dim keys (1-D float frames) a policy may see:
    the privileged state is neither, since a deployed policy has no simulator to read it from."""
    images = [k for k, s in spec.items() if len(s.frame_shape) == 3]
    low = [k for k, s in spec.items() if len(s.frame_shape) == 1 and k != PRIVILEGED_KEY]
    return images, low


class RunningNorm(nn.Module):
    """Standardises (B, D) by the running mean and variance of every batch passed to `observe`,
    merged exactly across batches (Chan et al.), clipped to +-10. Unchanged until the first batch;
    the stats are buffers, so snapshots carry them."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = (self.var + 1e-8).sqrt()
        bound = torch.where(self.count > 0, 10.0, float("inf")).to(x.dtype)  # no host sync
        return ((x - self.mean.to(x.dtype)) / std.to(x.dtype)).clamp(-bound, bound)

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        x = x.double()
        b, n = x.shape[0], self.count
        mean, var = x.mean(0), x.var(0, unbiased=False)
        total = n + b
        delta = mean - self.mean
        self.var.copy_((self.var * n + var * b + delta ** 2 * n * b / total) / total)
        self.mean.add_(delta * b / total)
        self.count.fill_(total)


class ObsFeatures(nn.Module):
    """Frame-stacked obs dict -> image tensor (B, F*C, H, W), low-dim (B, F*D) and, where the env
    gives it, the privileged state (B, F*P).

    Image keys are concatenated on channels (all cameras share H, W); low-dim keys are
    flattened and concatenated. No parameters: the conv encoder is a separate module because
    DrQ-v2 trains it only through the critic.
    """

    def __init__(self, spec: Mapping[str, KeySpec], frame_stack: int, normalize_low: bool = False) -> None:
        super().__init__()
        self.image_keys, self.low_keys = split_spec(spec)
        self.image_shape: tuple[int, int, int] | None = None
        if self.image_keys:
            c = sum(spec[k].frame_shape[0] for k in self.image_keys) * frame_stack
            _, h, w = spec[self.image_keys[0]].frame_shape
            self.image_shape = (c, h, w)
        self.low_dim = sum(spec[k].frame_shape[0] for k in self.low_keys) * frame_stack
        self.privileged_dim = spec[PRIVILEGED_KEY].frame_shape[0] * frame_stack if PRIVILEGED_KEY in spec else 0
        # Standardising the low-dim state: raw, it mixes metres (~0.01-0.3), radians and
        # velocities, and next to 50 tanh image features a policy barely reads a few cm of
        # height (docs/notebook.md, pixels on a CPU). The privileged state (metres) likewise.
        self.low_norm = RunningNorm(self.low_dim) if normalize_low and self.low_dim else None
        self.privileged_norm = RunningNorm(self.privileged_dim) if normalize_low and self.privileged_dim else None
        self._register_load_state_dict_pre_hook(self._rename_old_stats)

    @staticmethod
    def _rename_old_stats(state: dict, prefix: str, *args: Any) -> None:
        """Snapshots written before RunningNorm held the stats as low_mean/low_var/low_count."""
        for old, new in (("low_mean", "low_norm.mean"), ("low_var", "low_norm.var"), ("low_count", "low_norm.count")):
            if prefix + old in state:
                state[prefix + new] = state.pop(prefix + old)

    def image(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        if not self.image_keys:
            return None
        parts = [obs[k].flatten(1, 2) for k in self.image_keys]    # (B, F*C, H, W) uint8
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]  # the encoder converts it to float

    def raw_low(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, F*D) the low-dim keys as they are."""
        if not self.low_keys:
            return next(iter(obs.values())).new_zeros((next(iter(obs.values())).shape[0], 0), dtype=torch.float32)
        return torch.cat([obs[k].flatten(1).float() for k in self.low_keys], dim=1)

    def low(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, F*D) low-dim input of the networks: standardised if enabled."""
        x = self.raw_low(obs)
        return self.low_norm(x) if self.low_norm is not None else x

    def raw_privileged(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, F*P) the privileged state as it is; KeyError without it."""
        return obs[PRIVILEGED_KEY].flatten(1).float()

    def privileged(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, F*P) the privileged state, standardised with the low-dim state; KeyError without it."""
        x = self.raw_privileged(obs)
        return self.privileged_norm(x) if self.privileged_norm is not None else x

    @torch.no_grad()
    def observe(self, obs: Mapping[str, torch.Tensor]) -> None:
        """Merge a training batch into the running stats (when standardising)."""
        if self.low_norm is not None:
            self.low_norm.observe(self.raw_low(obs))
        if self.privileged_norm is not None:
            self.privileged_norm.observe(self.raw_privileged(obs))


class Trunk(nn.Module):
    """Image features -> Linear+LayerNorm+Tanh (feature_dim), then concat the low-dim state."""

    def __init__(self, repr_dim: int, low_dim: int, feature_dim: int) -> None:
        super().__init__()
        self.has_image = repr_dim > 0
        self.net = nn.Sequential(nn.Linear(repr_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh()) \
            if self.has_image else nn.Identity()
        self.out_dim = (feature_dim if self.has_image else 0) + low_dim

    def forward(self, h: torch.Tensor | None, low: torch.Tensor) -> torch.Tensor:
        if not self.has_image:
            return low
        return torch.cat([self.net(h), low], dim=-1)          # (B, feature_dim + F*D)


class TruncatedNormal(torch.distributions.Normal):
    """DrQ-v2's clipped Gaussian: noise clipped to +-clip, sample clamped inside (-1, 1) (straight-through)."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, low: float = -1.0, high: float = 1.0,
                 eps: float = 1e-6) -> None:
        super().__init__(loc, scale, validate_args=False)
        self.low, self.high, self.eps = low, high, eps

    def _clamp(self, x: torch.Tensor) -> torch.Tensor:
        clamped = torch.clamp(x, self.low + self.eps, self.high - self.eps)
        return x - x.detach() + clamped.detach()

    def sample(self, clip: float | None = None, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device) * self.scale
        if clip is not None:
            eps = torch.clamp(eps, -clip, clip)
        return self._clamp(self.loc + eps)
