"""Settings as a user gives them (flags, a TOML file, a Python call), each declared once.

Every field of `Settings` carries its declaration: the kind of value it takes (how it is
written and checked, `values`), its help, its flags and whether `sweep` may vary it. The CLI's
options, the TOML keys and sweep's lists are all derived from these declarations, so a new
setting is one field here and no command can forget it. `Settings` keeps the user's values as
given; `problem.build` resolves them for one policy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from pipesim.errors import ConfigError
from pipesim.settings.hardware import Gpu, Model
from pipesim.settings.text_input import read_toml
from pipesim.settings.values import (
    ACTIVATIONS,
    ATTENTION,
    COSTS,
    COUNT,
    COUNTS,
    CV,
    DURATION,
    FACTOR,
    FRACTION,
    GPU,
    MEMORY,
    MODEL,
    NAME,
    RATE,
    RECOMPUTE,
    RESERVE,
    RUNTIME,
    SEED,
    SHARE,
    SIZE,
    SLOW_LINKS,
    STRAGGLERS,
    SWITCH,
    Reserve,
    Straggler,
    ValueKind,
    choice,
)

RECOMPUTE_KIND = choice(RECOMPUTE)
ATTENTION_KIND = choice(ATTENTION)
RUNTIME_KIND = choice(RUNTIME)

DEFAULT_POLICY = "1f1b"


class Group(StrEnum):
    """What a setting is about; its value is the --help section that lists it."""

    PIPELINE = "Pipeline"
    COSTS = "Costs (ms per microbatch)"
    COMMUNICATION = "Communication"
    MODEL = "Model and GPU"
    MEMORY = "Memory"
    VARIABILITY = "Variability"


PIPELINE = Group.PIPELINE
COSTS_PANEL = Group.COSTS
COMMUNICATION = Group.COMMUNICATION
MODEL_PANEL = Group.MODEL
MEMORY_PANEL = Group.MEMORY
VARIABILITY_PANEL = Group.VARIABILITY


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting: everything the CLI, TOML files and sweeps need."""

    name: str
    """The `Settings` field and the TOML key (dashes are accepted for underscores)."""
    kind: ValueKind
    help: str
    group: Group
    """What it is about, and the --help section it is listed in."""
    flags: tuple[str, ...] = ()
    """The flag names; empty: --name-with-dashes."""
    shown_default: str | None = None
    """What --help shows as the default."""
    sweepable: bool = False
    """Whether `pipesim sweep` may take a list of its values."""
    repeatable: bool = False
    """Whether the flag may be given several times (each adds entries to the list)."""
    default: Any = None
    """The value used when it is not given (`Settings.resolved`); None where the policy or
    other settings decide it."""
    needs_model: bool = False
    """Whether it only means something with --model (given without one: an error)."""

    @property
    def panel(self) -> str:
        return self.group.value

    @property
    def flag(self) -> str:
        """The long flag, as messages name it."""
        long = [flag for flag in self.flags if flag.startswith("--")]
        return long[0].split("/")[0] if long else "--" + self.name.replace("_", "-")


def _declare(field_default: Any, kind: ValueKind, help: str, group: Group, **more: Any) -> Any:
    """A `Settings` field with its declaration attached (the name is filled in below); --help
    shows the default unless `shown_default` words it otherwise."""
    if more.get("shown_default") is None and more.get("default") not in (None, ()):
        default = more["default"]
        more["shown_default"] = f"{default:g}" if isinstance(default, float) else str(default)
    return dataclasses.field(
        default=field_default, metadata={"setting": Setting("", kind, help, group, **more)}
    )


@dataclass(frozen=True)
class Settings:
    """Everything a run can be told. Costs are lists: one value, one per device, or one per
    stage; `weight` None means half of the backward."""

    policy: str | None = _declare(
        None,
        NAME,
        "Schedule to simulate (see `pipesim policies`), or module:Class / file.py:Class for "
        "your own.",
        PIPELINE,
        default=DEFAULT_POLICY,
    )
    """None: `DEFAULT_POLICY`."""
    stages: int | None = _declare(
        None, COUNT, "Pipeline devices p.", PIPELINE, flags=("-p", "--stages"),
        shown_default="4", sweepable=True,
    )  # fmt: skip
    """None: the policy's default (4, or a schedule file's ranks)."""
    microbatches: int | None = _declare(
        None, COUNT, "Microbatches m.", PIPELINE, flags=("-m", "--microbatches"),
        shown_default="8", sweepable=True,
    )  # fmt: skip
    """None: the policy's default (8, or a schedule file's)."""
    chunks: int | None = _declare(
        None, COUNT, "Model chunks per device v, for interleaved schedules.", PIPELINE,
        flags=("-v", "--chunks"), shown_default="2", sweepable=True,
    )  # fmt: skip
    """None: the policy decides (1, or 2 for those that interleave or fold into a V)."""
    microbatch_group_size: int | None = _declare(
        None, COUNT, "Interleaved schedules: microbatches each chunk takes in turn (Megatron's "
        "microbatch_group_size_per_vp_stage).", PIPELINE, shown_default="p", sweepable=True,
    )  # fmt: skip
    forward: tuple[float, ...] | None = _declare(
        None, COSTS, "Forward ms per microbatch: one value, one per device or one per stage.",
        COSTS_PANEL, shown_default="1, or from --model",
    )  # fmt: skip
    backward: tuple[float, ...] | None = _declare(
        None, COSTS, "Whole backward ms (input + weight gradient) per microbatch.",
        COSTS_PANEL, shown_default="2, or from --model",
    )  # fmt: skip
    weight: tuple[float, ...] | None = _declare(
        None, COSTS, "Weight-gradient part of the backward, for split-backward schedules.",
        COSTS_PANEL, shown_default="backward / 2, or from --model",
    )  # fmt: skip
    total_forward: float | None = _declare(
        None, DURATION, "The whole model's forward ms per microbatch, split evenly over the "
        "p*v stages: the model stays the same while p changes.", COSTS_PANEL,
    )  # fmt: skip
    total_backward: float | None = _declare(
        None, DURATION, "The whole model's backward ms per microbatch, split evenly over the "
        "p*v stages.", COSTS_PANEL,
    )  # fmt: skip
    op_overhead: tuple[float, ...] | None = _declare(
        None, COSTS, "Milliseconds the runtime spends on every op besides computing it "
        "(launching it, posting its sends and receives), whatever the op's size: a schedule "
        "of more, smaller ops (interleaved chunks, split backwards) pays it more often. One "
        "value, one per device or one per stage.", COSTS_PANEL, shown_default="0",
    )  # fmt: skip
    overlap_cost: float = _declare(
        1.0, FACTOR, "A fused forward-and-backward pair (DualPipe's, OVERLAP_F_B) takes this "
        "times F+B of its halves: 1 runs them back to back, 0.7 hides 30%.",
        COSTS_PANEL, shown_default="1", sweepable=True,
    )  # fmt: skip
    comm_latency: float | None = _declare(
        None, DURATION, "Milliseconds a message between devices takes.", COMMUNICATION,
        shown_default="0, or the GPU's NVLink", sweepable=True,
    )  # fmt: skip
    activation_size: float | None = _declare(
        None, SIZE, "Bytes of one microbatch's activation message: 64MB, 1.5GiB, ...",
        COMMUNICATION, shown_default="0, or s*b*h*2 from --model", sweepable=True,
    )  # fmt: skip
    """0: messages cost latency only."""
    gradient_size: float | None = _declare(
        None, SIZE, "Bytes of a gradient message.", COMMUNICATION,
        shown_default="the activation's", sweepable=True,
    )  # fmt: skip
    bandwidth: float | None = _declare(
        None, RATE, "Link bandwidth within a node: 25GB/s, 200Gbit/s, ...", COMMUNICATION,
        shown_default="the GPU's NVLink", sweepable=True,
    )  # fmt: skip
    """Needed when sizes are given."""
    devices_per_node: int | None = _declare(
        None, COUNT, "Consecutive pipeline devices per node.", COMMUNICATION,
        shown_default="all in one node, or the GPU's per node / TP", sweepable=True,
    )  # fmt: skip
    inter_node_bandwidth: float | None = _declare(
        None, RATE, "Bandwidth of links between nodes.", COMMUNICATION,
        shown_default="--bandwidth", sweepable=True,
    )  # fmt: skip
    inter_node_latency: float | None = _declare(
        None, DURATION, "Milliseconds per message between nodes.", COMMUNICATION,
        shown_default="--comm-latency", sweepable=True,
    )  # fmt: skip
    blocking_comm: bool = _declare(
        False, SWITCH, "Whether a send holds its device until the message arrives.",
        COMMUNICATION, flags=("--blocking-comm/--overlap-comm",), shown_default="overlap",
    )  # fmt: skip

    runtime: str | None = _declare(
        None, RUNTIME_KIND, "How messages behave: async (sends overlap compute, receives are "
        "posted ahead: PyTorch's and the Zero Bubble runtimes, also named torch and "
        "zero-bubble), megatron-no-overlap (after each compute one batched exchange the "
        "device waits for, a send leaving when its receiver posts it) or megatron (that for "
        "1F1B, async for interleaved chunks, as Megatron-LM runs by default).",
        COMMUNICATION, default="async",
    )  # fmt: skip
    model: Model | None = _declare(  # noqa: RUF009 (a field with its declaration)
        None, MODEL, "A model: a preset (see `pipesim presets`) or a .toml file; costs, "
        "messages and memory are then derived from it.", MODEL_PANEL,
    )  # fmt: skip
    gpu: Gpu | None = _declare(  # noqa: RUF009
        None, GPU, "A GPU: a preset (see `pipesim presets`) or a .toml file: its TFLOPS, "
        "memory and links.", MODEL_PANEL,
    )  # fmt: skip
    seq_length: int | None = _declare(
        None, COUNT, "Tokens per sequence s.", MODEL_PANEL, shown_default="the model's",
        needs_model=True,
        sweepable=True,
    )  # fmt: skip
    micro_batch_size: int | None = _declare(
        None, COUNT, "Sequences per microbatch b.", MODEL_PANEL, default=1,
        sweepable=True,
    )  # fmt: skip
    global_batch_size: int | None = _declare(
        None, COUNT, "Sequences per step G: sets m = G / (b * data parallel).", MODEL_PANEL,
        sweepable=True,
    )  # fmt: skip
    data_parallel: int | None = _declare(
        None, COUNT, "Data-parallel replicas d of the pipeline.", MODEL_PANEL,
        default=1, sweepable=True,
    )  # fmt: skip
    tensor_parallel: int | None = _declare(
        None, COUNT, "Tensor-parallel degree t of each pipeline device.", MODEL_PANEL,
        needs_model=True,
        default=1, sweepable=True,
    )  # fmt: skip
    expert_parallel: int | None = _declare(
        None, COUNT, "Expert-parallel degree E of a mixture-of-experts model: each device "
        "holds 1/E of every MoE layer's routed experts, and each MoE layer sends its tokens "
        "to their experts and back (two all-to-alls in F, two in B).", MODEL_PANEL,
        needs_model=True,
        default=1, sweepable=True,
    )  # fmt: skip
    context_parallel: int | None = _declare(
        None, COUNT, "Context-parallel degree c: each sequence split over c ranks, which pass "
        "keys and values round a ring in every layer.", MODEL_PANEL, needs_model=True,
        default=1, sweepable=True,
    )  # fmt: skip
    cross_node_tp: bool | None = _declare(
        None, SWITCH, "Allow tensor parallelism across nodes (its collectives then run on the "
        "network).", MODEL_PANEL, flags=("--cross-node-tp/--no-cross-node-tp",),
        needs_model=True, shown_default="off",
    )  # fmt: skip
    gpus_per_node: int | None = _declare(
        None, COUNT, "GPUs per node: tensor parallelism stays inside one, and what leaves it "
        "crosses the network.", MODEL_PANEL, needs_model=True, shown_default="the GPU's",
    )  # fmt: skip
    tp_comm_overlap: float | None = _declare(
        None, SHARE, "The share of tensor-parallel collectives hidden under compute "
        "(Megatron-LM's --tp-comm-overlap with Transformer Engine's userbuffers).", MODEL_PANEL,
        needs_model=True, default=0.0, sweepable=True,
    )  # fmt: skip
    ep_comm_overlap: bool | None = _declare(
        None, SWITCH, "Hide expert all-to-alls under the other microbatch's compute by running "
        "each steady-state forward and backward of interleaved 1F1B as one combined step "
        "(Megatron-LM's --overlap-moe-expert-parallel-comm).", MODEL_PANEL, needs_model=True,
        flags=("--ep-comm-overlap/--no-ep-comm-overlap",), shown_default="off",
    )  # fmt: skip
    sequence_parallel: bool | None = _declare(
        None, SWITCH, "Sequence parallelism: activations and messages divided by t.",
        MODEL_PANEL, needs_model=True, flags=("--sequence-parallel/--no-sequence-parallel",),
        shown_default="on when t > 1",
    )  # fmt: skip
    mfu: float | None = _declare(
        None, FRACTION, "Model FLOPs utilization: the share of the GPU's peak an op achieves.",
        MODEL_PANEL, needs_model=True, default=0.5, sweepable=True,
    )  # fmt: skip
    recompute: str | None = _declare(
        None, RECOMPUTE_KIND, "Activation recomputation: none, selective (the attention core) "
        "or full (the whole layer).", MODEL_PANEL, needs_model=True, default="none",
    )  # fmt: skip
    attention: str | None = _declare(
        None, ATTENTION_KIND, "Attention kernel: flash (FlashAttention, SDPA, cuDNN: keeps "
        "O(s) per layer, computes the causal half) or eager (keeps the s*s scores).",
        MODEL_PANEL, needs_model=True, default="flash",
    )  # fmt: skip
    layers_per_stage: tuple[int, ...] | None = _declare(
        None, COUNTS, "Transformer layers on each stage (p*v values).", MODEL_PANEL,
        needs_model=True,
        shown_default="as even as possible",
    )  # fmt: skip
    layout: str | None = _declare(
        None, NAME, "Layers per stage in Megatron-LM's layout grammar: \"Et*9|t*10|t*9L\".",
        MODEL_PANEL, needs_model=True,
    )  # fmt: skip
    distributed_optimizer: bool | None = _declare(
        None, SWITCH, "Optimizer state sharded over the data-parallel replicas: 6 + 12/d "
        "bytes per parameter instead of 18.", MODEL_PANEL, needs_model=True,
        flags=("--distributed-optimizer/--no-distributed-optimizer",), shown_default="off",
    )  # fmt: skip
    activation_memory: float | None = _declare(
        None, MEMORY, "Without a model: bytes one microbatch's activations take on a device.",
        MEMORY_PANEL,
    )  # fmt: skip
    static_memory: float | None = _declare(
        None, MEMORY, "Without a model: bytes of weights, gradients and optimizer state per "
        "device.", MEMORY_PANEL,
    )  # fmt: skip
    activation_limit: float | None = _declare(
        None, ACTIVATIONS, "Schedules that plan under a memory limit (zb-auto, zb-v, pipesim "
        "optimize): at most K microbatches' worth of activations per device, held from a "
        "forward's start to its last backward's end.", MEMORY_PANEL, shown_default="none "
        "(zb-auto: the memory limit, when memory is known in bytes)", sweepable=True,
    )  # fmt: skip
    weight_memory: float | None = _declare(
        None, SHARE, "Split-backward schedules: the share of a microbatch's activations a "
        "stage keeps from B until W (the Zero Bubble paper's M_W / M_B).", MEMORY_PANEL,
        shown_default="from --model; else 1 (the whole, until W)", sweepable=True,
    )  # fmt: skip
    memory_limit: float | None = _declare(
        None, MEMORY, "Bytes a device holds; a device that needs more is out of memory.",
        MEMORY_PANEL, shown_default="the GPU's memory", sweepable=True,
    )  # fmt: skip
    memory_reserve: Reserve | None = _declare(  # noqa: RUF009
        None, RESERVE, "Memory a device never has for the model (CUDA context, NCCL buffers, "
        "fragmentation), subtracted from the limit: 4GB or 5%.", MEMORY_PANEL,
        shown_default="5% of a GPU's memory; 0 of a --memory-limit you give",
    )  # fmt: skip

    jitter: float | None = _declare(
        None, CV, "Each op's duration drawn around its cost with this coefficient of variation "
        "(lognormal).", VARIABILITY_PANEL, default=0.0, sweepable=True,
    )  # fmt: skip
    link_jitter: float | None = _declare(
        None, CV, "Each message's time drawn with this coefficient of variation.",
        VARIABILITY_PANEL, default=0.0, sweepable=True,
    )  # fmt: skip
    seed: int | None = _declare(
        None, SEED, "Seed of the draws: the same seed gives the same run.", VARIABILITY_PANEL,
        default=0,
    )  # fmt: skip
    stragglers: tuple[Straggler, ...] | None = _declare(
        None, STRAGGLERS, "A slow device: 3:1.3 (always 1.3x) or 3:2:0.1 (each op 2x with "
        "probability 0.1). Repeatable.", VARIABILITY_PANEL, flags=("--straggler",),
        repeatable=True, default=(), sweepable=True,
    )  # fmt: skip
    slow_links: tuple[tuple[int, int, float], ...] | None = _declare(
        None, SLOW_LINKS, "A slow link direction: 3-4:2 (messages from 3 to 4 take twice as "
        "long). Repeatable.", VARIABILITY_PANEL, flags=("--slow-link",), repeatable=True,
        default=(),
        sweepable=True,
    )  # fmt: skip

    def __post_init__(self) -> None:
        """From Python, a setting takes what a TOML file takes (a preset's or a file's name
        for the model, a number for a cost list, "80GB" for a size) and is read the same way,
        with the same one-line errors; values already of their kind are left alone."""
        self._read(_TUPLE_FIELDS)

    def _read(self, names: Iterable[str]) -> None:
        for name in names:
            value = getattr(self, name)
            if isinstance(value, str | list) or (
                _TUPLE_FIELDS[name]
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                parsed = BY_NAME[name].kind.from_toml(f"Settings({name}=...)", value)
                object.__setattr__(self, name, parsed)

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied, each read as the constructor reads it. Only the
        changed settings are read again: a plan makes thousands of copies, and the
        constructor's look at all fifty took most of each."""
        unknown = sorted(changes.keys() - _TUPLE_FIELDS.keys())
        if unknown:
            raise TypeError(f"Settings has no setting {unknown[0]!r}")
        copy = object.__new__(type(self))
        state = copy.__dict__  # a frozen dataclass's fields, set as its __init__ sets them
        state.update(self.__dict__)
        for computed in _COMPUTED:  # from the old values: the copy computes its own
            state.pop(computed, None)
        state.update(changes)
        copy._read(changes)
        return copy

    @cached_property
    def resolved(self) -> Resolved:
        """The values used: each given one, else its declared default (the one place
        defaults are applied; `Settings` itself keeps what the user gave)."""
        values = {}
        for item in dataclasses.fields(Resolved):
            given = getattr(self, item.name)
            values[item.name] = given if given is not None else BY_NAME[item.name].default
        return Resolved(**values)


@dataclass(frozen=True)
class Resolved:
    """The settings that have a default of their own, as used: never None."""

    policy: str
    micro_batch_size: int
    data_parallel: int
    tensor_parallel: int
    expert_parallel: int
    context_parallel: int
    tp_comm_overlap: float
    mfu: float
    recompute: str
    attention: str
    runtime: str
    jitter: float
    link_jitter: float
    seed: int
    stragglers: tuple[Straggler, ...]
    slow_links: tuple[tuple[int, int, float], ...]


_COMPUTED = tuple(
    name for name, value in vars(Settings).items() if isinstance(value, cached_property)
)
"""What a `Settings` caches in its own dict (`resolved`)."""
_TUPLE_FIELDS = {
    item.name: str(item.type).startswith("tuple") for item in dataclasses.fields(Settings)
}
"""Every setting, and whether its value is a tuple (a lone number given for it is a list of
one)."""

SETTINGS: tuple[Setting, ...] = tuple(
    dataclasses.replace(field.metadata["setting"], name=field.name)
    for field in dataclasses.fields(Settings)
)
"""Every setting, in the order --help lists them."""
BY_NAME = {setting.name: setting for setting in SETTINGS}
MODEL_ONLY = tuple(setting.name for setting in SETTINGS if setting.needs_model)
"""The settings that mean something only with --model."""
VARIABILITY = tuple(setting.name for setting in SETTINGS if setting.group is Group.VARIABILITY)
"""The settings that make runs random or slow."""


def check_settings(settings: Settings) -> None:
    """Every value in its range, however it was given (a flag, a file or the Python API)."""
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        if value is not None:
            setting.kind.check(setting.name, value)


def with_flags(base: Settings, texts: Mapping[str, str | list[str] | bool | None]) -> Settings:
    """`base` with each flag the user gave (its text, by setting name) parsed on top."""
    changes = {}
    for name, text in texts.items():
        if text is None or text == []:
            continue
        if isinstance(text, list):
            text = ",".join(text)
        setting = BY_NAME[name]
        changes[name] = text if isinstance(text, bool) else setting.kind.from_text(name, text)
    return base.replace(**changes)


def settings_from_mapping(data: Mapping[str, Any], origin: str, base: Settings) -> Settings:
    """`base` updated by the keys of a TOML table; unknown keys and wrong types are errors."""
    changes: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for raw_key, value in data.items():
        setting = BY_NAME.get(raw_key.replace("-", "_"))
        if setting is None:
            raise ConfigError(
                f"{origin}: unknown key {raw_key[:40]!r}; known: {', '.join(sorted(BY_NAME))}"
            )
        if setting.name in spelled:
            raise ConfigError(
                f"{origin}: {spelled[setting.name]!r} and {raw_key!r} are the same setting; "
                "give it once"
            )
        spelled[setting.name] = raw_key
        changes[setting.name] = setting.kind.from_toml(f"{origin}: {raw_key}", value)
    return base.replace(**changes)


def load_settings(path: Path | str, base: Settings | None = None) -> Settings:
    """Settings from a TOML file (flat keys, as `Settings` names them). A policy given as a
    file (`file.py:Class`) is found relative to the config file, not the working directory.

    Raises:
        ConfigError: the file cannot be read (missing, too large, not UTF-8), is not TOML, or
            holds an unknown key or a value of the wrong kind or out of range.
    """
    path = Path(path)
    data = read_toml(path, "config")
    # every file a config names is beside it, whatever the working folder
    data = {
        key: _file_beside(path, value) if key in ("model", "gpu") else value
        for key, value in data.items()
    }
    settings = settings_from_mapping(data, str(path), base or Settings())
    if "policy" in data and settings.policy is not None:
        settings = settings.replace(policy=_beside(path, settings.policy))
    for name in ("model", "gpu"):
        record = getattr(settings, name)
        table = data.get(name)
        if isinstance(table, dict) and record is not None and not record.source:
            # written back as this file, whose table `--model FILE` reads (any working folder),
            # and named after it when the table names nothing (not "model model on gpu")
            named = record.name if "name" in table else path.stem
            settings = settings.replace(
                **{name: dataclasses.replace(record, name=named, source=str(path.resolve()))}
            )
    return settings


def loads_code(policy: str | None) -> bool:
    """Whether a policy setting names a user's module or file (which pipesim will run)."""
    return policy is not None and ":" in policy


def _file_beside(config: Path, value: object) -> object:
    """A model's or GPU's file (`m.toml`, `config.json`) relative to the config's folder;
    preset names and tables unchanged."""
    if (
        isinstance(value, str)
        and value.endswith((".toml", ".json"))
        and not Path(value).is_absolute()
    ):
        return str(config.parent / value)
    return value


def _beside(config: Path, policy: str) -> str:
    """`dir/x.py:Class` relative to the config file's folder; other references unchanged."""
    where, colon, name = policy.rpartition(":")
    if not colon or not where.endswith(".py") or Path(where).is_absolute():
        return policy
    return f"{config.parent / where}:{name}"
