"""Atomic outputs: everything is written to a temporary name and renamed when complete, so a
crash never leaves a file that looks finished."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator, TextIO

import numpy as np


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


class UnwritableRecord(ValueError):
    """A record that strict JSON cannot hold (a NaN or infinite float from Parquet, nesting
    deeper than the encoder allows)."""


def to_json_line(record: dict[str, Any]) -> str:
    # default=str keeps Parquet values (timestamps, decimals) writable instead of failing the shard;
    # allow_nan=False: NaN and Infinity are not JSON, and a reader of the output would choke on them.
    try:
        return json.dumps(record, ensure_ascii=False, default=str, allow_nan=False) + "\n"
    except (ValueError, RecursionError) as error:
        raise UnwritableRecord(f"not writable as JSON: {str(error).splitlines()[0]}") from None


class AtomicJsonlWriter:
    """JSONL file that appears under its final name only after ``commit()``. Opened by
    ``atomic_jsonl_writers``, which also deletes it on any exception."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._tmp = _temporary(self.path)
        self._handle: TextIO | None = None
        self.count = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self._tmp, "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Raises UnwritableRecord (and writes nothing) for a record JSON cannot hold."""
        self._handle.write(to_json_line(record))
        self.count += 1

    def commit(self) -> None:
        self._handle.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        # By name: a stop signal may arrive after open() created the file and before it returned.
        if self._handle is not None:
            self._handle.close()
        self._tmp.unlink(missing_ok=True)


@contextmanager
def atomic_jsonl_writers(*paths: Path) -> Iterator[tuple[AtomicJsonlWriter, ...]]:
    """One shard's JSONL outputs: all renamed to their final names when the block ends normally;
    on any exception (a stop signal included, also one arriving while they are opened or renamed)
    every temporary file is deleted."""
    writers = tuple(AtomicJsonlWriter(path) for path in paths)  # nothing exists on disk yet
    try:
        for writer in writers:
            writer.open()
        yield writers
        for writer in writers:
            writer.commit()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Yields a temporary path to write; renamed to ``path`` on success, deleted on any exception
    (a stop signal included)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def binary_file_atomic(path: Path) -> Iterator[BinaryIO]:
    """A binary file written piece by piece that appears under ``path`` only when complete."""
    with _replacing(path) as tmp, open(tmp, "wb") as handle:
        yield handle


def write_bytes_atomic(path: Path, data: bytes, durable: bool = False) -> None:
    """``durable``: flushed to the disk before the rename, so a power loss leaves the old file or
    the new one (checkpoints need this; data outputs are rerun instead)."""
    with _replacing(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def write_text_atomic(path: Path, text: str, durable: bool = False) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), durable)


def write_json_atomic(path: Path, value: Any) -> None:
    write_bytes_atomic(path, (json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"))


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    with _replacing(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)
