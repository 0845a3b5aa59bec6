"""Large JSON Lines files split into byte ranges that start and end on line boundaries.

One huge file would otherwise be one shard, read by one worker on one machine. A file larger than
``--split-bytes`` (uncompressed JSON Lines only: compressed streams and Parquet cannot be entered
in the middle, and a JSON array is one record) is cut at the first line end at or after each
multiple of that size. Finding those line ends and the number of lines before each cut takes one
sequential read of the file when the run is planned; the cuts are kept in the plan and reused
while the file is unchanged. A range's documents keep their line numbers in the whole file, so
``FILE:LINE`` locations and the keep order of dedup do not depend on the split.
"""

from __future__ import annotations

from dataclasses import dataclass

from foundation.records.streams import BOM, JSON_SUFFIXES

SCAN_BYTES = 16 << 20  # read per step while looking for line ends
DEFAULT_SPLIT_BYTES = 1 << 30


@dataclass(frozen=True)
class ByteRange:
    start: int  # first byte (the start of a line)
    end: int  # one past the last byte (just after a newline, or the end of the file)
    first_line: int  # number of the range's first line in the whole file (from 1)


def splittable(path: str) -> bool:
    """Uncompressed JSON Lines: a JSON suffix and no compression suffix, and not a JSON array."""
    if not path.lower().endswith(JSON_SUFFIXES):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096).removeprefix(BOM).lstrip()
    except OSError:
        return False  # the reader reports it
    return not (path.lower().endswith(".json") and head.startswith(b"["))


def _cuts(path: str, max_bytes: int) -> list[tuple[int, int]]:
    """(cut position, lines before it): each cut is just after the first newline at or after a
    multiple of ``max_bytes``."""
    cuts: list[tuple[int, int]] = []
    lines = position = 0
    target = max_bytes
    with open(path, "rb") as handle:
        while chunk := handle.read(SCAN_BYTES):
            while True:
                local = max(target - 1 - position, 0)
                newline = chunk.find(b"\n", local) if local < len(chunk) else -1
                if newline < 0:
                    break
                cut = position + newline + 1
                cuts.append((cut, lines + chunk.count(b"\n", 0, newline + 1)))
                target = (cut // max_bytes + 1) * max_bytes
            lines += chunk.count(b"\n")
            position += len(chunk)
    return [(cut, before) for cut, before in cuts if cut < position]


def byte_ranges(path: str, size: int, max_bytes: int) -> list[ByteRange] | None:
    """The ranges of a file larger than ``max_bytes``; None when it stays one shard."""
    if max_bytes <= 0 or size <= max_bytes or not splittable(path):
        return None
    cuts = _cuts(path, max_bytes)
    if not cuts:
        return None  # one line longer than the whole limit
    starts = [(0, 0), *cuts]
    ends = [cut for cut, _ in cuts] + [size]
    return [ByteRange(start, end, before + 1) for (start, before), end in zip(starts, ends)]
