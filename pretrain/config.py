"""Typed run configuration: dataclasses, YAML loading, ``key.sub=value`` overrides.

The YAML file mirrors :class:`RunConfig` and is read by :mod:`foundation.dataclass_yaml`: a key
that is not a field, or a value of the wrong type, is an error naming the file and the key.
Overrides given on the command line are applied after the file, in order. Model sizes left unset
are filled from ``model.preset``. Validation lives in :mod:`pretrain.validation`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from foundation.dataclass_yaml import FieldError, build_dataclass, read_yaml
from pretrain.model.presets import PRESETS


class ConfigError(ValueError):
    """One or more configuration problems, one per line."""


@dataclass
class ModelConfig:
    preset: str = "qwen-tiny"
    num_layers: Optional[int] = None
    hidden_size: Optional[int] = None
    num_attention_heads: Optional[int] = None
    ffn_hidden_size: Optional[int] = None  # per SwiGLU branch (HF intermediate_size / 2)
    seq_length: Optional[int] = None
    vocab_size: int = 151_851  # Qwen: 151,643 BPE tokens + 208 special tokens
    make_vocab_size_divisible_by: int = 128  # 151,936 rows, as Qwen ships, at every TP that divides them
    rotary_base: float = 10_000.0
    norm_epsilon: float = 1e-6
    init_method_std: float = 0.02
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    attention_backend: str = "auto"  # auto | flash | sdpa | unfused
    kernels: str = "auto"  # auto | fused | torch


@dataclass
class ParallelConfig:
    tp: int = 1
    pp: int = 1
    zero_stage: int = 0
    # DeepSpeed ZeRO communication (docs/parallelism.md): reduce gradients in buckets while the
    # backward pass still runs, into one contiguous buffer; sizes are in elements.
    zero_overlap_comm: bool = True
    zero_contiguous_gradients: bool = True
    zero_reduce_bucket_size: int = 50_000_000
    zero_allgather_bucket_size: int = 50_000_000
    zero_prefetch_bucket_size: int = 50_000_000  # ZeRO-3: parameters gathered ahead of their layer
    sequence_parallel: bool = False
    offload_optimizer: bool = False
    recompute: str = "none"  # none | selective | full
    # Collectives that take longer abort the run: training steps, and the phases where ranks wait
    # for one rank's file I/O (dataset index builds, checkpoint saves and loads).
    timeout_minutes: int = 10
    io_timeout_minutes: int = 60


@dataclass
class OptimizerConfig:
    lr: float = 3e-4
    min_lr_ratio: float = 0.1  # cosine decays to this fraction of the peak
    warmup_steps: int = 10
    decay_steps: Optional[int] = None  # default: training.train_steps
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    clip_grad: float = 1.0


@dataclass
class DataConfig:
    prefixes: list = field(default_factory=list)  # megatron .bin/.idx prefixes
    weights: Optional[list] = None  # blend weights, one per prefix (Qwen up-samples sources)
    embedded_corpus: bool = False  # build a corpus from the Python standard library when no prefixes
    split: str = "98,2,0"
    cache_dir: Optional[str] = None  # GPTDataset index cache; default <logging.dir>/data_cache
    num_workers: int = 2  # DataLoader processes per rank building the next micro-batches (0: none)


@dataclass
class TrainingConfig:
    micro_batch_size: int = 4
    global_batch_size: int = 8
    train_steps: int = 100
    precision: str = "fp32"  # fp32 | bf16
    seed: int = 1234
    log_interval: int = 10
    eval_interval: int = 50
    eval_iters: int = 4


@dataclass
class CheckpointConfig:
    dir: Optional[str] = None
    save_interval: Optional[int] = None
    keep_last: Optional[int] = None
    resume: bool = True  # resume from dir's latest complete checkpoint when there is one
    # A checkpoint (run dir or step dir, e.g. from qwen-convert from-hf) whose weights start a run
    # that does not resume; optimizer, step and data position start fresh.
    init_weights: Optional[str] = None
    # Write checkpoints in a background process while training goes on (docs/training.md).
    async_save: bool = True


@dataclass
class LoggingConfig:
    dir: str = "runs/default"
    tensorboard: bool = True
    peak_tflops: Optional[float] = None  # per device, for MFU; default: known GPUs, measured on CPU


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: '{key}' is not a section")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.sub=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def fill_from_preset(model: ModelConfig) -> None:
    if model.preset not in PRESETS:
        raise ConfigError(f"model.preset: unknown preset {model.preset!r} (known: {', '.join(PRESETS)})")
    for name, value in dataclasses.asdict(PRESETS[model.preset]).items():
        if getattr(model, name) is None:
            setattr(model, name, value)


CHECKPOINT_CONFIG_FILE = "config.yaml"  # the resolved RunConfig every checkpoint carries


def saved_run_config(checkpoint: str | Path) -> RunConfig:
    """The run configuration a checkpoint (one ``step_XXXXXXXX`` directory) was saved with."""
    return load_config(Path(checkpoint) / CHECKPOINT_CONFIG_FILE)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    try:
        tree = (read_yaml(path) if path is not None else None) or {}
        for override in overrides if isinstance(tree, dict) else ():  # else: refused as not a mapping
            key, value = parse_override(override)
            _set_dotted(tree, key, value)
        source = (str(path) if path else "<defaults>") + (" + overrides" if overrides else "")
        config = build_dataclass(RunConfig, tree, f"{source}:")
    except FieldError as error:
        raise ConfigError(str(error)) from None
    fill_from_preset(config.model)
    return config
