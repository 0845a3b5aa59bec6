"""Start-up validation: every problem of a run configuration, one actionable line each.

Runs before any process group exists, so a bad layout fails fast on every rank alike.
"""

from __future__ import annotations

from foundation.indexed_check import DatasetFileError, verify_indexed_dataset
from pretrain.config import CHECKPOINT_CONFIG_FILE, ConfigError, RunConfig, saved_run_config


def _model_problems(config: RunConfig) -> list[str]:
    model, parallel = config.model, config.parallel
    problems = []
    # The vocabulary needs no check: it is padded to rows TP divides (pretrain/model/vocab.py).
    if model.hidden_size % model.num_attention_heads:
        problems.append(f"model.hidden_size {model.hidden_size} is not divisible by "
                        f"model.num_attention_heads {model.num_attention_heads}")
    for name, value in (("model.num_attention_heads", model.num_attention_heads),
                        ("model.ffn_hidden_size", model.ffn_hidden_size)):
        if value % parallel.tp:
            problems.append(f"parallel.tp {parallel.tp} does not divide {name} ({value})")
    if model.num_layers % parallel.pp:
        problems.append(f"parallel.pp {parallel.pp} does not divide model.num_layers ({model.num_layers})")
    choices = {"model.attention_backend": (model.attention_backend, ("auto", "flash", "sdpa", "unfused")),
               "model.kernels": (model.kernels, ("auto", "fused", "torch")),
               "parallel.recompute": (parallel.recompute, ("none", "selective", "full")),
               "training.precision": (config.training.precision, ("fp32", "bf16"))}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            problems.append(f"{name} is {value!r}; choose one of {', '.join(allowed)}")
    if model.attention_backend == "flash" and config.training.precision != "bf16":
        problems.append(f"model.attention_backend flash needs training.precision bf16 (flash-attn computes in "
                        f"bf16/fp16 only; {config.training.precision} runs take sdpa or auto)")
    return problems


def _layout_problems(config: RunConfig, world_size: int) -> list[str]:
    parallel, training = config.parallel, config.training
    problems = []
    if parallel.zero_stage not in (0, 1, 2, 3):
        problems.append(f"parallel.zero_stage is {parallel.zero_stage}; choose 0, 1, 2 or 3")
    if parallel.pp > 1 and parallel.zero_stage >= 2:
        problems.append(f"parallel.zero_stage {parallel.zero_stage} with parallel.pp {parallel.pp}: DeepSpeed's "
                        "ZeRO-2/3 partition gradients, which pipeline parallelism cannot use; "
                        "use zero_stage <= 1 with pp > 1, or pp 1")
    for name in ("zero_reduce_bucket_size", "zero_allgather_bucket_size", "zero_prefetch_bucket_size",
                 "timeout_minutes", "io_timeout_minutes"):
        if getattr(parallel, name) <= 0:
            problems.append(f"parallel.{name} must be positive, got {getattr(parallel, name)}")
    if parallel.offload_optimizer and parallel.zero_stage == 0:
        problems.append("parallel.offload_optimizer needs parallel.zero_stage >= 1")
    if parallel.sequence_parallel and parallel.tp == 1:
        problems.append("parallel.sequence_parallel needs parallel.tp > 1")
    model_parallel = parallel.tp * parallel.pp
    if world_size % model_parallel:
        problems.append(f"world size {world_size} is not a multiple of parallel.tp x parallel.pp "
                        f"= {parallel.tp} x {parallel.pp} = {model_parallel}")
        return problems
    dp = world_size // model_parallel
    per_step = training.micro_batch_size * dp
    if training.global_batch_size % per_step:
        problems.append(f"training.global_batch_size {training.global_batch_size} is not a multiple of "
                        f"training.micro_batch_size x data-parallel size = {training.micro_batch_size} x {dp} "
                        f"= {per_step}")
    return problems


def _training_problems(config: RunConfig) -> list[str]:
    training, optimizer = config.training, config.optimizer
    problems = []
    for name, value in (("training.micro_batch_size", training.micro_batch_size),
                        ("training.global_batch_size", training.global_batch_size),
                        ("training.train_steps", training.train_steps),
                        ("training.log_interval", training.log_interval),
                        ("training.eval_interval", training.eval_interval),
                        ("model.seq_length", config.model.seq_length)):
        if value <= 0:
            problems.append(f"{name} must be positive, got {value}")
    for name, value in (("optimizer.warmup_steps", optimizer.warmup_steps),
                        ("data.num_workers", config.data.num_workers)):
        if value < 0:
            problems.append(f"{name} must not be negative, got {value}")
    if config.checkpoint.save_interval is not None and config.checkpoint.dir is None:
        problems.append("checkpoint.save_interval is set but checkpoint.dir is not")
    if config.checkpoint.keep_last is not None and config.checkpoint.keep_last < 1:
        problems.append(f"checkpoint.keep_last must be at least 1, got {config.checkpoint.keep_last}")
    return problems


def _data_problems(config: RunConfig) -> list[str]:
    data = config.data
    if not data.prefixes:
        return [] if data.embedded_corpus else [
            "data.prefixes is empty: give megatron .bin/.idx prefixes (qwen-data tokenize writes them) "
            "or set data.embedded_corpus: true"]
    problems = []
    if data.weights is not None and len(data.weights) != len(data.prefixes):
        problems.append(f"data.weights has {len(data.weights)} entries for {len(data.prefixes)} data.prefixes")
    elif data.weights is not None and any(not isinstance(w, (int, float)) or w <= 0 for w in data.weights):
        problems.append(f"data.weights must be positive numbers, got {data.weights}")
    summaries = []
    for prefix in data.prefixes:
        try:
            summaries.append(verify_indexed_dataset(str(prefix)))
        except DatasetFileError as error:
            problems.append(f"data.prefixes: {error}")
    split = data.split.split(",")
    if len(split) != 3 or not all(part.strip().replace(".", "", 1).isdigit() for part in split):
        problems.append(f"data.split {data.split!r} must be three comma-separated numbers (train,valid,test)")
    elif not problems:
        problems += _empty_split_problems(config, summaries)
    return problems


def _empty_split_problems(config: RunConfig, summaries: list) -> list[str]:
    """A dataset whose share of a needed split rounds to no document would make megatron-core's
    GPTDataset look for samples forever (its epochs hold no tokens): name it instead."""
    from megatron.core.datasets.blended_megatron_dataset_config import (convert_split_vector_to_split_matrix,
                                                                         parse_and_normalize_split)

    needed = {"training": True, "validation": config.training.eval_iters > 0}
    matrix = convert_split_vector_to_split_matrix(parse_and_normalize_split(config.data.split))
    problems = []
    for summary in summaries:
        for (name, wanted), bounds in zip(needed.items(), matrix):
            sequences = summary.num_sequences
            if wanted and bounds is not None and round(bounds[1] * sequences) == round(bounds[0] * sequences):
                problems.append(f"data.prefixes: {summary.prefix}: its {sequences} documents leave the {name} "
                                f"split of data.split {config.data.split} empty; give it a larger share "
                                "(e.g. data.split=90,10,0) or more documents")
    return problems


# The sizes that shape the weights: checkpoint.init_weights must have been saved with the run's.
WEIGHT_SIZES = ("num_layers", "hidden_size", "num_attention_heads", "ffn_hidden_size", "vocab_size")


def _init_weights_problems(config: RunConfig) -> list[str]:
    source = config.checkpoint.init_weights
    if source is None:
        return []
    from pretrain.checkpoint import CheckpointNotFound, resolve_checkpoint  # torch: only when needed

    try:
        checkpoint = resolve_checkpoint(source)
        saved = saved_run_config(checkpoint).model
    except (CheckpointNotFound, ConfigError) as error:
        return [f"checkpoint.init_weights: {str(error).splitlines()[0]}"]
    return [f"checkpoint.init_weights: model.{name} is {getattr(config.model, name)} in this run but "
            f"{getattr(saved, name)} in {checkpoint / CHECKPOINT_CONFIG_FILE}"
            for name in WEIGHT_SIZES if getattr(config.model, name) != getattr(saved, name)]


def validate(config: RunConfig, world_size: int, check_files: bool = True) -> None:
    """Raise :class:`ConfigError` listing every problem, one per line. ``check_files=False`` leaves
    out the data and checkpoint files, for a layout planned for a cluster whose files are not here."""
    problems = _model_problems(config) + _layout_problems(config, world_size) + _training_problems(config)
    if check_files:
        problems += _data_problems(config) + _init_weights_problems(config)
    if problems:
        raise ConfigError("\n".join(problems))
