"""Agents: random shift, DrQ-v2 and SAC act/update (finite losses, every network learns)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from tests.fakes import tiny_cfg

from learning.agents import make_agent
from learning.networks import Encoder, RandomShiftsAug, frozen, schedule
from learning.replay import Batch, KeySpec

FS, B, A = 3, 8, 4


def spec(pixels: bool) -> dict[str, KeySpec]:
    s = {"low_dim_state": KeySpec((18 if pixels else 21,), torch.float32)}
    if pixels:
        s["rgb_wrist"] = KeySpec((3, 16, 16), torch.uint8)
    return s


def random_obs(sp: dict[str, KeySpec], n: int) -> dict[str, torch.Tensor]:
    out = {}
    for k, s in sp.items():
        if s.dtype == torch.uint8:
            out[k] = torch.randint(0, 256, (n, FS, *s.frame_shape), dtype=torch.uint8)
        else:
            out[k] = torch.randn(n, FS, *s.frame_shape)
    return out


def random_batch(sp: dict[str, KeySpec]) -> Batch:
    return Batch(random_obs(sp, B), torch.rand(B, A) * 2 - 1, torch.randn(B), torch.full((B,), 0.97),
                 random_obs(sp, B))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("pad", [1, 4])
def test_random_shift_is_an_exact_integer_crop_of_the_padded_image(pad: int, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    x = (torch.rand(16, 2, 12, 12) * 255).to(dtype)
    out = RandomShiftsAug(pad)(x)
    assert out.shape == x.shape and out.dtype == dtype
    padded = F.pad(x.float(), (pad,) * 4, mode="replicate").to(dtype)
    seen = set()
    for i in range(x.shape[0]):
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.equal(out[i], padded[i, :, dy:dy + 12, dx:dx + 12])]
        assert matches, f"sample {i} is not an integer shift of at most {pad} px"
        seen.add(matches[0])
    assert len(seen) > 1  # shifts are drawn per sample


def test_frozen_keeps_gradients_to_the_input_and_none_to_the_weights() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    net[1].bias.requires_grad_(False)  # a flag set before must survive
    x = torch.randn(5, 3, requires_grad=True)
    with frozen(net):
        y = net(x).sum()
    y.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    assert [p.requires_grad for p in net.parameters()] == [True, True, True, False]


def test_schedule_parses_linear_and_constants() -> None:
    assert schedule("linear(1.0,0.1,100)", 0) == pytest.approx(1.0)
    assert schedule("linear(1.0,0.1,100)", 50) == pytest.approx(0.55)
    assert schedule("linear(1.0,0.1,100)", 10_000) == pytest.approx(0.1)
    assert schedule(0.2, 123) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        schedule("cosine(1, 2)", 0)


def params_changed(before: torch.nn.Module, after: torch.nn.Module) -> bool:
    return any(not torch.equal(p, q) for p, q in zip(before.parameters(), after.parameters()))


@pytest.mark.parametrize("name,pixels", [("drqv2", True), ("sac", False), ("sac", True)])
def test_update_changes_every_network_with_finite_losses(name: str, pixels: bool) -> None:
    torch.manual_seed(0)
    cfg = tiny_cfg(**{"agent.name": name, "pixels": pixels, "agent.allow_pixels": True})
    sp = spec(pixels)
    agent = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
    before = copy.deepcopy(agent)
    for _ in range(2):
        metrics = agent.update(random_batch(sp), step=10)
    assert {"critic_loss", "actor_loss"} <= set(metrics)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    nets = ["actor", "critic", "critic_target"] + (["encoder"] if pixels else [])
    for net in nets:
        assert params_changed(getattr(before, net), getattr(agent, net)), f"{name}: {net} did not change"
    if name == "sac":
        assert not torch.equal(before.log_alpha, agent.log_alpha)  # learnable temperature


@pytest.mark.parametrize("privileged", [False, True], ids=["plain", "privileged_critic"])
def test_td_target_on_a_second_thread_gives_the_same_updates(privileged: bool) -> None:
    """agent.parallel_target only runs the TD target beside the critic's forward: the random
    draws keep their serial order, so losses, parameters and the generator after a few updates
    are bitwise those of the serial update."""
    sp = {**spec(True), "privileged_state": KeySpec((7,), torch.float32)} if privileged else spec(True)
    extra = {"agent.privileged_critic": True} if privileged else {}
    torch.manual_seed(1)
    batches = [random_batch(sp) for _ in range(3)]
    runs = {}
    for parallel in (True, False):
        torch.manual_seed(0)
        cfg = tiny_cfg(**{"agent.name": "drqv2", "pixels": True, "agent.parallel_target": parallel, **extra})
        agent = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
        metrics = [agent.update(b, step=10) for b in batches]
        runs[parallel] = (agent.state_dict(), metrics, torch.rand(4))
    (params, metrics, rng), (params_serial, metrics_serial, rng_serial) = runs[True], runs[False]
    assert torch.equal(rng, rng_serial)
    for m, ms in zip(metrics, metrics_serial):
        assert m.keys() == ms.keys() and all(torch.equal(m[k], ms[k]) for k in m)
    for k, v in params.items():
        assert torch.equal(v, params_serial[k]), k


def test_an_agent_with_its_second_thread_running_copies_and_the_copy_updates_alike() -> None:
    """A copy of an agent whose TD-target thread has run (deepcopy: tests, evaluation forks) gets
    its own thread, and copy and original make the same update from the same random state."""
    sp = spec(True)
    torch.manual_seed(0)
    cfg = tiny_cfg(**{"agent.name": "drqv2", "pixels": True, "agent.parallel_target": True})
    agent = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
    agent.update(random_batch(sp), step=10)
    clone = copy.deepcopy(agent)
    batch, state = random_batch(sp), torch.get_rng_state()
    metrics = agent.update(batch, step=10)
    torch.set_rng_state(state)
    metrics_clone = clone.update(batch, step=10)
    assert all(torch.equal(metrics[k], metrics_clone[k]) for k in metrics)
    for k, v in agent.state_dict().items():
        assert torch.equal(v, clone.state_dict()[k]), k


@pytest.mark.parametrize("name,pixels", [("drqv2", True), ("sac", False)])
def test_act_shapes_bounds_and_determinism(name: str, pixels: bool) -> None:
    cfg = tiny_cfg(**{"agent.name": name, "pixels": pixels})
    sp = spec(pixels)
    agent = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
    obs = random_obs(sp, 5)
    explore = agent.act(obs, step=0, eval_mode=False)
    assert explore.shape == (5, A) and explore.abs().max() <= 1.0
    assert not explore.requires_grad
    assert torch.equal(agent.act(obs, 0, eval_mode=True), agent.act(obs, 0, eval_mode=True))
    assert not torch.equal(agent.act(obs, 0, eval_mode=False), agent.act(obs, 0, eval_mode=False))


def test_drqv2_low_dim_state_reaches_the_policy() -> None:
    """The fused low-dim state must change the action for the same image."""
    cfg = tiny_cfg()
    sp = spec(True)
    agent = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
    obs = random_obs(sp, 2)
    obs2 = {**obs, "low_dim_state": obs["low_dim_state"] + 5.0}
    assert not torch.allclose(agent.act(obs, 0, True), agent.act(obs2, 0, True))


def test_drqv2_refuses_state_only_observations() -> None:
    with pytest.raises(ValueError, match="pixels"):
        make_agent(tiny_cfg().agent, spec(False), FS, A, torch.device("cpu"))


@pytest.mark.parametrize("teacher", [False, True])
@pytest.mark.parametrize("q_weight,actors_equal", [(0.0, True), (1.0, False)])
def test_actor_q_weight_zero_makes_the_actor_learn_from_the_demo_rows_alone(q_weight: float,
                                                                          actors_equal: bool, teacher: bool) -> None:
    """agent.actor_q_weight=0 with BC on: the actor's update does not depend on the critic
    (two agents that differ only in their critics end with the same actor); at 1 it does, also
    beside a state teacher (experiment=pixels_cpu_rl against pixels_cpu)."""
    sp = {**spec(True), "privileged_state": KeySpec((7,), torch.float32)} if teacher else spec(True)
    extra = {"agent.privileged_critic": True, "agent.teacher_weight": 1.0, "agent.bc_pretrain_steps": 1} \
        if teacher else {}
    cfg = tiny_cfg(**{"agent.name": "drqv2", "pixels": True, "agent.bc_weight": 1.0,
                      "agent.actor_q_weight": q_weight, **extra})
    torch.manual_seed(0)
    a = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
    b = copy.deepcopy(a)
    with torch.no_grad():
        for p in b.critic.parameters():
            p.add_(0.5 * torch.randn_like(p))
    batch = random_batch(sp)
    batch.demo = torch.arange(B) < B // 2
    for agent in (a, b):
        torch.manual_seed(1)  # the same augmentation and noise draws for both
        agent.update(batch, step=10)
    assert (not params_changed(a.actor, b.actor)) == actors_equal


def test_low_dim_standardisation_uses_running_stats_of_training_batches() -> None:
    """agent.normalize_low_dim: the networks see the low-dim state standardised by the running
    mean and variance of the batches trained on (merged exactly across batches); the stats
    travel in the state dict (snapshots), and without the option the state passes unchanged."""
    from learning.networks import ObsFeatures

    sp = {"low_dim_state": KeySpec((2,), torch.float32)}
    g = torch.Generator().manual_seed(0)
    batches = [{"low_dim_state": torch.randn(n, FS, 2, generator=g) * torch.tensor([0.01, 3.0]) + torch.tensor([0.2, -5.0])}
               for n in (7, 50, 13)]
    feats = ObsFeatures(sp, FS, normalize_low=True)
    assert torch.equal(feats.low(batches[0]), feats.raw_low(batches[0]))  # no stats yet: unchanged
    for b in batches:
        feats.observe(b)
    every = torch.cat([feats.raw_low(b) for b in batches]).double()                 # (70, FS*2)
    z = torch.cat([feats.low(b) for b in batches])
    expected = (every - every.mean(0)) / every.std(0, unbiased=False)
    assert torch.allclose(z.double(), expected, atol=1e-3)   # float32 input, eps 1e-8 on a 1e-4 variance
    assert torch.allclose(z.mean(0), torch.zeros(FS * 2), atol=1e-4) and torch.allclose(z.std(0, unbiased=False),
                                                                                   torch.ones(FS * 2), atol=1e-3)
    plain = ObsFeatures(sp, FS)
    plain.observe(batches[0])
    assert torch.equal(plain.low(batches[1]), plain.raw_low(batches[1])) and not list(plain.buffers())

    cfg = tiny_cfg(**{"agent.name": "drqv2", "pixels": True, "agent.normalize_low_dim": True})
    sp = spec(True)
    agent = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
    batch = random_batch(sp)
    agent.update(batch, step=10)
    fresh = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
    fresh.load_snapshot_state(agent.snapshot_state())
    assert torch.equal(fresh.features.low(batch.obs), agent.features.low(batch.obs))
    # snapshots from before the stats moved into RunningNorm named them features.low_{mean,var,count}
    state = agent.snapshot_state()
    state["modules"] = {k.replace("features.low_norm.", "features.low_"): v for k, v in state["modules"].items()}
    older = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
    older.load_snapshot_state(state)
    assert torch.equal(older.features.low(batch.obs), agent.features.low(batch.obs))


def test_critic_layer_norm_keeps_q_bounded_far_from_the_data() -> None:
    """agent.critic_layer_norm (RLPD): normalised hidden layers bound |Q| by the output layer's
    weights whatever the input, so a low-dim state 10^4 times too large cannot blow up DrQ-v2's
    TD error; without it the error grows with the input. The option is kept in snapshots.
    (SAC's target adds the actor's entropy, which the critic's norm does not bound.)"""
    name, pixels = "drqv2", True
    sp = spec(pixels)
    batch = random_batch(sp)
    for obs in (batch.obs, batch.next_obs):
        obs["low_dim_state"] = obs["low_dim_state"] * 1e4
    loss = {}
    for ln in (False, True):
        cfg = tiny_cfg(**{"agent.name": name, "pixels": pixels, "agent.critic_layer_norm": ln})
        torch.manual_seed(0)
        agent = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
        loss[ln] = float(agent.update(batch, step=10)["critic_loss"])
        fresh = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
        fresh.load_snapshot_state(agent.snapshot_state())
    assert loss[True] < 1e3 < loss[False], loss


def test_privileged_critic_values_the_cube_pose_and_the_policy_never_reads_it() -> None:
    """agent.privileged_critic: the critic's Q reads the privileged state and not the image; the
    actor reads neither the privileged state (a deployed policy has no simulator) in either mode.
    Every network still learns."""
    sp = {**spec(True), "privileged_state": KeySpec((7,), torch.float32)}
    torch.manual_seed(0)
    batch = random_batch(sp)
    other_image = copy.deepcopy(batch)
    other_image.obs["rgb_wrist"] = torch.randint(0, 256, other_image.obs["rgb_wrist"].shape, dtype=torch.uint8)
    other_pose = copy.deepcopy(batch)
    other_pose.obs["privileged_state"] = other_pose.obs["privileged_state"] + 1.0

    def q_after_update(cfg, b: Batch) -> float:
        torch.manual_seed(1)
        agent = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
        return float(agent.update(b, step=10)["critic_q1"])

    for privileged in (True, False):
        cfg = tiny_cfg(**{"agent.name": "drqv2", "pixels": True, "agent.privileged_critic": privileged})
        q = q_after_update(cfg, batch)
        assert (q_after_update(cfg, other_pose) != q) == privileged
        assert (q_after_update(cfg, other_image) != q) == (not privileged)
        torch.manual_seed(2)
        agent = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
        assert torch.equal(agent.act(batch.obs, 0, eval_mode=True), agent.act(other_pose.obs, 0, eval_mode=True))
        before = copy.deepcopy(agent)
        agent.update(batch, step=10)
        for name in ("encoder", "actor", "critic"):
            assert params_changed(getattr(before, name), getattr(agent, name)), (privileged, name)


@pytest.mark.parametrize("members", [1, 3])
def test_teacher_clones_the_demos_from_state_and_the_actor_follows_it_on_every_row(members: int) -> None:
    """agent.teacher_weight: BC pre-training clones a state teacher that reads the privileged
    state; afterwards the actor, which never reads that state, learns the teacher's action on
    new rows that are not demos (their replay actions point the other way), the teacher stays
    frozen, and a snapshot carries it. With agent.teacher_members the teacher's action is the
    mean of members that each fit the demos and disagree off them."""
    sp = {**spec(True), "privileged_state": KeySpec((7,), torch.float32)}
    n, way = 32, torch.tensor([0.5, -0.5, 0.5, -0.5])

    def rows(is_demo: bool) -> Batch:
        obs = random_obs(sp, n)
        expert = way * torch.sign(obs["privileged_state"][:, -1, :1])   # (n, A): follows the cube pose
        b = Batch(obs, expert if is_demo else -expert, torch.randn(n), torch.full((n,), 0.97), random_obs(sp, n))
        b.demo = torch.full((n,), is_demo)
        return b

    torch.manual_seed(0)
    demo, online = rows(True), rows(False)
    cfg = tiny_cfg(**{"agent.name": "drqv2", "pixels": True, "agent.privileged_critic": True,
                      "agent.teacher_weight": 1.0, "agent.actor_q_weight": 0.0, "agent.actor_lr": 1e-3,
                      "agent.encoder_lr": 1e-3, "agent.bc_pretrain_steps": 1, "agent.teacher_members": members})
    agent = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
    for _ in range(200):
        agent.bc_step(demo)
    agent.end_bc_pretraining()
    frozen = copy.deepcopy(agent.snapshot_state()["modules"])
    assert float(((agent.teacher.label(demo.obs) - demo.action) ** 2).sum(-1).mean()) < 0.05
    labels = agent.teacher.label(online.obs)                      # (n, A) what the teacher says there
    each = agent.teacher.members(online.obs)                      # (K, n, A)
    assert each.shape[0] == members and torch.allclose(labels, each.mean(0))
    if members > 1:
        assert float(each.std(0).mean()) > 1e-3                   # different initialisations, different guesses

    def error() -> float:
        return float(((agent.act(online.obs, 0, eval_mode=True) - labels) ** 2).sum(-1).mean())

    start = error()
    for _ in range(100):
        out = agent.update(online, step=10)
    assert torch.isfinite(out["teacher_loss"])
    assert error() < 0.3 * start, (start, error())              # toward the teacher, not the replay actions
    teacher = [k for k in frozen if k.startswith("teacher.")]
    assert teacher and all(torch.equal(frozen[k], agent.state_dict()[k]) for k in teacher)
    restored = make_agent(cfg.agent, sp, FS, A, torch.device("cpu"))
    restored.load_snapshot_state(agent.snapshot_state())
    assert torch.equal(restored.act(online.obs, 0, eval_mode=True), agent.act(online.obs, 0, eval_mode=True))
    plain = make_agent(tiny_cfg(**{"agent.name": "drqv2", "pixels": True}).agent, sp, FS, A, torch.device("cpu"))
    assert "teacher_loss" not in plain.update(online, step=10)


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_encoder_leaves_its_input_images_as_they_were(channels_last: bool) -> None:
    enc = Encoder(6, 16, 16, chunk=2, channels_last=channels_last)
    for x in (torch.randint(0, 256, (3, 6, 16, 16), dtype=torch.uint8), torch.rand(3, 6, 16, 16) * 255):
        before = x.clone()
        for aug in (None, RandomShiftsAug(2)):
            enc(x, aug)
            assert torch.equal(x, before)
