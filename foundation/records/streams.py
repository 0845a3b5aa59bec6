"""Which files are read, and reading one as numbered lines that either arrive whole or end in
a located ``UnreadableData``.

A file is read when its name ends (in any letter case) with a JSON suffix (``.jsonl``,
``.ndjson``, ``.json``), optionally followed by a compression suffix (``.gz``, ``.zst``,
``.bz2``, ``.xz``), or with ``.parquet``. Compressed data is decompressed chunk by chunk with the
format's own decompressor, so a file that stops in the middle of a compressed stream (a truncated
copy) is noticed instead of reading as shorter; concatenated members or frames are all read. The
first bytes are checked against the format the name promises, so a ``.zst`` that is not zstd data
is reported as such.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import zstandard

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIX = ".parquet"
CHUNK_BYTES = 1 << 20
# Compressed input is read in smaller pieces: each expands by the compression ratio (often 5-50x).
COMPRESSED_CHUNK_BYTES = 1 << 16
BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class Compression:
    name: str
    magic: tuple[bytes, ...]  # the data starts with one of these
    decompressor: Callable[[], Any]  # an object with decompress(data), eof and unused_data


# zstd: a frame, or a skippable frame (magic 0x184D2A50..5F, little-endian), which pzstd writes first
_ZSTD_MAGIC = (b"\x28\xb5\x2f\xfd", *(bytes([0x50 + n, 0x2a, 0x4d, 0x18]) for n in range(16)))


COMPRESSIONS = {
    ".gz": Compression("gzip", (b"\x1f\x8b",), lambda: zlib.decompressobj(wbits=31)),
    ".zst": Compression("zstd", _ZSTD_MAGIC, lambda: zstandard.ZstdDecompressor().decompressobj()),
    ".bz2": Compression("bzip2", (b"BZh",), bz2.BZ2Decompressor),
    ".xz": Compression("xz", (b"\xfd7zXZ\x00",), lzma.LZMADecompressor),
}
DECOMPRESSION_ERRORS = (zlib.error, zstandard.ZstdError, lzma.LZMAError, OSError, EOFError, ValueError)
READ_SUFFIXES = tuple(j + c for j in JSON_SUFFIXES for c in ("", *COMPRESSIONS)) + (PARQUET_SUFFIX,)


def is_read(path: str) -> bool:
    return path.lower().endswith(READ_SUFFIXES)


def compression_of(path: str) -> Compression | None:
    lowered = path.lower()
    return next((c for suffix, c in COMPRESSIONS.items() if lowered.endswith(suffix)), None)


def is_parquet(path: str) -> bool:
    return path.lower().endswith(PARQUET_SUFFIX)


class UnreadableData(Exception):
    """Reading stopped at ``line`` (the first line not read whole); ``byte`` is the offset in the
    file (compressed bytes for a compressed file) where the problem was found."""

    def __init__(self, line: int, byte: int | None, message: str):
        super().__init__(message)
        self.line = line
        self.byte = byte
        self.message = message


def _raw_chunks(handle, size: int = CHUNK_BYTES, limit: int | None = None) -> Iterator[bytes]:
    """Chunks of ``handle`` from its position, ``limit`` bytes at most."""
    remaining = limit
    while remaining is None or remaining > 0:
        chunk = handle.read(size if remaining is None else min(size, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


def _decompressed(handle, compression: Compression, lines_done: Callable[[], int]) -> Iterator[bytes]:
    """Decompressed bytes; raises UnreadableData on corrupt data and on a stream that ends early."""
    consumed = 0
    decompressor = None  # None between members: the file may end cleanly there
    for chunk in _raw_chunks(handle, COMPRESSED_CHUNK_BYTES):
        if consumed == 0 and not chunk.startswith(compression.magic):
            raise UnreadableData(1, 0, f"not {compression.name} data (starts with {chunk[:8].hex(' ')}), "
                                       f"though the name says {compression.name}")
        consumed += len(chunk)
        while chunk:
            decompressor = decompressor or compression.decompressor()
            try:
                yield decompressor.decompress(chunk)
            except DECOMPRESSION_ERRORS as error:
                raise UnreadableData(lines_done() + 1, consumed - len(chunk),
                                     f"corrupt {compression.name} data ({error})") from None
            if not decompressor.eof:
                break
            chunk = decompressor.unused_data
            decompressor = None
    if decompressor is not None:
        raise UnreadableData(lines_done() + 1, consumed,
                             f"{compression.name} data ends mid-stream after {consumed} bytes (a truncated file)")


def numbered_lines(path: str, start: int = 0, end: int | None = None,
                   first_line: int = 1) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its newline) for every line; a UTF-8 byte-order mark at the
    start is dropped. ``start``/``end``: a byte range of an uncompressed file that begins at a
    line start whose number is ``first_line`` (see ``split``). Raises OSError when the file cannot
    be opened, UnreadableData when its data stops being readable (the lines before that were all
    yielded)."""
    compression = compression_of(path)
    number = first_line - 1
    with open(path, "rb") as handle:
        if compression:
            chunks = _decompressed(handle, compression, lambda: number)
        else:
            handle.seek(start)
            chunks = _raw_chunks(handle, limit=None if end is None else end - start)
        pending: list[bytes] = []
        first = start == 0
        for chunk in chunks:
            if first and chunk:
                first = False
                if chunk.startswith(UTF16_BOMS):
                    raise UnreadableData(1, 0, "UTF-16 text (byte-order mark); the reader takes UTF-8")
                chunk = chunk.removeprefix(BOM)
            parts = chunk.split(b"\n")
            for part in parts[:-1]:
                number += 1
                if pending:
                    pending.append(part)
                    part = b"".join(pending)
                    pending = []
                yield number, part
            if parts[-1]:
                pending.append(parts[-1])
        if pending:  # a last line without a newline
            number += 1
            yield number, b"".join(pending)
