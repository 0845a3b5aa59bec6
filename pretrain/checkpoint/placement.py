"""Where each value of this rank's parameters lives in the checkpoint's global tensors.

megatron-core's ``GPTModel.sharded_state_dict()`` describes every parameter of this rank (its
pipeline stage, its tensor-parallel shard) as ``ShardedTensor``s: a checkpoint key, the global
shape, and the offset of this rank's block in it. Layers are stacked under one key per parameter
kind (``decoder.layers.mlp.linear_fc2.weight`` is ``[layers, hidden, ffn]``, a stage's layer ``i``
at its global layer number), and the SwiGLU ``linear_fc1`` is a factory that places the local
``[gate; up]`` halves in the two halves of the global tensor. That description is read once, while
every parameter still holds its whole local shard (ZeRO-3 empties them), and kept as
:class:`Piece`\\ s: a contiguous run of the parameter's flattened values that is one block of a
global tensor.

A rank's optimizer holds a contiguous *flattened* range of each parameter (a ZeRO partition);
:func:`boxes` cuts such a range of a block into the few rectangular boxes that a
torch.distributed.checkpoint chunk must be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

VOCAB_KEYS = ("embedding.word_embeddings.weight", "output_layer.weight")  # one row per token id


@dataclass(frozen=True)
class Piece:
    """Values ``[start, start + numel)`` of a parameter's flattened local tensor are the block of
    ``shape`` at ``offset`` in the global tensor ``key`` (all dimensions, stacked layers included)."""

    key: str
    global_shape: tuple[int, ...]
    offset: tuple[int, ...]
    shape: tuple[int, ...]
    start: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Placement:
    """One parameter of this rank: its pieces, and whether this rank writes it (a parameter
    replicated over tensor-parallel ranks, such as a norm weight, is written by TP rank 0 only)."""

    name: str
    pieces: tuple[Piece, ...]
    writes: bool
    numel: int


def _is_main_replica(replica_id) -> bool:
    """Main in the model-parallel dimensions; data-parallel copies are told apart by ZeRO ranges."""
    if isinstance(replica_id, int):
        return replica_id == 0
    return all(index == 0 for index in replica_id[:-1])


def _pieces(parameter: torch.Tensor, sharded) -> tuple[list[Piece], bool]:
    from megatron.core.dist_checkpointing.mapping import ShardedTensorFactory

    tensors = sharded.build() if isinstance(sharded, ShardedTensorFactory) else [sharded]
    pieces = []
    for tensor in tensors:
        view = tensor.data
        if not view.is_contiguous() or view.untyped_storage().data_ptr() != parameter.untyped_storage().data_ptr():
            raise ValueError(f"{tensor.key}: megatron-core's checkpoint block is not a contiguous part of the parameter")
        prepended = (1,) * tensor.prepend_axis_num
        pieces.append(Piece(key=tensor.key, global_shape=tuple(tensor.global_shape), offset=tuple(tensor.global_offset),
                            shape=prepended + tuple(tensor.local_shape),
                            start=view.storage_offset() - parameter.storage_offset()))
    return pieces, _is_main_replica(tensors[0].replica_id)


def placements(module: torch.nn.Module) -> dict[str, Placement]:
    """Every parameter of ``module`` by name; called before ZeRO-3 partitions the parameters."""
    sharded = module.sharded_state_dict()
    result = {}
    for name, parameter in module.named_parameters():
        pieces, main = _pieces(parameter, sharded[name])
        if sum(piece.numel for piece in pieces) != parameter.numel():
            raise ValueError(f"{name}: megatron-core's checkpoint blocks do not cover the parameter")
        result[name] = Placement(name, tuple(sorted(pieces, key=lambda piece: piece.start)), main, parameter.numel())
    return result


def _boxes_in(shape: tuple[int, ...], begin: int, end: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The flattened range ``[begin, end)`` of a row-major ``shape`` as boxes (offset, size), in
    order; every box is contiguous in memory, so it is a view of the range."""
    if begin >= end:
        return []
    if len(shape) == 1:
        return [((begin,), (end - begin,))]
    inner = math.prod(shape[1:])
    first, last = begin // inner, (end - 1) // inner
    if first == last:
        return [((first, *offset), (1, *size)) for offset, size in _boxes_in(shape[1:], begin - first * inner,
                                                                              end - first * inner)]
    boxes = []
    if begin % inner:
        boxes += _boxes_in(shape, begin, (first + 1) * inner)
        first += 1
    whole_rows_end = end // inner
    if whole_rows_end > first:
        boxes.append(((first, *(0,) * (len(shape) - 1)), (whole_rows_end - first, *shape[1:])))
    if end % inner:
        boxes += _boxes_in(shape, whole_rows_end * inner, end)
    return boxes


@dataclass(frozen=True)
class Box:
    """A box of a global tensor and where its values are in a flattened range of one parameter."""

    key: str
    global_shape: tuple[int, ...]
    offset: tuple[int, ...]
    shape: tuple[int, ...]
    start: int  # in the flattened range the boxes were cut from


def boxes(placement: Placement, begin: int, end: int) -> list[Box]:
    """The flattened range ``[begin, end)`` of the parameter as boxes of global tensors."""
    result = []
    for piece in placement.pieces:
        low, high = max(begin, piece.start), min(end, piece.start + piece.numel)
        position = low - begin
        for offset, size in _boxes_in(piece.shape, low - piece.start, high - piece.start):
            result.append(Box(piece.key, piece.global_shape, tuple(o + p for o, p in zip(offset, piece.offset)),
                              size, position))
            position += math.prod(size)
    return result
