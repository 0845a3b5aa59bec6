"""The sharded checkpoint format in one process: boxes, byte-range reads, damaged files.

Multi-process saving and resharding are tested through real runs (test_layout_checkpoints.py,
test_training.py); here the pieces they rest on.
"""

from __future__ import annotations

import math
import os
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pretrain.checkpoint import storage
from pretrain.checkpoint.placement import Piece, Placement, _boxes_in, boxes
from pretrain.checkpoint.sharded_state import SavedTensors
from pretrain.checkpoint.storage import CheckpointDamaged, verify
from pretrain.checkpoint.tensors import CheckpointTensors, _box, whole_tensor_request, write_weights

SHAPES = {"embedding.word_embeddings.weight": (40, 24), "decoder.layers.0.mlp.linear_fc2.weight": (24, 36),
          "decoder.layers.1.mlp.linear_fc2.weight": (24, 36), "decoder.final_layernorm.weight": (24,)}


@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), data=st.data())
def test_boxes_of_a_flat_range_are_contiguous_in_order_and_cover_it(shape, data):
    total = math.prod(shape)
    begin = data.draw(st.integers(0, total - 1))
    end = data.draw(st.integers(begin + 1, total))
    flat = torch.arange(total).view(shape)
    position = begin
    for offset, size in _boxes_in(tuple(shape), begin, end):
        block = flat[tuple(slice(o, o + s) for o, s in zip(offset, size))]
        assert block.flatten().tolist() == list(range(position, position + block.numel()))
        position += block.numel()
    assert position == end


def test_a_fragment_of_a_two_piece_parameter_maps_to_both_halves_of_the_global_tensor():
    """A SwiGLU fc1 shard at TP rank 1 of 2: local rows [gate_1; up_1] are global rows 2-3 and 6-7."""
    placement = Placement("fc1", (Piece("fc1", (1, 8, 3), (0, 2, 0), (1, 2, 3), 0),
                                  Piece("fc1", (1, 8, 3), (0, 6, 0), (1, 2, 3), 6)), writes=True, numel=12)
    found = [(box.offset, box.shape, box.start) for box in boxes(placement, 4, 10)]
    assert found == [((0, 3, 1), (1, 1, 2), 0), ((0, 6, 0), (1, 1, 3), 2), ((0, 7, 0), (1, 1, 1), 5)]


@pytest.fixture
def written(tmp_path):
    """A state/ directory written tensor by tensor, and the tensors."""
    generator = torch.Generator().manual_seed(0)
    tensors = {name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()}
    write_weights(tmp_path / "state", SHAPES, lambda name: tensors[name])
    return tmp_path / "state", tensors


def test_written_weights_read_back_by_one_stage_name_and_layers_are_stacked(written):
    directory, tensors = written
    saved = SavedTensors(directory, vocab_size=40)
    assert saved.shape("decoder.layers.mlp.linear_fc2.weight") == (2, 24, 36)
    readable = CheckpointTensors(saved)
    assert readable.shapes == SHAPES
    for name, tensor in tensors.items():
        assert torch.equal(readable.read(name), tensor), name


def test_a_box_of_a_chunk_reads_only_its_own_bytes(written, monkeypatch):
    """Columns 12..23 of one layer's [24, 36] weight: 24 runs of 12 floats, nothing else."""
    directory, tensors = written
    read = []
    original = os.preadv

    def counting(fd, buffers, offset):
        read.append(sum(len(buffer) for buffer in buffers))
        return original(fd, buffers, offset)

    saved = SavedTensors(directory, vocab_size=40)
    CheckpointTensors(saved).read("decoder.final_layernorm.weight")  # the zip directories are read once
    monkeypatch.setattr(storage.os, "preadv", counting)
    values = torch.empty(1, 24, 12)
    request = _box("decoder.layers.mlp.linear_fc2.weight", (2, 24, 36), 1, torch.empty(1, 24, 36))
    request = type(request)(key=request.key, data=values, dtype=values.dtype, local_shape=(1, 24, 12),
                            global_shape=(2, 24, 36), global_offset=(1, 0, 12), axis_fragmentations=None, replica_id=0)
    saved.load([(request, request.key)])
    assert torch.equal(values[0], tensors["decoder.layers.1.mlp.linear_fc2.weight"][:, 12:24])
    assert read[-24:] == [12 * 4] * 24 and sum(read) == values.nbytes + sum(read[:-24])
    assert sum(read[:-24]) < 4096  # the chunk's zip header, nothing of the tensor


def _data_files(directory):
    return sorted(p for p in directory.iterdir() if p.suffix == ".distcp")


def test_a_missing_shard_file_is_named(written):
    directory, _ = written
    victim = _data_files(directory)[0]
    victim.unlink()
    with pytest.raises(CheckpointDamaged, match=f"{victim}: missing"):
        verify(directory)


def test_a_truncated_shard_file_is_named(written):
    directory, _ = written
    victim = _data_files(directory)[-1]
    size = victim.stat().st_size
    with open(victim, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(CheckpointDamaged, match=f"{victim}: truncated to {size // 2} bytes"):
        verify(directory)


def test_metadata_that_does_not_match_the_files_is_named(written, tmp_path):
    """The metadata of a checkpoint whose files lie elsewhere: the first one it names is missing."""
    directory, _ = written
    metadata = pickle.loads((directory / ".metadata").read_bytes())
    for info in metadata.storage_data.values():
        info.relative_path = "__7_0.distcp"
    (directory / ".metadata").write_bytes(pickle.dumps(metadata))
    with pytest.raises(CheckpointDamaged, match=f"{directory / '__7_0.distcp'}: missing"):
        verify(directory)


def test_unreadable_metadata_is_named(written):
    directory, _ = written
    (directory / ".metadata").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointDamaged, match=f"{directory / '.metadata'}: unreadable"):
        verify(directory)


def test_bytes_that_are_not_a_chunk_where_the_metadata_places_one_are_named(written):
    directory, _ = written
    victim = _data_files(directory)[0]
    victim.write_bytes(b"\0" * victim.stat().st_size)  # same size, no archive
    with pytest.raises(CheckpointDamaged, match=f"{victim}: no tensor at byte 0.*does not match the file"):
        verify(directory, chunks=True)
    saved = SavedTensors(directory, vocab_size=40)  # without the chunk check: found while reading
    values = torch.empty(SHAPES["embedding.word_embeddings.weight"])
    with pytest.raises(CheckpointDamaged, match=f"{victim}: no tensor at byte 0"):
        saved.load([whole_tensor_request("embedding.word_embeddings.weight", values)] +
                   [whole_tensor_request(key, torch.empty(shape)) for key, shape in
                    (("decoder.final_layernorm.weight", (24,)),
                     ("decoder.layers.mlp.linear_fc2.weight", (2, 24, 36)))])
