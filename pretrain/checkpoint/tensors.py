"""A checkpoint's weights as whole tensors, one at a time: what conversion and generation use.

Tools name parameters as a one-stage model does (``decoder.layers.N.mlp.linear_fc1.weight``, N the
global layer); in the checkpoint, layers are stacked under one key per kind (megatron-core's
convention), and a layer is one box of it. Reading a tensor reads only its bytes; writing
(``qwen-convert from-hf``) asks for each tensor only when torch.distributed.checkpoint writes it,
one file per tensor, so neither holds more than one tensor.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch
from megatron.core.dist_checkpointing.mapping import ShardedTensor
from megatron.core.dist_checkpointing.strategies.checkpointable import CheckpointableShardedTensor

from pretrain.checkpoint.sharded_state import OPTIMIZER_PREFIX, SavedTensors, one_key

_LAYER = re.compile(r"decoder\.layers\.(\d+)\.(.+)")


def stacked_key(name: str) -> tuple[str, int | None]:
    """The checkpoint key of a parameter name and its layer (None for a parameter outside the layers)."""
    match = _LAYER.fullmatch(name)
    return (f"decoder.layers.{match[2]}", int(match[1])) if match else (name, None)


def _box(key: str, global_shape: tuple[int, ...], layer: int | None, data: torch.Tensor) -> ShardedTensor:
    shape = tuple(global_shape) if layer is None else (1, *global_shape[1:])
    offset = (0,) * len(global_shape) if layer is None else (layer, *(0,) * (len(global_shape) - 1))
    return ShardedTensor(key=key, data=data.view(shape), dtype=data.dtype, local_shape=shape,
                         global_shape=tuple(global_shape), global_offset=offset, axis_fragmentations=None,
                         replica_id=0)


def whole_tensor_request(key: str, values: torch.Tensor) -> tuple[ShardedTensor, str]:
    """A request for the whole saved tensor ``key`` into ``values`` (its shape), for :meth:`SavedTensors.load`."""
    return _box(key, tuple(values.shape), None, values), key


class CheckpointTensors:
    """The weights of one checkpoint's ``state/``, under one-stage parameter names."""

    def __init__(self, saved: SavedTensors):
        self.saved = saved
        self.shapes: dict[str, tuple[int, ...]] = {}
        for key, metadata in saved.metadata.state_dict_metadata.items():
            if key.startswith(OPTIMIZER_PREFIX) or not hasattr(metadata, "size"):
                continue
            shape = tuple(metadata.size)
            if key.startswith("decoder.layers."):
                suffix = key[len("decoder.layers."):]
                self.shapes.update({f"decoder.layers.{layer}.{suffix}": shape[1:] for layer in range(shape[0])})
            else:
                self.shapes[key] = shape

    def read(self, name: str) -> torch.Tensor:
        """The fp32 tensor ``name``, read from the chunks that hold it."""
        key, layer = stacked_key(name)
        values = torch.empty(self.shapes[name])
        self.saved.load([(_box(key, self.saved.shape(key), layer, values), key)])
        return values


class _Produced(CheckpointableShardedTensor):
    """A box whose values are made only when torch.distributed.checkpoint writes them."""

    def __new__(cls, sharded: ShardedTensor, produce: Callable[[], torch.Tensor]):
        return super().__new__(cls, sharded.data, sharded)

    def __init__(self, sharded: ShardedTensor, produce: Callable[[], torch.Tensor]):
        super().__init__(sharded.data, sharded)
        self._produce = produce

    def __get_tensor_shard__(self, index) -> torch.Tensor:
        return self._produce().reshape(self._sh_ten.local_shape).contiguous()


def write_weights(directory: Path, shapes: dict[str, tuple[int, ...]], produce: Callable[[str], torch.Tensor]) -> None:
    """A ``state/`` directory holding the fp32 weights ``shapes`` names (one-stage names, every layer
    of a kind present), each made by ``produce(name)`` as it is written; no optimizer state."""
    import torch.distributed.checkpoint as dcp
    from megatron.core.dist_checkpointing.core import CheckpointingConfig, save_config

    stacked: dict[str, dict[int | None, str]] = {}
    for name in shapes:
        key, layer = stacked_key(name)
        stacked.setdefault(key, {})[layer] = name
    state = {}
    for key, names in stacked.items():
        some = shapes[next(iter(names.values()))]
        global_shape = some if None in names else (len(names), *some)
        state[key] = one_key([_Produced(_box(key, global_shape, layer, torch.empty(shapes[name], device="meta")),
                                        lambda name=name: produce(name).float())
                              for layer, name in sorted(names.items(), key=lambda item: item[0] or 0)])
    directory.mkdir(parents=True, exist_ok=True)
    # One file per tensor: torch's writer keeps every tensor of a file until the file is closed.
    dcp.save(state, storage_writer=dcp.FileSystemWriter(str(directory), single_file_per_rank=False), no_dist=True)
    torch.save({}, directory / "common.pt")  # megatron-core's common state: nothing beyond the tensors
    save_config(CheckpointingConfig("torch_dist", 1), str(directory))
