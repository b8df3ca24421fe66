"""Frame-deduplicated, n-step ring replay for N parallel envs, kept on the training device.

Why this layout: a frame-stacked obs repeats each frame F times, and obs/next_obs repeat it
again, so storing stacks costs 2F frames per transition. Here storage is a (rows, N) grid:
row t of column i holds env i's obs at its t-th step (newest frame only), the action taken,
the reward, flags and the step's position in its episode. Stacks and n-step returns are
assembled at sampling time from the column. A truncated episode's final obs (needed to
bootstrap) is the only frame not in the stream; it goes to a small side ring (1/16 of the
capacity by default), checked for staleness at sampling.

A CUT row (sim fault, or the last row before a resume's fresh reset) is never sampled and
ends the n-step window of earlier rows, which bootstrap from the cut row's (valid) obs.
The rows of an episode that succeeded can be marked SUCCESS (`mark_success`) and sampled on their
own (`sample(success_only=True)`): self-imitation, where they join the demos.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

TERM, TRUNC, CUT, SUCCESS = 1, 2, 4, 8


@dataclass(frozen=True)
class KeySpec:
    """One observation key: its per-frame shape (no F axis) and dtype."""

    frame_shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass
class Batch:
    """A sampled batch: obs dicts of (B, F, ...); action (B, A); reward, discount (B,)."""

    obs: dict[str, torch.Tensor]
    action: torch.Tensor
    reward: torch.Tensor      # n-step discounted return
    discount: torch.Tensor    # gamma^k of the bootstrap, 0 after a termination
    next_obs: dict[str, torch.Tensor]
    demo: torch.Tensor | None = None  # (B,) bool: drawn from the demonstrations (None: no demos in play)


def as_tensor(x: Any, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """NumPy or torch -> torch on `device` (no copy when already there)."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype or x.dtype, non_blocking=True)
    return torch.as_tensor(np.asarray(x), device=device, dtype=dtype)


class ReplayBuffer:
    """Ring buffer of `capacity` transitions over `num_envs` parallel env streams."""

    def __init__(self, spec: Mapping[str, KeySpec], frame_stack: int, action_dim: int, num_envs: int,
                 capacity: int, nstep: int, gamma: float, device: torch.device | str = "cpu",
                 final_fraction: float = 1 / 16) -> None:
        self.spec, self.F, self.A, self.N = dict(spec), frame_stack, action_dim, num_envs
        self.nstep, self.gamma, self.device = nstep, float(gamma), torch.device(device)
        self.rows = max(capacity // num_envs, nstep + frame_stack + 1)
        S, N, dev = self.rows, num_envs, self.device
        self._action = torch.zeros((S, N, action_dim), dtype=torch.float32, device=dev)
        self._reward = torch.zeros((S, N), dtype=torch.float32, device=dev)
        self._flags = torch.zeros((S, N), dtype=torch.uint8, device=dev)
        self._pos = torch.zeros((S, N), dtype=torch.int32, device=dev)          # step index in its episode
        self._final_slot = torch.full((S, N), -1, dtype=torch.int32, device=dev)
        self.final_capacity = max(N, math.ceil(S * N * final_fraction))
        M = self.final_capacity
        # One store per key: the ring's frames (row r, env e at r * N + e), then M final-obs slots,
        # so a batch's frames, final ones included, are one row gather (`_assemble`).
        self._frames = {k: torch.zeros((S * N + M, *s.frame_shape), dtype=s.dtype, device=dev)
                        for k, s in self.spec.items()}
        self._obs = {k: v[:S * N].view(S, N, *v.shape[1:]) for k, v in self._frames.items()}    # (S, N, ...)
        self._final = {k: v[S * N:] for k, v in self._frames.items()}                            # (M, ...)
        self._final_owner = torch.full((M,), -1, dtype=torch.int64, device=dev)  # abs_row * N + env
        self._final_written = 0
        self._pos_next = torch.zeros(N, dtype=torch.int32, device=dev)
        self.written = 0  # rows ever written (absolute row counter)
        self._env_ids = torch.arange(N, device=dev)

    # ------------------------------------------------------------------ insert
    def __len__(self) -> int:
        """Transitions currently held (N per row)."""
        return min(self.written, self.rows) * self.N

    def bytes_per_transition(self) -> float:
        """Device bytes of all storage divided by the capacity in transitions."""
        tensors = [*self._obs.values(), self._action, self._reward, self._flags, self._pos, self._final_slot,
                   *self._final.values(), self._final_owner]
        return sum(t.numel() * t.element_size() for t in tensors) / (self.rows * self.N)

    def add(self, obs: Mapping[str, Any], action: Any, reward: Any, terminated: Any, truncated: Any,
            final_obs: Mapping[str, Any] | None = None, cut: Any | None = None, skip: Any | None = None) -> None:
        """Insert one step of all N envs at once.

        obs: dict of (N, F, ...) -- the obs the action was taken from; only [:, -1] is kept.
        action (N, A) or (N, 1, A); reward/terminated/truncated/cut/skip (N,).
        final_obs: dict of (N, F, ...) whose rows for truncated envs are their final obs.
        skip: rows that hold no transition (the env was being reset and ignored the action):
        cut, and the env's next row starts an episode.
        """
        r, dev = self.written % self.rows, self.device
        for k in self.spec:
            frame = as_tensor(obs[k], dev)[:, -1]  # (N, ...) newest frame
            if frame.is_floating_point():
                frame = torch.nan_to_num(frame, nan=0.0, posinf=0.0, neginf=0.0)
            self._obs[k][r] = frame
        self._action[r] = as_tensor(action, dev, torch.float32).reshape(self.N, self.A)
        rew = as_tensor(reward, dev, torch.float32).reshape(self.N)
        bad = ~torch.isfinite(rew)
        self._reward[r] = torch.where(bad, torch.zeros_like(rew), rew)
        term = as_tensor(terminated, dev, torch.bool).reshape(self.N)
        trunc = as_tensor(truncated, dev, torch.bool).reshape(self.N) & ~term
        cut_ = bad if cut is None else bad | as_tensor(cut, dev, torch.bool).reshape(self.N)
        restart = term | trunc
        if skip is not None:
            skip_ = as_tensor(skip, dev, torch.bool).reshape(self.N)
            cut_, restart = cut_ | skip_, restart | skip_
        self._flags[r] = term.to(torch.uint8) * TERM + trunc.to(torch.uint8) * TRUNC + cut_.to(torch.uint8) * CUT
        self._pos[r] = self._pos_next
        self._final_slot[r] = -1
        need = trunc & ~cut_
        if final_obs is not None and bool(need.any()):
            idx = need.nonzero().squeeze(1)                                  # (K,)
            slots = (self._final_written + torch.arange(idx.numel(), device=dev)) % self.final_capacity
            for k in self.spec:
                self._final[k][slots] = as_tensor(final_obs[k], dev)[idx, -1].to(self.spec[k].dtype)
            self._final_owner[slots] = self.written * self.N + idx
            self._final_slot[r, idx] = slots.to(torch.int32)
            self._final_written += idx.numel()
        self._pos_next = torch.where(restart, torch.zeros_like(self._pos_next), self._pos_next + 1)
        self.written += 1

    def mark_success(self, envs: Any) -> None:
        """Mark the episode each env in `envs` just ended (by the last add) as a success: all of
        its rows still in the ring."""
        env = as_tensor(envs, self.device, torch.int64).reshape(-1)
        if env.numel() == 0 or self.written == 0:
            return
        last = self.written - 1
        start = (last - self._pos[last % self.rows, env].long()).clamp(min=max(0, self.written - self.rows))  # (K,)
        for e, a in zip(env.tolist(), start.tolist()):  # one slice per finished episode, not per step
            rows = torch.arange(a, last + 1, device=self.device) % self.rows
            self._flags[rows, e] |= SUCCESS

    def success_count(self) -> int:
        """Transitions in the ring that belong to marked successful episodes."""
        return int(((self._flags & SUCCESS) != 0).sum()) if self.written else 0

    def mark_episode_break(self) -> None:
        """The envs are being reset mid-episode (e.g. after resume): cut each unfinished stream."""
        if self.written == 0:
            return
        r = (self.written - 1) % self.rows
        unfinished = self._pos_next != 0
        self._flags[r] |= unfinished.to(torch.uint8) * CUT
        self._pos_next.zero_()

    # ------------------------------------------------------------------ sample
    def _stack_rows(self, abs_row: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """(B,) newest row + episode position -> (B, F) absolute rows, repeating the episode's first frame."""
        offsets = torch.arange(self.F - 1, -1, -1, device=self.device)            # (F,)
        return abs_row[:, None] - torch.minimum(offsets[None], pos[:, None].long())

    def _window(self, abs_row: torch.Tensor, env: torch.Tensor) -> dict[str, torch.Tensor]:
        """n-step window of each (row, env): return, discount, bootstrap row and validity."""
        S, F, n, g = self.rows, self.F, self.nstep, self.gamma
        oldest, newest = max(0, self.written - S), self.written - 1
        flags = self._flags[abs_row % S, env]
        pos = self._pos[abs_row % S, env]
        valid = (abs_row >= oldest) & (abs_row <= newest) & (flags & CUT == 0)
        valid &= abs_row - torch.clamp(pos.long(), max=F - 1) >= oldest
        ret = torch.zeros(abs_row.shape, dtype=torch.float32, device=self.device)
        discount = torch.zeros_like(ret)
        boot = abs_row.clone()
        boot_final = torch.zeros_like(valid)
        running = torch.ones_like(valid)
        for k in range(n):
            a_k = abs_row + k
            in_range = a_k <= newest
            r_k = torch.where(in_range, a_k, abs_row) % S
            f_k = self._flags[r_k, env]
            valid &= ~running | in_range
            if k > 0:
                hit_cut = running & in_range & (f_k & CUT != 0)
                boot = torch.where(hit_cut, a_k, boot)
                discount = torch.where(hit_cut, torch.full_like(discount, g ** k), discount)
                running &= ~hit_cut
            take = running & in_range
            ret += torch.where(take, (g ** k) * self._reward[r_k, env], torch.zeros_like(ret))
            term = take & (f_k & TERM != 0)
            trunc = take & (f_k & TRUNC != 0) & ~term
            ended = term | trunc
            boot = torch.where(ended, a_k, boot)
            discount = torch.where(term, torch.zeros_like(discount), discount)
            discount = torch.where(trunc, torch.full_like(discount, g ** (k + 1)), discount)
            boot_final |= trunc
            running &= ~ended
        a_n = abs_row + n
        valid &= ~running | (a_n <= newest)
        boot = torch.where(running, torch.clamp(a_n, max=max(newest, 0)), boot)
        discount = torch.where(running, torch.full_like(discount, g ** n), discount)
        boot_pos = self._pos[boot % S, env].long()
        slot = self._final_slot[boot % S, env].long()
        owner_ok = (slot >= 0) & (self._final_owner[slot.clamp(min=0)] == boot * self.N + env)
        valid &= ~boot_final | owner_ok
        vpos = torch.where(boot_final, boot_pos + 1, boot_pos)
        vrow = torch.where(boot_final, boot + 1, boot)
        valid &= vrow - torch.clamp(vpos, max=F - 1) >= oldest
        return {"abs": abs_row, "env": env, "pos": pos, "valid": valid, "ret": ret, "discount": discount,
                "vrow": vrow, "vpos": vpos, "boot_final": boot_final, "slot": slot.clamp(min=0)}

    def _assemble(self, w: dict[str, torch.Tensor]) -> Batch:
        """Gather stacks for an already-computed window (invalid entries get harmless indices)."""
        S, env = self.rows, w["env"]
        oldest = max(0, self.written - S)
        rows = self._stack_rows(w["abs"], w["pos"]).clamp(min=oldest) % S                  # (B, F)
        nrows = self._stack_rows(w["vrow"], w["vpos"])                                     # (B, F)
        is_final = w["boot_final"][:, None] & (nrows == w["vrow"][:, None])                # (B, F)
        nrows = (torch.where(is_final, nrows - 1, nrows).clamp(min=oldest)) % S
        idx = rows * self.N + env[:, None]                                                   # (B, F) store rows
        nidx = torch.where(is_final, S * self.N + w["slot"][:, None].long().clamp(min=0),
                           nrows * self.N + env[:, None])                                    # (B, F)
        obs, nxt = {}, {}
        for k, store in self._frames.items():
            obs[k] = store.index_select(0, idx.flatten()).view(*idx.shape, *store.shape[1:])     # (B, F, ...)
            nxt[k] = store.index_select(0, nidx.flatten()).view(*idx.shape, *store.shape[1:])    # (B, F, ...)
        action = self._action[w["abs"] % S, env]
        return Batch(obs, action, w["ret"], w["discount"], nxt)

    def returns_to_go(self) -> dict[str, torch.Tensor]:
        """The discounted Monte-Carlo return from every stored transition to the end of its episode,
        as far as the ring holds it, to check a critic's values against what the data earned
        (`bench/critic_calibration.py`). Returns (M,) tensors: `abs_row`, `env`, `ret`, `steps`
        (transitions summed) and `terminal`: True where the episode terminated, so `ret` is exact;
        False where it was truncated, cut or is still running, so `ret` lacks the value after its
        last stored step (gamma^steps times that value)."""
        S, N, g, dev = self.rows, self.N, self.gamma, self.device
        oldest = max(0, self.written - S)
        ret = torch.zeros(N, device=dev)
        steps = torch.zeros(N, dtype=torch.long, device=dev)
        terminal = torch.zeros(N, dtype=torch.bool, device=dev)
        out: dict[str, list[torch.Tensor]] = {k: [] for k in ("abs_row", "env", "ret", "steps", "terminal")}
        for a in range(self.written - 1, oldest - 1, -1):  # newest first: each row adds to its successor's return
            f = self._flags[a % S]                                          # (N,)
            cut = (f & CUT) != 0
            last = (f & (TERM | TRUNC)) != 0                                # the episode's last transition
            r = self._reward[a % S]
            ret = torch.where(last, r, r + g * ret)
            steps = torch.where(last, 1, steps + 1)
            terminal = torch.where(last, (f & TERM) != 0, terminal)
            # a cut row is no transition: the rows before it end there, without its reward
            ret, steps = torch.where(cut, 0.0, ret), torch.where(cut, 0, steps)
            terminal = terminal & ~cut
            keep = (~cut).nonzero().squeeze(1)                              # (K,)
            for k, v in (("abs_row", torch.full_like(keep, a)), ("env", keep), ("ret", ret[keep]),
                         ("steps", steps[keep]), ("terminal", terminal[keep])):
                out[k].append(v)
        if not out["env"]:  # nothing stored
            dtypes = {"ret": torch.float32, "terminal": torch.bool}
            return {k: torch.zeros(0, dtype=dtypes.get(k, torch.long), device=dev) for k in out}
        return {k: torch.cat(v[::-1]) for k, v in out.items()}

    def gather(self, abs_row: torch.Tensor, env: torch.Tensor) -> tuple[Batch, torch.Tensor]:
        """Batch for explicit (absolute row, env) pairs, plus a (B,) validity mask (for tests/debugging)."""
        w = self._window(abs_row.to(self.device).long(), env.to(self.device).long())
        return self._assemble(w), w["valid"]

    def sample(self, batch_size: int, max_tries: int = 32, success_only: bool = False) -> Batch:
        """Uniform over valid transitions (rejection sampling on cheap flags, then one gather);
        with `success_only`, over those of episodes marked by `mark_success`."""
        if self.written == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        oldest = max(0, self.written - self.rows)
        if success_only:
            marked = ((self._flags & SUCCESS) != 0).nonzero()                                 # (K, 2): ring row, env
            if marked.shape[0] == 0:
                raise RuntimeError("no successful episode is marked in the replay")
            ring_now = (self.written - 1) % self.rows  # ring row -> absolute row
            marked_abs = self.written - 1 - (ring_now - marked[:, 0]) % self.rows
        picked: list[dict[str, torch.Tensor]] = []
        have = 0
        for _ in range(max_tries):
            m = 2 * (batch_size - have) + 16
            if success_only:
                i = torch.randint(0, marked.shape[0], (m,), device=self.device)
                abs_row, env = marked_abs[i], marked[i, 1]
            else:
                abs_row = torch.randint(oldest, self.written, (m,), device=self.device)
                env = torch.randint(0, self.N, (m,), device=self.device)
            w = self._window(abs_row, env)
            keep = w["valid"].nonzero().squeeze(1)[: batch_size - have]
            if keep.numel():
                picked.append({k: v[keep] for k, v in w.items()})
                have += keep.numel()
            if have >= batch_size:
                break
        if have == 0:
            raise RuntimeError("replay holds no sampleable transition yet (need nstep+1 steps per env)")
        w = {k: torch.cat([p[k] for p in picked]) for k in picked[0]}
        if have < batch_size:  # nearly everything invalid: resample the valid ones with replacement
            idx = torch.randint(0, have, (batch_size,), device=self.device)
            w = {k: v[idx] for k, v in w.items()}
        return self._assemble(w)

    # -------------------------------------------------------------- snapshots
    def state_dict(self) -> dict[str, Any]:
        """CPU tensors of the filled part only (an unfilled buffer does not cost snapshot space)."""
        filled = min(self.written, self.rows)
        fin = min(self._final_written, self.final_capacity)
        cpu = lambda t, n: t[:n].detach().cpu().clone()  # noqa: E731
        return {
            "version": 1, "rows": self.rows, "num_envs": self.N, "frame_stack": self.F, "action_dim": self.A,
            "final_capacity": self.final_capacity, "written": self.written, "final_written": self._final_written,
            "spec": {k: (tuple(s.frame_shape), str(s.dtype)) for k, s in self.spec.items()},
            "obs": {k: cpu(v, filled) for k, v in self._obs.items()},
            "final": {k: cpu(v, fin) for k, v in self._final.items()},
            "action": cpu(self._action, filled), "reward": cpu(self._reward, filled),
            "flags": cpu(self._flags, filled), "pos": cpu(self._pos, filled),
            "final_slot": cpu(self._final_slot, filled), "final_owner": cpu(self._final_owner, fin),
            "pos_next": self._pos_next.cpu().clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from state_dict(); refuses a buffer of another geometry. A larger ring takes a
        smaller one's state when that never wrapped (a resume that extends num_train_frames):
        rows and final slots sit at the same positions in both."""
        mine = {"rows": self.rows, "num_envs": self.N, "frame_stack": self.F, "action_dim": self.A,
                "final_capacity": self.final_capacity,
                "spec": {k: (tuple(s.frame_shape), str(s.dtype)) for k, s in self.spec.items()}}
        grows = (int(state.get("rows", 0)) < self.rows and int(state.get("written", 0)) <= int(state.get("rows", 0))
                 and int(state.get("final_capacity", 0)) <= self.final_capacity)
        if grows:
            mine.pop("rows")
            mine.pop("final_capacity")
        for key, value in mine.items():
            theirs = state.get(key)
            if key == "spec" and theirs is not None:
                theirs = {k: (tuple(v[0]), v[1]) for k, v in theirs.items()}
            if theirs != value:
                raise ValueError(f"replay snapshot has {key}={theirs!r} but this buffer has {value!r}")
        filled, fin = state["flags"].shape[0], state["final_owner"].shape[0]
        for k in self.spec:
            self._obs[k][:filled] = state["obs"][k].to(self.device)
            self._final[k][:fin] = state["final"][k].to(self.device)
        for name in ("action", "reward", "flags", "pos", "final_slot"):
            getattr(self, f"_{name}")[:filled] = state[name].to(self.device)
        self._final_owner[:fin] = state["final_owner"].to(self.device)
        self._pos_next = state["pos_next"].to(self.device)
        self.written, self._final_written = int(state["written"]), int(state["final_written"])
        if grows:  # new final obs go to the slots the smaller ring never had; stale ones are refused at sampling
            self._final_written = min(self._final_written, int(state["final_capacity"]))
