"""Slices of a sorted ``.npy`` file, found by binary search and read with ``pread``.

The merge items read a slice of many files each: a buckets item one band's range from every
shard's index, a components item one node range from every bucket item's edges. Through a memory
map each lookup also maps the pages around it (the kernel's fault-around), and a strided key
column (a field of a structured array) is copied whole before ``np.searchsorted`` can search it:
the item's resident set then grew with the number and size of the files. Read this way, an item
holds what it reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tools.stage.errors import InputError


class CorruptFile(InputError):
    """A file a step wrote and another reads cannot be read back (damaged outside the run)."""


HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class SortedFile:
    """A C-ordered ``.npy`` array sorted along its last axis (per row, for a 2-D array), or by one
    field (a 1-D structured array)."""

    def __init__(self, path: Path, remedy: str):
        self.path = path
        try:
            self._file = open(path, "rb", buffering=0)
            version = np.lib.format.read_magic(self._file)
            if version not in HEADER_READERS:
                raise ValueError(f"npy format version {version}")
            shape, fortran, self.dtype = HEADER_READERS[version](self._file)
        except FileNotFoundError:
            raise CorruptFile(f"{path}: missing; {remedy}") from None
        except (OSError, ValueError, EOFError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CorruptFile(f"{path}: unreadable ({reason}); {remedy}") from None
        if fortran or len(shape) not in (1, 2):
            raise CorruptFile(f"{path}: unreadable (not a C-ordered 1-D or 2-D array); {remedy}")
        self.rows, self.length = (1, shape[0]) if len(shape) == 1 else shape
        self._data = self._file.tell()
        self._remedy = remedy
        expected = self._data + self.rows * self.length * self.dtype.itemsize
        if os.fstat(self._file.fileno()).st_size < expected:
            raise CorruptFile(f"{path}: unreadable (truncated); {remedy}")

    def read(self, start: int, end: int, row: int = 0) -> np.ndarray:
        """Entries [start, end) of ``row``."""
        size = self.dtype.itemsize
        offset = self._data + (row * self.length + start) * size
        data = os.pread(self._file.fileno(), (end - start) * size, offset)
        if len(data) != (end - start) * size:
            raise CorruptFile(f"{self.path}: unreadable (truncated); {self._remedy}")
        return np.frombuffer(data, dtype=self.dtype)

    def _key(self, index: int, row: int, field: str | None):
        entry = self.read(index, index + 1, row)[0]
        return entry[field] if field else entry

    def search(self, value, row: int = 0, field: str | None = None) -> int:
        """The first index whose key is >= ``value`` (``np.searchsorted``, side left)."""
        low, high = 0, self.length
        while low < high:
            middle = (low + high) // 2
            if self._key(middle, row, field) < value:
                low = middle + 1
            else:
                high = middle
        return low

    def slice(self, low, high, row: int = 0, field: str | None = None) -> np.ndarray:
        """The entries whose key is in [low, high) (``high`` None: to the end)."""
        start = self.search(low, row, field)
        end = self.length if high is None else self.search(high, row, field)
        return self.read(start, end, row)

    def close(self) -> None:
        self._file.close()
