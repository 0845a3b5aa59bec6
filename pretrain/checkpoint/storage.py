"""Reading a torch.distributed.checkpoint directory: only the bytes a rank needs, and damage named.

The files are torch.distributed.checkpoint's (written through megatron-core's ``torch_dist``
strategy): each rank's ``__R_T.distcp`` holds its chunks one after another, each a ``torch.save``
archive, and ``.metadata`` says where every chunk of every global tensor is. torch's
``FileSystemReader`` deserializes a whole chunk for every piece of it a rank asks for; after a
change of layout a rank needs half a chunk, or a quarter, and would read all of it.
:class:`RangeReader` finds a chunk's raw tensor bytes inside its archive (stored uncompressed; the
zip directory says where) and reads only the rows and columns asked for, straight into the target
where it can. Anything it does not recognise is read the way torch reads it.

:func:`verify` checks a directory before it is used: the metadata readable, every file it names
present and long enough, and (before a resume) every chunk where the metadata places it. Any
failure is one :class:`CheckpointDamaged` line naming the file.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import pickle
import struct
import zipfile
from pathlib import Path

import torch
from megatron.core.dist_checkpointing.strategies.cached_metadata_filesystem_reader import (
    CachedMetadataFileSystemReader,
)
from torch.distributed.checkpoint.metadata import Metadata, TensorStorageMetadata
from torch.distributed.checkpoint.planner import LoadItemType, LoadPlan, LoadPlanner, ReadItem
from torch.distributed.checkpoint.utils import _create_file_view
from torch.futures import Future

METADATA_FILE = ".metadata"
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length
_END_OF_DIRECTORY_SIZE = 22  # a zip's last record, without a comment


class CheckpointDamaged(ValueError):
    """A checkpoint file that is missing, cut short or does not match the metadata (one line naming it)."""


def read_metadata(directory: Path) -> Metadata:
    path = directory / METADATA_FILE
    try:
        with open(path, "rb") as handle:
            metadata = pickle.load(handle)
    except FileNotFoundError:
        raise CheckpointDamaged(f"{path}: missing (it lists where every tensor is)") from None
    except Exception as error:  # unpickling raises anything
        raise CheckpointDamaged(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    if not isinstance(metadata, Metadata) or metadata.storage_data is None:
        raise CheckpointDamaged(f"{path}: not torch.distributed.checkpoint metadata")
    return metadata


def _check_chunks(path: Path, chunks: list[tuple[int, int]]) -> None:
    """Every (offset, length) the metadata gives is a whole archive: a zip local header at its start,
    the end of its zip directory at its end (``torch.save`` writes no archive comment)."""
    with open(path, "rb") as handle:
        for offset, length in chunks:
            start = os.pread(handle.fileno(), 4, offset)
            end = os.pread(handle.fileno(), 4, offset + length - _END_OF_DIRECTORY_SIZE)
            if start != b"PK\x03\x04" or end != b"PK\x05\x06":
                raise CheckpointDamaged(f"{path}: no tensor at byte {offset}, where the metadata places one "
                                        "(the metadata does not match the file)")


def verify(directory: Path, chunks: bool = False) -> Metadata:
    """The directory's metadata, once every file it names is there and holds the bytes it places in
    it; with ``chunks``, also that each chunk begins and ends where the metadata says (two small
    reads a chunk: what a resume checks before it commits to a checkpoint)."""
    metadata = read_metadata(directory)
    needed: dict[str, list[tuple[int, int]]] = {}
    for info in metadata.storage_data.values():
        needed.setdefault(info.relative_path, []).append((info.offset, info.length))
    for name, placed in sorted(needed.items()):
        path = directory / name
        end = max(offset + length for offset, length in placed)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise CheckpointDamaged(f"{path}: missing (the metadata places {len(placed)} chunks in it)") from None
        if size < end:
            raise CheckpointDamaged(f"{path}: truncated to {size} bytes; the metadata places data up to byte {end}")
        if chunks:
            _check_chunks(path, placed)
    return metadata


def _chunk_shapes(metadata: Metadata) -> dict[tuple[str, tuple[int, ...]], tuple[tuple[int, ...], torch.dtype]]:
    shapes = {}
    for fqn, tensor in metadata.state_dict_metadata.items():
        if isinstance(tensor, TensorStorageMetadata):
            for chunk in tensor.chunks:
                shapes[fqn, tuple(chunk.offsets)] = (tuple(chunk.sizes), tensor.properties.dtype)
    return shapes


class _Slice(io.RawIOBase):
    """Bytes ``[offset, offset + length)`` of a file as a seekable file of their own (zipfile reads
    an archive from its end; torch's file view does not seek from the end)."""

    def __init__(self, handle, offset: int, length: int):
        super().__init__()
        self.handle, self.offset, self.length, self.position = handle, offset, length, 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        self.position = min(max(0, base + offset), self.length)
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        size = min(len(buffer), self.length - self.position)
        read = os.preadv(self.handle.fileno(), [memoryview(buffer)[:size]], self.offset + self.position)
        self.position += read
        return read


def _raw_data_offset(handle, path: Path, offset: int, length: int, nbytes: int) -> int | None:
    """Where the tensor bytes of the ``torch.save`` archive at ``offset`` start in the file, or None
    when the archive is not a single uncompressed storage of ``nbytes`` (then it is read whole)."""
    try:
        archive = zipfile.ZipFile(io.BufferedReader(_Slice(handle, offset, length)))
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointDamaged(f"{path}: no tensor at byte {offset}, where the metadata places one ({error})") from None
    storages = [info for info in archive.infolist() if info.filename.split("/")[-2:-1] == ["data"]]
    if len(storages) != 1 or storages[0].compress_type != zipfile.ZIP_STORED:
        return None
    if storages[0].file_size != nbytes:
        raise CheckpointDamaged(f"{path}: the tensor at byte {offset} has {storages[0].file_size} bytes; the metadata "
                                f"gives it {nbytes} (the metadata does not match the file)")
    header = os.pread(handle.fileno(), _LOCAL_HEADER.size, offset + storages[0].header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise CheckpointDamaged(f"{path}: broken archive at byte {offset}")
    return offset + storages[0].header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _read_box(fd: int, path: Path, data_offset: int, shape: tuple[int, ...], offsets, lengths,
              out: torch.Tensor) -> None:
    """The box ``offsets``/``lengths`` of the row-major tensor ``shape`` at ``data_offset`` into the
    contiguous ``out``: one read per run of consecutive bytes."""
    itemsize = out.element_size()
    strides = [math.prod(shape[d + 1:]) for d in range(len(shape))]
    split = len(shape) - 1  # the last dimension not read whole; later ones are
    while split > 0 and offsets[split] == 0 and lengths[split] == shape[split]:
        split -= 1
    run = lengths[split] * strides[split] * itemsize
    buffer = memoryview(out.view(-1).view(torch.uint8).numpy())
    position = 0
    for index in itertools.product(*(range(o, o + n) for o, n in zip(offsets[:split], lengths[:split]))):
        element = sum(i * s for i, s in zip(index, strides)) + offsets[split] * strides[split]
        if os.preadv(fd, [buffer[position:position + run]], data_offset + element * itemsize) != run:
            raise CheckpointDamaged(f"{path}: ends inside a tensor the metadata places at byte {data_offset}")
        position += run


class RangeReader(CachedMetadataFileSystemReader):
    """A torch.distributed.checkpoint reader that reads only the requested part of each chunk."""

    def __init__(self, directory: Path):
        super().__init__(str(directory))
        self.directory = Path(directory)
        self._shapes: dict = {}
        self._data_offsets: dict[tuple[str, int], int | None] = {}

    def read_metadata(self, *args, **kwargs) -> Metadata:
        if self._cached_metadata is None:
            self._cached_metadata = read_metadata(self.directory)
            self._shapes = _chunk_shapes(self._cached_metadata)
        return self._cached_metadata

    def read_data(self, plan: LoadPlan, planner: LoadPlanner) -> Future[None]:
        per_file: dict[str, list[ReadItem]] = {}
        for item in plan.items:
            per_file.setdefault(self.storage_data[item.storage_index].relative_path, []).append(item)
        for name, items in per_file.items():
            path = self.directory / name
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                raise CheckpointDamaged(f"{path}: missing (the metadata places chunks in it)") from None
            with handle:
                for item in sorted(items, key=lambda item: self.storage_data[item.storage_index].offset):
                    self._read_item(handle, path, item, planner)
        future: Future = Future()
        future.set_result(None)
        return future

    def _read_item(self, handle, path: Path, item: ReadItem, planner: LoadPlanner) -> None:
        info = self.storage_data[item.storage_index]
        if item.type == LoadItemType.BYTE_IO:
            handle.seek(info.offset)
            planner.load_bytes(item, io.BytesIO(handle.read(info.length)))
            return
        shape, dtype = self._shapes[item.storage_index.fqn, tuple(item.storage_index.offset)]
        key = (info.relative_path, info.offset)
        if key not in self._data_offsets:
            nbytes = math.prod(shape) * dtype.itemsize
            self._data_offsets[key] = _raw_data_offset(handle, path, info.offset, info.length, nbytes)
        target = planner.resolve_tensor(item).detach()
        if self._data_offsets[key] is None:  # not a plain storage: torch's own way, the whole chunk
            whole = torch.load(_create_file_view(handle, info.offset, info.length), map_location="cpu",
                               weights_only=True)
            target.copy_(whole[tuple(slice(o, o + n) for o, n in zip(item.storage_offsets, item.lengths))])
        else:
            direct = target.is_contiguous() and target.dtype == dtype and target.device.type == "cpu"
            out = target if direct else torch.empty(tuple(item.lengths), dtype=dtype)
            _read_box(handle.fileno(), path, self._data_offsets[key], shape, item.storage_offsets, item.lengths, out)
            if not direct:
                target.copy_(out)
        planner.commit_tensor(item, target)
