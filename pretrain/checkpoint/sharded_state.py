"""The checkpoint's tensors as megatron-core ``ShardedTensor``\\ s: what a rank writes, what it reads.

Keys are megatron-core's: a parameter's key (``decoder.layers.mlp.linear_fc1.weight``) holds its
fp32 weights (under bf16 the optimizer's fp32 master weights, of which the bf16 model weights are
the rounding), ``optimizer.state.exp_avg.<key>`` and ``optimizer.state.exp_avg_sq.<key>`` its Adam
moments (the names megatron-core's distributed optimizer uses). Every value is written once: each
rank writes the boxes of its ZeRO fragments (:mod:`pretrain.checkpoint.fragments`), a tensor-
parallel replica only on TP rank 0, and under ZeRO-0 in fp32 (state replicated over data
parallel) each data-parallel rank an equal share.

Reading is the mirror image: a rank asks for the boxes of what it holds under *its* layout, and
torch.distributed.checkpoint finds them in whatever chunks another layout wrote.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from megatron.core.dist_checkpointing.mapping import ShardedTensor
from megatron.core.dist_checkpointing.strategies.checkpointable import (CheckpointableShardedTensor,
                                                                       LocalShardsContainer)
from torch.distributed.checkpoint.api import CheckpointException

from pretrain.checkpoint.fragments import MOMENTS, WEIGHTS, Fragment, OptimizerState
from pretrain.checkpoint.placement import VOCAB_KEYS, Placement, boxes
from pretrain.checkpoint.storage import RangeReader, verify

OPTIMIZER_PREFIX = "optimizer.state."
LOAD_BATCH_BYTES = 256 * 2**20  # fp32 copies of bf16 weights made at a time while loading


class SavedTensorMismatch(ValueError):
    """A saved tensor that does not fit the model loading it (the message names it)."""


def one_key(shards: list[CheckpointableShardedTensor]):
    """One key's boxes as the one object per key torch.distributed.checkpoint takes (megatron-core's adapters)."""
    return shards[0] if len(shards) == 1 else LocalShardsContainer(shards)


def state_key(kind: str, key: str) -> str:
    return key if kind == WEIGHTS else f"{OPTIMIZER_PREFIX}{kind}.{key}"


def _own_storage(view: torch.Tensor) -> torch.Tensor:
    """A CPU view as a tensor whose storage is exactly its bytes, over the same memory.

    megatron-core's writer copies every tensor that is a view of a larger storage before it forks
    the writing process (the snapshot; on a GPU that copy is the device-to-host one, which a
    snapshot needs anyway). On a CPU host the fork itself is the snapshot (copy-on-write), so a box
    of the optimizer's memory is handed over as its own storage and nothing is copied while
    training waits."""
    return torch.from_numpy(view.detach().numpy()) if view.device.type == "cpu" else view


def _sharded(key: str, box, values: torch.Tensor, for_saving: bool = False) -> ShardedTensor:
    data = values[box.start:box.start + math.prod(box.shape)].view(box.shape)
    if for_saving:
        data = _own_storage(data)
    return ShardedTensor(key=key, data=data, dtype=data.dtype, local_shape=box.shape, global_shape=box.global_shape,
                         global_offset=box.offset, axis_fragmentations=None, replica_id=0)


def _share(fragment: Fragment, rank: int, ranks: int) -> Fragment:
    """Rank ``rank``'s equal share of a fragment every one of ``ranks`` ranks holds."""
    total = fragment.values.numel()
    begin, end = total * rank // ranks, total * (rank + 1) // ranks
    return Fragment(fragment.begin + begin, fragment.values[begin:end])


def tensors_to_save(module: torch.nn.Module, placements: dict[str, Placement], optimizer: OptimizerState,
                    data_parallel_rank: int, data_parallel_size: int) -> list[ShardedTensor]:
    """This rank's share of the weights, and of the Adam moments once the optimizer has stepped."""
    kinds = (WEIGHTS, *MOMENTS) if optimizer.has_moments() else (WEIGHTS,)
    if optimizer.has_moments():
        optimizer.link_moments()
    replicated = optimizer.replicated_over_data_parallel()
    tensors = []
    for name, parameter in module.named_parameters():
        placement = placements[name]
        if not placement.writes:
            continue
        for kind in kinds:
            fragment = optimizer.fragment(parameter, kind)
            if fragment is None:
                continue
            if replicated:
                fragment = _share(fragment, data_parallel_rank, data_parallel_size)
            tensors += [_sharded(state_key(kind, box.key), box, fragment.values, for_saving=True)
                        for box in boxes(placement, fragment.begin, fragment.end)]
    return tensors


class SavedTensors:
    """One checkpoint's tensors (its ``state/`` directory), read into tensors the caller gives."""

    def __init__(self, directory: Path, vocab_size: int):
        self.directory = directory
        self.vocab_size = vocab_size  # real tokens of the saved model; vocabulary rows beyond are padding
        self.metadata = verify(directory)
        self._reader = RangeReader(directory)

    def has(self, key: str) -> bool:
        return key in self.metadata.state_dict_metadata

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.metadata.state_dict_metadata[key].size)

    def _fitted(self, tensor: ShardedTensor, base_key: str) -> ShardedTensor | None:
        """``tensor`` as a request the saved tensor can answer: vocabulary rows the checkpoint does
        not have (its padding is shorter) are left out and zeroed; other shapes must match."""
        if not self.has(tensor.key):
            raise SavedTensorMismatch(f"{self.directory}: has no tensor {tensor.key}")
        saved = self.shape(tensor.key)
        if saved == tuple(tensor.global_shape):
            return tensor
        if base_key not in VOCAB_KEYS or saved[1:] != tuple(tensor.global_shape[1:]):
            raise SavedTensorMismatch(f"{self.directory}: {tensor.key} has shape {list(saved)}; the model expects "
                                      f"{list(tensor.global_shape)}")
        if min(saved[0], tensor.global_shape[0]) < self.vocab_size:
            raise SavedTensorMismatch(f"{self.directory}: {tensor.key}: {saved[0]} saved rows into "
                                      f"{tensor.global_shape[0]} would drop real tokens (the vocabulary has "
                                      f"{self.vocab_size}; only padding rows may go)")
        rows = max(0, min(tensor.local_shape[0], saved[0] - tensor.global_offset[0]))
        tensor.data[rows:].zero_()
        if rows == 0:
            return None
        data = tensor.data[:rows]
        return replace(tensor, data=data, local_shape=tuple(data.shape), global_shape=saved)

    def load(self, tensors: list[tuple[ShardedTensor, str]]) -> None:
        """Fill each ``(tensor, parameter key)`` in place from the saved chunks that overlap it."""
        grouped: dict[str, list[ShardedTensor]] = {}
        for tensor, base_key in tensors:
            fitted = self._fitted(tensor, base_key)
            if fitted is not None:
                grouped.setdefault(fitted.key, []).append(fitted)
        if not grouped:
            return
        try:
            with warnings.catch_warnings():
                # Every rank plans its own reads: loading needs no collective.
                warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
                dcp.load({key: one_key([CheckpointableShardedTensor.from_sh_ten(box) for box in boxes])
                          for key, boxes in grouped.items()}, storage_reader=self._reader, no_dist=True)
        except CheckpointException as error:  # torch wraps what the reader raised; the cause names the file
            causes = [failure[0] for failure in error.failures.values()]
            raise next((cause for cause in causes if isinstance(cause, ValueError)), error) from None


def _requests(placement: Placement, kind: str, fragment: Fragment) -> Iterator[tuple[ShardedTensor, str]]:
    for box in boxes(placement, fragment.begin, fragment.end):
        yield _sharded(state_key(kind, box.key), box, fragment.values), box.key


def load_weights(module: torch.nn.Module, placements: dict[str, Placement], saved: SavedTensors) -> None:
    """This rank's whole shard of every parameter (before DeepSpeed partitions them). Weights that
    are not fp32 are read into fp32 copies, LOAD_BATCH_BYTES at a time, and rounded into place."""
    copies: list[tuple[torch.nn.Parameter, torch.Tensor]] = []  # (parameter, its fp32 copy) not yet rounded in
    requests: list[tuple[ShardedTensor, str]] = []

    def flush():
        saved.load(requests)
        with torch.no_grad():
            for parameter, values in copies:
                parameter.copy_(values)
        copies.clear()
        requests.clear()

    for name, parameter in module.named_parameters():
        if parameter.dtype == torch.float32:
            values = parameter.data  # read in place
        else:
            values = torch.empty(parameter.shape)
            copies.append((parameter, values))
        requests.extend(_requests(placements[name], WEIGHTS, Fragment(0, values.view(-1))))
        if sum(copy.nbytes for _, copy in copies) >= LOAD_BATCH_BYTES:
            flush()
    flush()


def load_optimizer(module: torch.nn.Module, placements: dict[str, Placement], optimizer: OptimizerState,
                   saved: SavedTensors, optimizer_steps: int, master_weights: bool) -> bool:
    """Adam moments into this rank's fragments (zero moments created first), and with
    ``master_weights`` the fp32 weights into the optimizer's master copy. False when the checkpoint
    holds no moments (saved before the first step, or imported): they then start from zero."""
    has_moments = any(saved.has(state_key(MOMENTS[0], piece.key)) for placement in placements.values()
                      for piece in placement.pieces)
    kinds = ((WEIGHTS,) if master_weights else ()) + (MOMENTS if has_moments else ())
    if has_moments:
        optimizer.create_moments(optimizer_steps)
    requests: list[tuple[ShardedTensor, str]] = []
    for name, parameter in module.named_parameters():
        for kind in kinds:
            fragment = optimizer.fragment(parameter, kind)
            if fragment is not None:
                requests.extend(_requests(placements[name], kind, fragment))
    saved.load(requests)
    return has_moments
