"""Every key of a run, declared once: its type, default and allowed values.

The top-level keys and their sections are `TrainConfig`; each option of the `env`, `agent` and
`engine` groups is a dataclass of its own; the `task` group is `envs.config.TaskConfig` (the
task validates itself, so gym.make users get the same checks). `register()` hands the defaults
to Hydra's ConfigStore (`schema`, `schema/<group>/<option>`, `task/default`): conf/train.yaml and
the group yaml files only name them and hold what a choice changes, the presets under
conf/experiment/ what they change. `runconfig.rules` reads the rules from here.

`+foo=1`, `+agent.lr=nan` or `+replay.sizee=10` add keys that nothing reads; a run with them would
silently ignore the user, so every key of a run's config must be declared here.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from envs.config import (
    RENDERERS,
    SIM_DEVICES,
    ConfigError,
    RandomizationConfig,
    TaskConfig,
)
from runconfig.keys import (
    Rule,
    auto_or_bool,
    boolean,
    demo_source,
    device_name,
    integer,
    key,
    number,
    one_of,
    or_null,
    stddev_schedule,
)

MAX_DEMOS = 10_000  # expert episodes rolled out before training (each up to an episode of frames)
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit


def _resume_ok(v: Any) -> bool:
    return v is None or (isinstance(v, str) and bool(v.strip()))


def _chunk_ok(v: Any) -> bool:
    return v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


# --------------------------------------------------------------------------- top level
@dataclass(frozen=True)
class ReplayConfig:
    size: int = key(250000, integer(1), "transitions the online replay holds, allocated up front")
    nstep: int = key(3, integer(1), "n of the n-step TD targets")
    gamma: float = key(0.99, number(0.0, 1.0, low_open=True), "discount")


@dataclass(frozen=True)
class WandbConfig:
    use: bool = key(False, boolean(), "log to Weights & Biases (opt in)")
    project: str = key("liftbase")
    entity: str | None = key(None)
    name: str | None = key(None)
    mode: str = key("offline", one_of("offline", "online", "disabled"), "online only when asked")


@dataclass(frozen=True)
class TensorBoardConfig:
    use: bool = key(True, boolean(), "TensorBoard logs under <run>/tb")


@dataclass(frozen=True)
class CsvConfig:
    use: bool = key(True, boolean(), "train.csv and eval.csv in the run directory")


def _override_ok(v: Any) -> bool:
    return isinstance(v, (list, tuple, ListConfig)) and all(isinstance(o, str) and "=" in o and o.split("=", 1)[0].strip()
                                                for o in v)


@dataclass(frozen=True)
class PipelineConfig:
    """`experiment=pixels_full`: a state teacher trained by RL, then the pixel student it teaches,
    in <run>/teacher and <run>/student (launch/pipeline.py)."""

    teacher_experiment: str | None = key(None, or_null(Rule(lambda v: isinstance(v, str) and bool(v.strip()),
                                                            "a preset name under conf/experiment/")),
                                         "the teacher phase's preset; null: no pipeline, one run")
    teacher_overrides: tuple[str, ...] = key((), Rule(_override_ok, "a list of 'key=value' strings"),
                                             "overrides of the teacher phase (its task is the student's)")
    teacher_snapshot: str = key("final", one_of("final", "best"),
                                "which snapshot of a teacher run teaches: its last, or the best on its validation "
                                "episodes (snapshots/best_snapshot.pt; the teacher needs num_val_episodes > 0)")


@dataclass(frozen=True)
class TrainConfig:
    """The top-level keys. Names follow RoboBase's, so one vocabulary serves both engines; the
    native engine counts every cadence in env frames (transitions summed over all envs)."""

    seed: int = key(1, integer(0, MAX_SEED, native=False))
    pixels: bool = key("${agent.pixels}", boolean(), "set by the agent: drqv2 -> pixels, sac -> state")
    visual_observation_shape: tuple[int, int] = key((84, 84), None, "[S, S] image size (checked by the task)")
    frame_stack: int = key(3, integer(1, 32, native=False))
    action_sequence: int = key(1, one_of(1, native=False), "RL without action chunking")
    num_train_envs: int = key(1, integer(1, 65536, native=False))
    num_train_frames: int = key(1000000, integer(1))
    train_minutes: float | None = key(None, or_null(number(0.0, 1e6, low_open=True)),
                                      "wall-clock budget over all sessions: stop, evaluate, snapshot")
    num_explore_steps: int = key(4000, integer(0), "frames of uniform random actions first")
    replay_size_before_train: int = key(4000, integer(0))
    update_every_steps: int = key(2, integer(1), "env frames per update (update-to-data 0.5)")
    batch_size: int = key(256, integer(1))
    eval_every_steps: int = key(10000, integer(0))
    eval_at_start: bool = key(False, boolean(), "also evaluate before the first env step")
    num_eval_episodes: int = key(10, integer(0))
    num_val_episodes: int = key(0, integer(0), "validation episodes at each evaluation, seeded apart from the eval "
                                "episodes; the best snapshot on them is kept as snapshots/best_snapshot.pt")
    num_eval_envs: int | None = key(None, or_null(integer(1, 1024)),
                                    "envs an evaluation steps at once; null: the backend's default (MuJoCo 10, "
                                    "Genesis 16), at most num_eval_episodes")
    save_snapshot: bool = key(True, boolean())
    snapshot_every_n: int = key(50000, integer(1))
    keep_snapshots: int = key(5, integer(0), "numbered snapshots kept (the newest); 0 = all")
    log_every: int = key(1000, integer(1))
    log_eval_video: bool = key(True, boolean())
    demos: int | str = key(0, demo_source(MAX_DEMOS), "scripted-expert episodes rolled out before training, or "
                           "a LeRobotDataset v3.0 directory to load (native engine)")
    demo_noise: float = key(0.0, number(0.0, 1.0), "std of noise on the expert's motion actions (DART)")
    demo_ratio: float | None = key(None, or_null(number(0.0, 1.0)),
                                   "share of each batch from the demos; null: 0.5 with demos (RLPD), else 0")
    use_self_imitation: bool = key(False, boolean(), "successful online episodes join the demos' share")
    device: str = key("auto", device_name(), "auto: cuda when available")
    torch_threads: int | None = key(1, or_null(integer(1, native=False)), "CPU intra-op threads; null: torch's")
    overlap_env_step: bool | str = key("auto", auto_or_bool(),
                                       "step the envs while the due updates run on a worker thread (same results); "
                                       "auto: when torch_threads leaves a CPU core free")
    resume: str | None = key(None, Rule(_resume_ok, "null or a path (run directory or .pt file)"),
                             "a run directory or a snapshot .pt")
    resume_replay: bool = key(True, boolean())
    teacher: str | None = key(None, Rule(_resume_ok, "null or a path (run directory or .pt file)"),
                              "a state-policy run or snapshot whose mean action teaches the pixel actor "
                              "(agent.teacher_weight) instead of a clone of the demos")
    overwrite: bool = key(False, boolean(), "a new run into a directory that already holds a run (not being resumed) "
                          "deletes that run's files first; without it such a run is refused")
    allow_state_reward_with_pixels: bool = key(False, boolean(native=False),
                                               "run a state-only reward version with a pixel agent")
    replay: ReplayConfig = dataclasses.field(default_factory=ReplayConfig)
    wandb: WandbConfig = dataclasses.field(default_factory=WandbConfig)
    tb: TensorBoardConfig = dataclasses.field(default_factory=TensorBoardConfig)
    csv: CsvConfig = dataclasses.field(default_factory=CsvConfig)
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)


# --------------------------------------------------------------------------- env group
@dataclass(frozen=True)
class EnvConfig:
    name: str = key("mujoco_lift")
    factory: str = key("factories.MujocoLiftFactory", None, "the EnvFactory class (factories.make_factory)")
    episode_length: int = key(200, None, "env steps per episode (checked by the task)")
    stddev_schedule: float | str = key("linear(1.0,0.1,500000)", None, "exploration std DrQ-v2 reads")


@dataclass(frozen=True)
class MujocoEnvConfig(EnvConfig):
    """MuJoCo: the native engine steps num_train_envs envs in turn as one batch in its process;
    RoboBase gets an AsyncVectorEnv of them (one process each) when num_train_envs > 1."""


@dataclass(frozen=True)
class GenesisEnvConfig(EnvConfig):
    """Genesis: num_train_envs envs in one scene."""

    name: str = key("genesis_lift")
    factory: str = key("factories.GenesisLiftFactory")
    sim_device: str = key("cpu", one_of(*SIM_DEVICES, native=False))
    renderer: str = key("auto", one_of(*RENDERERS, native=False),
                        "auto: BatchRenderer on CUDA when gs-madrona loads, else rasterizer")
    as_torch: bool | str = key("auto", auto_or_bool(native=False),
                               "what make_train_env returns: auto = tensors with engine=native, NumPy for RoboBase")


ENVS: dict[str, type[EnvConfig]] = {"mujoco_lift": MujocoEnvConfig, "genesis_lift": GenesisEnvConfig}


# --------------------------------------------------------------------------- agent group
@dataclass(frozen=True)
class AgentConfig:
    """What every native agent reads."""

    name: str = key("drqv2", one_of("drqv2", "sac"))
    pixels: bool = key(True, None, "the agent's observations (the top-level `pixels` follows it)")
    actor_lr: float = key(1e-4, number(0.0, 1.0, low_open=True))
    critic_lr: float = key(1e-4, number(0.0, 1.0, low_open=True))
    encoder_lr: float = key(1e-4, number(0.0, 1.0, low_open=True))
    feature_dim: int = key(50, integer(1))
    hidden_dim: int = key(1024, integer(1))
    critic_target_tau: float = key(0.01, number(0.0, 1.0, low_open=True))
    augmentation_pad: int = key(4, integer(0, when="pixels"), "random-shift padding of the images")
    bc_weight: float = key(0.0, number(0.0), "BC term on the demo rows (needs demos > 0; 0 = off)")
    actor_q_weight: float = key(1.0, number(0.0), "weight of the normalised policy term beside imitation terms")
    bc_pretrain_steps: int = key(0, integer(0), "BC steps on the demos before training (needs demos > 0)")
    normalize_low_dim: bool = key(False, boolean(), "standardise the low-dim state by running batch statistics")
    critic_layer_norm: bool = key(False, boolean(), "LayerNorm in the Q heads' hidden layers (RLPD)")
    precision: str = key("auto", one_of("auto", "fp32", "bf16", when="pixels"),
                         "encoder: bf16 autocast of the convs | auto: bf16 on a CPU with native bf16")
    encoder_chunk: int | str = key("auto", Rule(_chunk_ok, "'auto' or an integer >= 0 (0 = the whole batch at once)",
                                                when="pixels"), "images per conv pass | auto: 32 on CPU, 0 on GPU")
    channels_last: bool | str = key("auto", auto_or_bool(when="pixels"), "NHWC activations | auto: on CPU")


@dataclass(frozen=True)
class DrQV2Config(AgentConfig):
    """DrQ-v2 from pixels (Yarats et al. 2021) with the low-dim state fused in."""

    stddev_schedule: float | str = key("${env.stddev_schedule}", stddev_schedule(),
                                       "exploration std: a constant or 'linear(init,final,frames)'")
    stddev_clip: float = key(0.3, number(0.0))
    privileged_critic: bool = key(False, boolean(), "the critic reads low-dim + privileged state, not the image")
    teacher_weight: float = key(0.0, number(0.0), "the actor regresses onto a cloned state teacher (0 = off)")
    teacher_lr: float = key(1e-3, number(0.0, 1.0, low_open=True))
    teacher_members: int = key(1, integer(1), "the teacher is the mean of this many cloned MLPs")
    parallel_target: bool | str = key("auto", auto_or_bool(),
                                      "TD target on a second thread | auto: on a CPU with a core to spare")


@dataclass(frozen=True)
class SACConfig(AgentConfig):
    """SAC from state (Haarnoja et al. 2018)."""

    name: str = key("sac", one_of("drqv2", "sac"))
    pixels: bool = key(False)
    actor_lr: float = key(3e-4, number(0.0, 1.0, low_open=True))
    critic_lr: float = key(3e-4, number(0.0, 1.0, low_open=True))
    encoder_lr: float = key(3e-4, number(0.0, 1.0, low_open=True))
    hidden_dim: int = key(256, integer(1))
    critic_target_tau: float = key(0.005, number(0.0, 1.0, low_open=True))
    init_temperature: float = key(0.1, number(0.0, low_open=True))
    alpha_lr: float = key(3e-4, number(0.0, 1.0, low_open=True))
    learnable_temperature: bool = key(True, boolean())
    allow_pixels: bool = key(False, boolean(), "SAC on images (DrQ-style encoder) must be asked for")


AGENTS: dict[str, type[AgentConfig]] = {"drqv2": DrQV2Config, "sac": SACConfig}


# --------------------------------------------------------------------------- engine group
@dataclass(frozen=True)
class NativeEngineConfig:
    """The project's own off-policy trainer (learning/)."""

    name: str = key("native")


@dataclass(frozen=True)
class RobobaseEngineConfig:
    """RoboBase's Workspace driven through the same factory (docs/robobase.md)."""

    name: str = key("robobase")
    method: str = key("${agent.name}", None, "robobase.cfgs/method/<name>.yaml, after `methods`")
    methods: tuple[tuple[str, str], ...] = key((("drqv2", "drqv2"), ("sac", "sac_lix")), None,
                                               "our agent names -> RoboBase's method configs")
    replay_num_workers: int = key(0, None, "DataLoader workers reading RoboBase's replay files")
    pin_memory: bool = key(False)
    cadence_in_frames: bool = key(True, None, "eval/snapshot/log/explore/stddev counts are env frames")
    overrides: tuple[str, ...] = key((), None, "extra RoboBase overrides")


ENGINES: dict[str, type] = {"native": NativeEngineConfig, "robobase": RobobaseEngineConfig}

# Group options whose yaml files hold a value only (the choice itself); the task checks them.
CHOICE_KEYS = ("curriculum_stage.stage", "reward_version.name")
# Task options set by other keys, not under `task.` (see factories.task_kwargs).
RUN_LEVEL_TASK_FIELDS = ("curriculum_stage", "reward_version", "pixels", "image_size", "episode_length")
GROUPS = ("env", "task", "agent", "reward_version", "curriculum_stage", "engine")
OPEN = frozenset({"engine.methods"})   # maps whose keys are the user's (agent name -> RoboBase method)


# --------------------------------------------------------------------------- defaults and keys
def _value(v: Any) -> Any:
    if dataclasses.is_dataclass(v):
        return defaults(v)
    if isinstance(v, tuple) and v and all(isinstance(x, tuple) and len(x) == 2 for x in v):
        return {a: b for a, b in v}                                      # a declared map
    return list(v) if isinstance(v, tuple) else v


def defaults(cls_or_obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The declared defaults of a dataclass (or the values of an instance) as a plain dict."""
    obj = cls_or_obj() if isinstance(cls_or_obj, type) else cls_or_obj
    return {f.name: _value(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in skip}


def task_defaults() -> dict[str, Any]:
    """The `task` group's defaults: TaskConfig's, less the options other keys set."""
    return defaults(TaskConfig(), skip=RUN_LEVEL_TASK_FIELDS)


def register() -> None:
    """Put the declared defaults into Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="schema", node=defaults(TrainConfig))
    for group, options in (("env", ENVS), ("agent", AGENTS), ("engine", ENGINES)):
        for name, cls in options.items():
            cs.store(group=f"schema/{group}", name=name, node=defaults(cls))
    cs.store(group="task", name="default", node=task_defaults())


def declared_fields() -> Iterator[tuple[str, dataclasses.Field, str | None]]:
    """(dotted key, field, option) of every declared key with a rule; `option` is the group option
    that declares it (None for the top level and the keys every option of its group has)."""
    def walk(cls: type, prefix: str) -> Iterator[tuple[str, dataclasses.Field]]:
        for f in dataclasses.fields(cls):
            if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
                yield from walk(f.default_factory, f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}", f

    for k, f in walk(TrainConfig, ""):
        yield k, f, None
    for group, options, base in (("env", ENVS, EnvConfig), ("agent", AGENTS, AgentConfig)):
        base_names = {f.name for f in dataclasses.fields(base)}
        seen: set[str] = set()
        for name, cls in options.items():
            for f in dataclasses.fields(cls):
                own = f.name not in base_names
                if own or f.name not in seen:
                    seen.add(f.name)
                    yield f"{group}.{f.name}", f, (name if own else None)


@lru_cache(maxsize=1)
def known_keys() -> frozenset[str]:
    """Every declared dotted key (and section), of every group option."""
    out: set[str] = set(GROUPS) | set(CHOICE_KEYS)

    def flatten(node: dict[str, Any], prefix: str) -> None:
        for k, v in node.items():
            out.add(prefix + k)
            if isinstance(v, dict) and prefix + k not in OPEN:
                flatten(v, f"{prefix}{k}.")

    flatten(defaults(TrainConfig), "")
    for group, options in (("env", ENVS), ("agent", AGENTS), ("engine", ENGINES)):
        for cls in options.values():
            flatten(defaults(cls), f"{group}.")
    task = task_defaults()
    flatten(task, "task.")
    flatten(task, "env.task.")                                            # an env may carry task options of its own
    out.add("env.task")
    return frozenset(out)


def _flatten_cfg(node: Any, prefix: str, out: set[str]) -> None:
    for k, v in node.items():
        key_ = f"{prefix}{k}"
        out.add(key_)
        if isinstance(v, dict) and key_ not in OPEN:
            _flatten_cfg(v, key_ + ".", out)


def unknown_keys(cfg: DictConfig) -> list[str]:
    found: set[str] = set()
    _flatten_cfg(OmegaConf.to_container(cfg, resolve=False), "", found)
    known = known_keys()
    return sorted(k for k in found if k not in known and not any(k.startswith(o + ".") for o in OPEN))


def nearest(key_: str) -> str | None:
    """The declared key most like `key_`: a sibling first (a typo in the last part), else any."""
    parent, _, leaf = key_.rpartition(".")
    siblings = sorted(k.rpartition(".")[2] for k in known_keys() if k.rpartition(".")[0] == parent)
    tails = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.4)
    if tails:
        return f"{parent}.{tails[0]}" if parent else tails[0]
    match = difflib.get_close_matches(key_, sorted(known_keys()), n=1, cutoff=0.6)
    return match[0] if match else None


def declared_default(dotted: str) -> Any:
    """The default declared for a dotted key ('demo_noise', 'env.sim_device'), as conf/ holds it
    (tuples as lists); KeyError for a key nothing declares."""
    for name, f, _ in declared_fields():
        if name == dotted:
            return _value(f.default)
    raise KeyError(dotted)


def agent_config(node: DictConfig | dict[str, Any]) -> AgentConfig:
    """The typed config of the agent `node.name` from its (validated) `agent` node. Keys the node
    lacks (a snapshot older than the key) take their declared default; keys no agent reads are left."""
    values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    name = values.get("name")
    if name not in AGENTS:
        raise ConfigError(f"agent.name={name!r} is invalid: allowed {', '.join(AGENTS)}")
    cls = AGENTS[name]
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            value = values[f.name]
        elif not str(f.default).startswith("${"):
            value = f.default
        else:
            raise ConfigError(f"config key 'agent.{f.name}' is missing: the {name} agent reads it")
        kwargs[f.name] = float(value) if f.type == "float" and isinstance(value, int) else value
    return cls(**kwargs)


__all__ = ["AGENTS", "ENGINES", "ENVS", "AgentConfig", "DrQV2Config", "RandomizationConfig", "SACConfig",
           "TaskConfig", "TrainConfig", "agent_config", "declared_default", "declared_fields", "defaults", "known_keys", "nearest",
           "register", "unknown_keys"]
