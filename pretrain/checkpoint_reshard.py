"""The layout-free copy of a checkpoint, so a run saved under one layout resumes under another.

DeepSpeed's own files are per rank and only load back under the same TP x PP x DP x ZeRO layout.
Next to them every save writes ``full/``: for each pipeline stage one file holding that stage's
parameters and Adam moments as *unsharded* tensors under *global* names (layer numbers counted over
the whole model), the learning-rate schedule, and ``layout.json``. A different layout rebuilds its
shards from it: it cuts each tensor the way megatron-core's tensor-parallel layers split it, loads
the weights into the module before DeepSpeed wraps it (so ZeRO partitions them as usual) and the
moments into whatever optimizer partition DeepSpeed made (``deepspeed.utils.safe_set_full_*``).

Tensor-parallel layout, from the attributes megatron-core puts on each split parameter:
``partition_dim`` and ``partition_stride``. A stride of 2 (the SwiGLU fc1 = [gate; up]) means each
rank holds its slice of both halves, so the full tensor is cut into ``tp x stride`` chunks and
rank ``r`` takes chunks ``r, r + tp, ...``.

Vocabulary rows: the embedding and output layer are padded to a multiple of
``make_vocab_size_divisible_by x TP`` rows, so a copy saved at one TP can have fewer or more rows
than the module loading it. Padding rows are added as zeros or dropped; rows of real tokens never are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from megatron.core import parallel_state

from pretrain.config import saved_run_config

FULL_DIR = "full"
LAYOUT_FILE = "layout.json"
MOMENTS = ("exp_avg", "exp_avg_sq")
VOCAB_PARAMETERS = ("embedding.word_embeddings.weight", "output_layer.weight")  # one row per token id


class SavedTensorMismatch(ValueError):
    """A saved tensor that does not fit the module loading it (the message names it)."""


def fit_vocab_rows(tensor: torch.Tensor, rows: int, vocab_size: int, name: str) -> torch.Tensor:
    """``tensor`` with ``rows`` rows: padding rows (index >= ``vocab_size``) dropped or added as zeros."""
    if tensor.shape[0] == rows:
        return tensor
    if tensor.shape[0] < vocab_size:
        raise SavedTensorMismatch(f"{name}: {tensor.shape[0]} rows for a vocabulary of {vocab_size} tokens")
    if tensor.shape[0] > rows:
        if rows < vocab_size:
            raise SavedTensorMismatch(f"{name}: cutting {tensor.shape[0]} rows to {rows} would drop real tokens "
                                      f"(the vocabulary has {vocab_size}; only padding rows may go)")
        return tensor[:rows]
    return torch.cat([tensor, tensor.new_zeros((rows - tensor.shape[0], *tensor.shape[1:]))])


def current_layout(zero_stage: int, precision: str) -> dict:
    """What DeepSpeed's own files depend on. The precision is part of it: bf16 runs keep fp32
    master weights in DeepSpeed's BF16/ZeRO optimizer files, fp32 runs in the module's."""
    return {"tp": parallel_state.get_tensor_model_parallel_world_size(),
            "pp": parallel_state.get_pipeline_model_parallel_world_size(),
            "dp": parallel_state.get_data_parallel_world_size(), "zero_stage": zero_stage, "precision": precision}


def saved_layout(checkpoint: Path) -> dict | None:
    path = checkpoint / FULL_DIR / LAYOUT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _global_names(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Parameters by their name in the whole (one-stage) model: a stage's local layer ``i`` is
    layer ``layer_number - 1`` of the model."""
    named = {}
    for name, parameter in module.named_parameters():
        match = re.match(r"decoder\.layers\.(\d+)\.(.*)", name)
        if match:
            layer = module.decoder.layers[int(match[1])].layer_number - 1
            name = f"decoder.layers.{layer}.{match[2]}"
        named[name] = parameter
    return named


def _is_split(parameter) -> bool:
    return getattr(parameter, "tensor_model_parallel", False) and parallel_state.get_tensor_model_parallel_world_size() > 1


def _gather_tp(shard: torch.Tensor, parameter) -> torch.Tensor:
    if not _is_split(parameter):
        return shard
    tp, dim, stride = parallel_state.get_tensor_model_parallel_world_size(), parameter.partition_dim, parameter.partition_stride
    shards = [torch.empty_like(shard) for _ in range(tp)]
    torch.distributed.all_gather(shards, shard.contiguous(), group=parallel_state.get_tensor_model_parallel_group())
    pieces = [s.chunk(stride, dim) for s in shards]
    return torch.cat([pieces[rank][part] for part in range(stride) for rank in range(tp)], dim)


def _split_tp(full: torch.Tensor, parameter) -> torch.Tensor:
    if not _is_split(parameter):
        return full
    tp, rank = parallel_state.get_tensor_model_parallel_world_size(), parallel_state.get_tensor_model_parallel_rank()
    chunks = full.chunk(tp * parameter.partition_stride, parameter.partition_dim)
    return torch.cat(chunks[rank::tp], parameter.partition_dim)


def _base_optimizer(engine) -> torch.optim.Optimizer:
    """The torch AdamW under DeepSpeed's ZeRO/bf16 wrapper (or the optimizer itself at ZeRO-0 fp32)."""
    return getattr(engine.optimizer, "optimizer", engine.optimizer)


def _link_moments(engine) -> None:
    """Point each parameter's ZeRO fragment at its slice of Adam's state. DeepSpeed 0.19.8's ZeRO-1/2
    links once, right after stepping the *first* parameter group, when the second group (our
    no-decay parameters) has no state yet, so that group is linked again here."""
    from deepspeed.utils.mixed_precision_linkage import lazy_init_hp_params_optimizer_state

    zero, base = engine.optimizer, _base_optimizer(engine)
    if hasattr(zero, "bit16_groups") and hasattr(zero, "single_partition_of_fp32_groups"):
        for parameters, flat in zip(zero.bit16_groups, zero.single_partition_of_fp32_groups):
            lazy_init_hp_params_optimizer_state(parameters, flat, base.state)
    elif hasattr(zero, "_lazy_init_hp_params_optimizer_state"):  # bf16 without ZeRO
        zero._lazy_init_hp_params_optimizer_state()


def _full_over_data_parallel(engine, parameter, key: str | None) -> torch.Tensor | None:
    """This TP shard's fp32 value (key None) or Adam moment, whole over the DP group (collective)."""
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    value = safe_get_full_fp32_param(parameter) if key is None else safe_get_full_optimizer_state(parameter, key)
    if value is not None:
        return value
    # A plain torch optimizer over the module's own parameters (ZeRO-0, fp32).
    return parameter.data if key is None else _base_optimizer(engine).state.get(parameter, {}).get(key)


def _write_stage(directory: Path, stage: int, tensors: dict, scheduler: dict | None, layout: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({**tensors, "scheduler": scheduler}, directory / f"stage_{stage:03d}.pt")
    if stage == 0:
        (directory / LAYOUT_FILE).write_text(json.dumps(layout))


def write_full_model(directory: Path, model: dict[str, torch.Tensor]) -> None:
    """A layout-free copy holding weights only (no Adam moments, no schedule), as one stage at
    TP=1: what importing weights from elsewhere produces. ``weights_only`` in its layout says there
    are no DeepSpeed files beside it, so it never equals a run's layout and every run, a
    single-process one included, loads it from here."""
    _write_stage(directory, 0, {"model": model, **{key: {} for key in MOMENTS}}, None,
                 {"tp": 1, "pp": 1, "dp": 1, "zero_stage": 0, "precision": "fp32", "weights_only": True})


def write_full_state(engine, directory: Path, layout: dict, optimizer_steps: int, moments: bool = True) -> None:
    """Collective over all ranks; one file per pipeline stage, recording ``layout`` (this run's
    :func:`current_layout`). Without ``moments`` only the weights and the schedule are written, and
    the layout says so."""
    tensors: dict[str, dict[str, torch.Tensor]] = {"model": {}, **{key: {} for key in MOMENTS}}
    moments = moments and optimizer_steps > 0  # no Adam moments before the first step
    keys = [None, *MOMENTS] if moments else [None]
    if moments:
        _link_moments(engine)
    for name, parameter in _global_names(engine.module).items():
        for key in keys:
            value = _full_over_data_parallel(engine, parameter, key)
            shape = getattr(parameter, "ds_shape", parameter.shape)  # ZeRO-3 empties parameter.data
            tensors[key or "model"][name] = _gather_tp(value.detach().float().reshape(shape), parameter).cpu()
    if parallel_state.get_tensor_model_parallel_rank() == 0 and parallel_state.get_data_parallel_rank() == 0:
        layout = layout | ({} if moments or optimizer_steps == 0 else {"moments": False})
        _write_stage(directory, parallel_state.get_pipeline_model_parallel_rank(), tensors,
                     engine.lr_scheduler.state_dict(), layout)


def _read_stages(directory: Path) -> dict:
    merged: dict = {"model": {}, **{key: {} for key in MOMENTS}}
    for path in sorted(directory.glob("stage_*.pt")):
        stage = torch.load(path, mmap=True, weights_only=False)
        for key in merged:
            merged[key].update(stage[key])
        merged["scheduler"] = stage["scheduler"]
    return merged


def read_full_model(checkpoint: Path) -> dict[str, torch.Tensor]:
    """Every parameter of the whole model, unsharded fp32 under its global megatron name
    (``embedding.word_embeddings.weight``, ``decoder.layers.N....``, ``output_layer.weight``)."""
    return _read_stages(checkpoint / FULL_DIR)["model"]


def _full_shape(parameter) -> tuple[int, ...]:
    """The unsharded shape of a (possibly TP-split, possibly ZeRO-3-emptied) parameter."""
    shape = list(getattr(parameter, "ds_shape", parameter.shape))
    if _is_split(parameter):
        shape[parameter.partition_dim] *= parallel_state.get_tensor_model_parallel_world_size()
    return tuple(shape)


def _this_rank_part(saved: torch.Tensor, name: str, parameter, vocab_size: int, checkpoint: Path) -> torch.Tensor:
    """This rank's shard of a saved full tensor, its vocabulary rows fitted to the module's padding."""
    expected = _full_shape(parameter)
    if name in VOCAB_PARAMETERS:
        saved = fit_vocab_rows(saved, expected[0], vocab_size, f"{checkpoint}: {name}")
    if tuple(saved.shape) != expected:
        raise SavedTensorMismatch(f"{checkpoint}: {name} has shape {list(saved.shape)}; "
                                  f"the model expects {list(expected)}")
    return _split_tp(saved, parameter)


def _saved_vocab_size(checkpoint: Path) -> int:
    """Real tokens of the saved model (its other rows are padding); the run's config.yaml says."""
    return saved_run_config(checkpoint).model.vocab_size


def load_full_model(module: torch.nn.Module, checkpoint: Path) -> None:
    """Copy this rank's shards into the module (before DeepSpeed wraps it)."""
    saved, vocab_size = read_full_model(checkpoint), _saved_vocab_size(checkpoint)
    with torch.no_grad():
        for name, parameter in _global_names(module).items():
            if name not in saved:
                raise SavedTensorMismatch(f"{checkpoint}: the layout-free copy has no parameter {name}")
            parameter.copy_(_this_rank_part(saved[name], name, parameter, vocab_size, checkpoint))


def load_full_optimizer(engine, checkpoint: Path, optimizer_steps: int) -> None:
    """Adam moments, step counts and the learning-rate schedule into the DeepSpeed engine."""
    from deepspeed.utils import safe_set_full_optimizer_state

    saved = _read_stages(checkpoint / FULL_DIR)
    base = _base_optimizer(engine)
    if saved["scheduler"] is not None:  # imported weights carry no schedule: it starts fresh
        engine.lr_scheduler.load_state_dict(saved["scheduler"])
        for group, lr in zip(base.param_groups, engine.lr_scheduler.get_last_lr()):
            group["lr"] = lr
    if not saved["exp_avg"]:
        return
    # Adam creates its state at the first step; create it now so the moments have a place to go.
    # ZeRO-3 hands its fp32 partitions to the optimizer only while stepping them.
    stepped = getattr(engine.optimizer, "fp32_partitioned_groups_flat", None) or [
        flat for group in base.param_groups for flat in group["params"]]
    for flat in stepped:
        state = base.state[flat]
        for key in MOMENTS:
            state.setdefault(key, torch.zeros_like(flat))
        # A fused AdamW keeps its step count on the parameters' device.
        step_device = flat.device if base.defaults.get("fused") or base.defaults.get("capturable") else "cpu"
        state["step"] = torch.tensor(float(optimizer_steps), device=step_device)
    _link_moments(engine)
    vocab_size = _saved_vocab_size(checkpoint)
    for name, parameter in _global_names(engine.module).items():
        for key in MOMENTS:
            value = _this_rank_part(saved[key][name], name, parameter, vocab_size, checkpoint)
            if hasattr(parameter, "ds_id") or hasattr(parameter, "_hp_mapping"):
                safe_set_full_optimizer_state(parameter, value, key)
            else:
                base.state[parameter][key].copy_(value)
