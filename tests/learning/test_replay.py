"""Replay: frame-stack assembly at episode starts, n-step returns vs a hand-computed example,
cuts (sim faults), ring wrap-around, memory per transition, snapshots."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.fakes import FakeBatchedEnv, frame_value

from learning.replay import KeySpec, ReplayBuffer

F, GAMMA = 3, 0.5
SPEC = {"rgb": KeySpec((1, 2, 2), torch.uint8), "low": KeySpec((2,), torch.float32)}


class Driver:
    """One env stream with FrameStack semantics; frames are the integer v (image) and [v, -v] (low-dim)."""

    def __init__(self, replay: ReplayBuffer) -> None:
        self.replay, self.stack = replay, None

    @staticmethod
    def frame(v: float) -> dict[str, np.ndarray]:
        return {"rgb": np.full((1, 1, 2, 2), v, np.uint8), "low": np.array([[v, -v]], np.float32)}

    def start(self, v: float) -> None:
        self.stack = {k: np.repeat(x[:, None], F, axis=1) for k, x in self.frame(v).items()}   # (1, F, ...)

    def push(self, v: float) -> dict[str, np.ndarray]:
        return {k: np.concatenate([s[:, 1:], self.frame(v)[k][:, None]], axis=1) for k, s in self.stack.items()}

    def step(self, reward: float, next_v: float, term: bool = False, trunc: bool = False,
             cut: bool = False) -> None:
        nxt = self.push(next_v)
        final = nxt if (term or trunc) else None
        self.replay.add(self.stack, np.zeros((1, 1, 1), np.float32) + reward, np.array([reward], np.float32),
                        np.array([term]), np.array([trunc]), final, np.array([cut]))
        self.stack = nxt


# The hand example's one-step rewards by row; the driver stores each as its row's action too.
STEP_REWARD = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def hand_example() -> ReplayBuffer:
    rb = ReplayBuffer(SPEC, F, 1, num_envs=1, capacity=100, nstep=3, gamma=GAMMA)
    d = Driver(rb)
    d.start(10)                                        # episode 1: obs 10..13, final 14 (truncated)
    for t, r in enumerate([1, 2, 3, 4]):
        d.step(r, 11 + t, trunc=(t == 3))
    d.start(20)                                        # episode 2: obs 20, 21, terminated
    d.step(5, 21)
    d.step(6, 22, term=True)
    d.start(30)                                        # episode 3: running
    for t, r in enumerate([7, 8, 9, 10]):
        d.step(r, 31 + t)
    return rb


def stack_values(obs: dict[str, torch.Tensor]) -> list[float]:
    img = obs["rgb"][0, :, 0, 0, 0].tolist()
    low = obs["low"][0, :, 0].tolist()
    assert img == low, (img, low)  # image and low-dim stacks come from the same rows
    return img


@pytest.mark.parametrize("row,obs,ret,disc,nxt", [
    (0, [10, 10, 10], 1 + GAMMA * 2 + GAMMA**2 * 3, GAMMA**3, [11, 12, 13]),
    (1, [10, 10, 11], 2 + GAMMA * 3 + GAMMA**2 * 4, GAMMA**3, [12, 13, 14]),   # truncation: bootstrap on final obs
    (2, [10, 11, 12], 3 + GAMMA * 4, GAMMA**2, [12, 13, 14]),
    (3, [11, 12, 13], 4, GAMMA, [12, 13, 14]),
    (4, [20, 20, 20], 5 + GAMMA * 6, 0.0, None),                              # termination: no bootstrap
    (5, [20, 20, 21], 6, 0.0, None),
    (6, [30, 30, 30], 7 + GAMMA * 8 + GAMMA**2 * 9, GAMMA**3, [31, 32, 33]),
])
def test_nstep_and_stacks_match_hand_computed(row, obs, ret, disc, nxt) -> None:
    rb = hand_example()
    batch, valid = rb.gather(torch.tensor([row]), torch.tensor([0]))
    assert bool(valid[0])
    assert stack_values(batch.obs) == obs
    assert batch.reward[0].item() == pytest.approx(ret)
    assert batch.discount[0].item() == pytest.approx(disc)
    assert batch.action[0, 0].item() == STEP_REWARD[row]  # the action taken at this row, not a neighbour's
    if nxt is not None:
        assert stack_values(batch.next_obs) == nxt


def test_incomplete_window_is_not_sampleable_until_known() -> None:
    rb = hand_example()
    _, valid = rb.gather(torch.tensor([7, 8, 9]), torch.tensor([0, 0, 0]))
    assert not valid.any()  # rows 10.. not written yet
    for _ in range(10):
        batch = rb.sample(16)
        assert set(batch.obs["rgb"][:, -1, 0, 0, 0].tolist()) <= {10, 11, 12, 13, 20, 21, 30}


def test_cut_row_is_never_sampled_and_ends_windows() -> None:
    rb = hand_example()
    d = Driver(rb)
    d.start(34)  # the obs content of the cut row only has to be finite
    rb.add(d.stack, np.zeros((1, 1, 1), np.float32), np.array([np.nan], np.float32), np.array([False]),
           np.array([True]), None, np.array([True]))     # row 10: sim fault (non-finite reward, cut)
    batch, valid = rb.gather(torch.tensor([8, 10]), torch.tensor([0, 0]))
    assert bool(valid[0]) and not bool(valid[1])
    assert batch.reward[0].item() == pytest.approx(9 + GAMMA * 10)   # stops before the cut row
    assert batch.discount[0].item() == pytest.approx(GAMMA**2)       # and bootstraps from its obs
    assert all_finite(rb.state_dict())  # the NaN is not kept: a snapshot of the buffer holds numbers only


def all_finite(state) -> bool:
    """Every floating tensor in a (nested) state dict is finite."""
    if isinstance(state, dict):
        return all(all_finite(v) for v in state.values())
    return not (isinstance(state, torch.Tensor) and state.is_floating_point()) or bool(torch.isfinite(state).all())


def check_sample_consistency(batch, gamma: float, pixels: bool = True) -> None:
    """Every sampled stack must be one env's consecutive frames of one episode (fake's encoding)."""
    low, nlow = batch.obs["low_dim_state"], batch.next_obs["low_dim_state"]     # (B, F, D)
    env, ep, t = low[:, :, 0], low[:, :, 1], low[:, :, 2]
    assert (env == env[:, -1:]).all() and (ep == ep[:, -1:]).all()
    expect_t = torch.clamp(t[:, -1:] - torch.arange(F - 1, -1, -1), min=0)
    assert torch.equal(t, expect_t)
    boot = batch.discount > 0
    k = torch.round(torch.log(batch.discount[boot]) / math.log(gamma))
    assert torch.equal(nlow[boot, -1, 2], t[boot, -1] + k)                        # bootstrap k steps later
    assert (nlow[boot, :, 1] == ep[boot, -1:]).all() and (nlow[boot, :, 0] == env[boot, -1:]).all()
    if pixels:
        img = batch.obs["rgb_wrist"][:, :, 0, 0, 0].long()
        assert torch.equal(img, torch.as_tensor(frame_value(env.long().numpy(), ep.long().numpy(), t.long().numpy())))


def test_wraparound_samples_stay_consistent() -> None:
    """A small ring written many times over, with faults and the rows of envs being reset
    (`skip`): stacks never mix envs, episodes or overwritten rows."""
    n, gamma = 3, 0.9
    env = FakeBatchedEnv(n, pixels=True, frame_stack=F, ep_len=(2, 9), term_prob=0.1, fault_prob=0.02)
    rb = ReplayBuffer({"rgb_wrist": KeySpec((3, 16, 16), torch.uint8), "low_dim_state": KeySpec((18,), torch.float32)},
                      F, 4, n, capacity=n * 20, nstep=3, gamma=gamma, final_fraction=0.25)
    obs, _ = env.reset(seed=3)
    skipped = 0
    for step in range(150):
        action = torch.zeros(n, 4)
        s = env.step(action)
        rb.add(obs, action, s.reward, s.terminated, s.truncated, s.obs, cut=s.fault, skip=s.reset)
        skipped += int(s.reset.sum())
        obs = s.obs
        if step > 10:
            check_sample_consistency(rb.sample(64), gamma)
    assert rb.written == 150 and len(rb) == n * rb.rows and skipped > 10


def tensor_bytes(state) -> int:
    if isinstance(state, dict):
        return sum(tensor_bytes(v) for v in state.values())
    return state.numel() * state.element_size() if isinstance(state, torch.Tensor) else 0


def test_memory_per_pixel_transition() -> None:
    """bytes_per_transition is what the buffer really holds: the snapshot of a full buffer (every
    row and final-obs slot written; a snapshot carries the filled part of every store) is that
    many bytes per transition, and that is one frame per transition, not a stack of them."""
    frame, low, n = 84 * 84 * 3, 18 * 4, 4
    rb = ReplayBuffer({"rgb_wrist": KeySpec((3, 84, 84), torch.uint8), "low_dim_state": KeySpec((18,), torch.float32)},
                      3, 4, num_envs=n, capacity=2000, nstep=3, gamma=0.99)
    obs = {"rgb_wrist": np.ones((n, 1, 3, 84, 84), np.uint8), "low_dim_state": np.ones((n, 1, 18), np.float32)}
    every = np.ones(n, bool)
    for _ in range(rb.rows):  # every env truncated on every step: the final-obs slots fill too
        rb.add(obs, np.zeros((n, 4), np.float32), np.zeros(n, np.float32), ~every, every, obs)
    assert len(rb) == rb.rows * n
    # to a tenth of a byte: a store of even one byte per transition left out of the count shows
    # (the snapshot's only extra, each env's next episode position, is 16 bytes in all)
    assert rb.bytes_per_transition() == pytest.approx(tensor_bytes(rb.state_dict()) / len(rb), abs=0.1)
    assert frame + low <= rb.bytes_per_transition() <= 1.1 * (frame + low)


def test_state_dict_round_trip_and_geometry_check() -> None:
    rb = hand_example()
    clone = ReplayBuffer(SPEC, F, 1, num_envs=1, capacity=100, nstep=3, gamma=GAMMA)
    clone.load_state_dict(rb.state_dict())
    rows, envs = torch.arange(0, 7), torch.zeros(7, dtype=torch.long)
    (a, va), (b, vb) = rb.gather(rows, envs), clone.gather(rows, envs)
    assert torch.equal(va, vb) and torch.equal(a.reward, b.reward) and torch.equal(a.next_obs["rgb"], b.next_obs["rgb"])
    other = ReplayBuffer(SPEC, F, 1, num_envs=2, capacity=100, nstep=3, gamma=GAMMA)
    with pytest.raises(ValueError, match="replay snapshot has"):
        other.load_state_dict(rb.state_dict())


def test_episode_break_cuts_unfinished_streams() -> None:
    rb = hand_example()
    rb.mark_episode_break()              # resume: env reset mid-episode 3
    _, valid = rb.gather(torch.tensor([9]), torch.tensor([0]))
    assert not bool(valid[0])
    d = Driver(rb)                       # the env's next rows are a new episode ...
    d.start(40)
    for t, r in enumerate([11, 12, 13, 14]):
        d.step(r, 41 + t)
    batch, valid = rb.gather(torch.tensor([10]), torch.tensor([0]))
    assert bool(valid[0])
    assert stack_values(batch.obs) == [40, 40, 40]  # ... whose first stack repeats its first frame only
    assert batch.reward[0].item() == pytest.approx(11 + GAMMA * 12 + GAMMA**2 * 13)


def test_self_imitation_samples_only_successful_episodes_and_joins_the_demos() -> None:
    """Episodes marked by `mark_success` (the trainer marks those that end in task success) are
    what `sample(success_only=True)` draws, whole and still in the ring; with
    use_self_imitation they take their share (by size) of a batch's demo rows."""
    from learning import demos

    env = FakeBatchedEnv(num_envs=3, pixels=False, frame_stack=F, ep_len=(6, 10), term_prob=0.12, seed=3)
    spec = {"low_dim_state": KeySpec((21,), torch.float32)}
    rb = ReplayBuffer(spec, F, 4, num_envs=3, capacity=3 * 60, nstep=2, gamma=GAMMA)  # wraps 3x over 200 steps
    obs, _ = env.reset(seed=3)
    won: set[tuple[int, int]] = set()
    for _ in range(200):
        s = env.step(torch.zeros(3, 4))
        rb.add(obs, torch.zeros(3, 4), s.reward, s.terminated, s.truncated, s.obs, skip=s.reset)
        succeeded = torch.nonzero(s.done & (s.info["task_success"] > 0)).flatten().tolist()
        rb.mark_success(succeeded)
        won |= {(i, int(obs["low_dim_state"][i, -1, 1])) for i in succeeded}
        obs = s.obs
    assert rb.success_count() > 0 and len(won) > 3
    batch = rb.sample(512, success_only=True)
    newest = batch.obs["low_dim_state"][:, -1]                                        # (B, 21): [env, episode, t, ...]
    seen = {(int(i), int(e)) for i, e in newest[:, :2].tolist()}
    assert seen <= won and len(seen) > 1
    nxt_frames = batch.next_obs["low_dim_state"][:, -1]
    assert torch.equal(nxt_frames[:, :2], newest[:, :2])  # windows stay inside their episode
    every = rb.sample(512)
    assert {(int(i), int(e)) for i, e in every.obs["low_dim_state"][:, -1, :2].tolist()} - won  # others exist

    t = torch.arange(5, dtype=torch.float32)
    low = torch.full((5, 1, 21), 99.0)                                               # demo rows: env id 99
    demo_rb = demos.demo_replay([{"obs": {"low_dim_state": low}, "action": torch.zeros(5, 4), "reward": t,
                                  "terminated": t == 4, "truncated": torch.zeros(5, dtype=torch.bool)}],
                                spec, F, 4, 2, GAMMA, torch.device("cpu"))
    b = demos.mixed_sample(rb, demo_rb, 64, 0.5, self_imitation=True)
    ids = b.obs["low_dim_state"][:, -1, 0]
    share = round(32 * rb.success_count() / (rb.success_count() + len(demo_rb)))
    assert int(b.demo.sum()) == 32 and int((ids[b.demo] != 99).sum()) == share
    assert {(int(i), int(e)) for i, e in b.obs["low_dim_state"][b.demo][ids[b.demo] != 99][:, -1, :2].tolist()} <= won
    plain = demos.mixed_sample(rb, demo_rb, 64, 0.5)
    assert bool((plain.obs["low_dim_state"][plain.demo][:, -1, 0] == 99).all())


def test_returns_to_go_match_hand_computed_and_say_which_are_exact() -> None:
    """Monte-Carlo returns from each stored transition to its episode's end: exact (terminal) only
    where the episode terminated; a truncated or still running one lacks its tail."""
    got = hand_example().returns_to_go()
    assert got["abs_row"].tolist() == list(range(10)) and got["env"].tolist() == [0] * 10
    g = GAMMA
    want = [1 + g * 2 + g**2 * 3 + g**3 * 4, 2 + g * 3 + g**2 * 4, 3 + g * 4, 4,      # truncated
            5 + g * 6, 6,                                                         # terminated
            7 + g * 8 + g**2 * 9 + g**3 * 10, 8 + g * 9 + g**2 * 10, 9 + g * 10, 10]  # running
    np.testing.assert_allclose(got["ret"].numpy(), want, rtol=1e-6)
    assert got["steps"].tolist() == [4, 3, 2, 1, 2, 1, 4, 3, 2, 1]
    assert got["terminal"].tolist() == [False] * 4 + [True] * 2 + [False] * 4


def test_returns_to_go_stop_at_a_cut_row() -> None:
    rb = ReplayBuffer(SPEC, F, 1, num_envs=1, capacity=100, nstep=3, gamma=GAMMA)
    d = Driver(rb)
    d.start(1)
    d.step(1, 2)
    d.step(2, 3)
    d.step(3, 4, cut=True)          # a sim fault: no transition, the rows before end here
    d.start(5)
    d.step(4, 6, term=True)
    got = rb.returns_to_go()
    assert got["abs_row"].tolist() == [0, 1, 3]
    np.testing.assert_allclose(got["ret"].numpy(), [1 + GAMMA * 2, 2, 4])
    assert got["terminal"].tolist() == [False, False, True]
