"""A configuration as the training frameworks take it: Megatron-LM's arguments, and the lines
of a torchtitan configuration function.

Which schedules each runs, and the names it gives them, come from their sources (checked
against NVIDIA/Megatron-LM and pytorch/torchtitan as of August 2026):
- Megatron-LM (`megatron/core/pipeline_parallel/schedules.py`) runs 1F1B, and interleaved 1F1B
  when a rank holds several virtual stages; its arguments come from `TransformerConfig`'s
  fields (`--tensor-model-parallel-size`, ...) and `megatron/training/arguments.py`
  (`--pipeline-model-parallel-layout`, `--num-virtual-stages-per-pipeline-rank`,
  `--use-distributed-optimizer`).
- torchtitan takes PyTorch's schedules by the names `get_schedule_class` knows
  (`torch/distributed/pipelining/schedules.py`), and a run is a Python function returning a
  `Trainer.Config` (`torchtitan/config/README.md`): the lines here set its `parallelism`,
  `training` and `activation_checkpoint` fields (`torchtitan/config/configs.py`). Its data
  parallelism shards with FSDP, which also shards the weights and gradients: less memory than
  the distributed optimizer pipesim models, never more.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.problem.layout import even_layers

FRAMEWORKS = ("any", "megatron", "torchtitan")

SCHEDULES: dict[str, dict[str, str]] = {
    "megatron": {"1f1b": "1F1B", "interleaved": "interleaved 1F1B (virtual pipeline)"},
    "torchtitan": {
        "gpipe": "GPipe",
        "1f1b": "1F1B",
        "interleaved": "Interleaved1F1B",
        "looped-bfs": "LoopedBFS",
        "interleaved-zb": "InterleavedZeroBubble",
        "zb-v": "ZBVZeroBubble",
        "dualpipe-v": "DualPipeV",
    },
}
"""Per framework, the pipesim schedules it runs and its name for each."""


def megatron_layout(layers: tuple[int, ...]) -> str:
    """Layers per stage in `--pipeline-model-parallel-layout`'s grammar: E (embedding) on the
    first stage, L (loss) on the last, t per transformer layer, stages split by |."""
    parts = ["t" if n == 1 else f"t*{n}" if n else "" for n in layers]
    return "E" + "|".join(parts) + "L"


@dataclass(frozen=True)
class Configuration:
    """One configuration, as the frameworks' settings need it."""

    schedule: str
    """pipesim's name for the schedule."""
    tensor: int
    pipeline: int
    chunks: int
    data: int
    context: int
    expert: int
    microbatches: int
    micro_batch: int
    global_batch: int
    seq_length: int
    layers: tuple[int, ...]
    """Transformer layers per stage, in model order."""
    recompute: str
    distributed_optimizer: bool
    sequence_parallel: bool
    ep_comm_overlap: bool = False


def megatron_arguments(config: Configuration) -> list[str]:
    """The Megatron-LM arguments of a configuration (run on t p d c GPUs)."""
    tensor, pipeline, chunks = config.tensor, config.pipeline, config.chunks
    context, expert, layers = config.context, config.expert, config.layers
    recompute = config.recompute
    total = sum(layers)
    args = [
        "--tensor-model-parallel-size", str(tensor),
        "--pipeline-model-parallel-size", str(pipeline),
    ]  # fmt: skip
    if layers != even_layers(total, len(layers)) or (total % len(layers) and pipeline > 1):
        args += ["--pipeline-model-parallel-layout", megatron_layout(layers)]
    elif chunks > 1:
        args += ["--num-virtual-stages-per-pipeline-rank", str(chunks)]
    if tensor > 1 and config.sequence_parallel:
        args.append("--sequence-parallel")
    if context > 1:
        args += ["--context-parallel-size", str(context)]
    if expert > 1:
        args += ["--expert-model-parallel-size", str(expert)]
    if config.ep_comm_overlap:
        args.append("--overlap-moe-expert-parallel-comm")
    args += [
        "--num-layers", str(total),
        "--seq-length", str(config.seq_length),
        "--micro-batch-size", str(config.micro_batch),
        "--global-batch-size", str(config.global_batch),
    ]  # fmt: skip
    if config.distributed_optimizer:
        args.append("--use-distributed-optimizer")
    if recompute == "selective":
        args += ["--recompute-granularity", "selective"]
    elif recompute == "full":
        args += [
            "--recompute-granularity", "full",
            "--recompute-method", "uniform",
            "--recompute-num-layers", "1",
        ]  # fmt: skip
    return args


def torchtitan_lines(config: Configuration) -> list[str]:
    """Python lines that set a torchtitan `Trainer.Config` named `config` to a configuration
    (whose schedule torchtitan runs)."""
    tensor, pipeline, data = config.tensor, config.pipeline, config.data
    seq_length, layers = config.seq_length, config.layers
    p = "config.parallelism"
    lines = [f"{p}.tensor_parallel_degree = {tensor}"]
    if tensor > 1:
        lines.append(f"{p}.enable_sequence_parallel = {config.sequence_parallel}")
    lines.append(f"{p}.pipeline_parallel_degree = {pipeline}")
    if pipeline > 1:
        lines += [
            f'{p}.pipeline_parallel_schedule = "{SCHEDULES["torchtitan"][config.schedule]}"',
            f"{p}.num_pp_microbatches = {config.microbatches}",
            f"counts = {list(layers)}  # transformer layers per stage, in model order",
            f"{p}.module_fqns_per_model_part = [",
            '    (["tok_embeddings"] if i == 0 else [])',
            '    + [f"layers.{j}" for j in range(sum(counts[:i]), sum(counts[: i + 1]))]',
            '    + (["norm", "lm_head"] if i == len(counts) - 1 else [])',
            "    for i in range(len(counts))",
            "]",
        ]
    if config.distributed_optimizer:
        lines += [
            f"{p}.data_parallel_shard_degree = {data}  # FSDP",
            f"{p}.data_parallel_replicate_degree = 1",
        ]
    else:
        lines += [
            f"{p}.data_parallel_shard_degree = 1",
            f"{p}.data_parallel_replicate_degree = {data}  # DDP",
        ]
    lines.append(f"{p}.context_parallel_degree = {config.context}")
    if config.expert > 1:
        lines.append(f"{p}.expert_parallel_degree = {config.expert}")
    per_rank = config.micro_batch * seq_length
    lines += [
        f"config.training.num_tokens_per_microbatch_per_dp_rank = {per_rank}",
        f"config.training.num_tokens_per_train_step = {config.global_batch * seq_length}",
        f"config.training.max_context_length = {seq_length}",
    ]
    checkpoint = {"none": "None", "selective": "SelectiveAC.Config()", "full": "FullAC.Config()"}
    lines.append(f"config.activation_checkpoint = {checkpoint[config.recompute]}")
    return lines
