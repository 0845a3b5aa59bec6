"""A corpus of hostile inputs for the data tools, and an independent count of its records.

Every way a file can be damaged, mislabelled or odd that a careful reader of
``foundation/records/streams.py`` and ``reader.py`` could think of: truncated and mislabelled compressed
files, strict-JSON violations (NaN, huge integers, floats that overflow, deep nesting), encodings
(BOM, UTF-16, invalid UTF-8, lone surrogates), shapes (JSON arrays, non-object records, wrong text
types), line endings, suffix spellings, files that are not inputs, and ordinary documents between
them so that nothing can be lost unnoticed.

``expected_records(path)`` counts what a file holds without the tools' reader: the records a
reader must account for (kept, removed or rejected), plus one for an unreadable rest.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

WORDS = ("the quick brown fox jumps over the lazy dog while a patient heron waits by the river and "
         "counts the ripples that the wind draws across the water").split()
SKIPPED = ("notes.txt", "README", "part-0.crc", "_SUCCESS")  # in a directory: skipped with a warning


def prose(seed: int, words: int = 60) -> str:
    """Distinct, ordinary English-like text (long enough for every stage to keep)."""
    return " ".join(WORDS[(seed * 7 + i * (seed % 5 + 1)) % len(WORDS)] + ("." if i % 12 == 11 else "")
                    for i in range(words)) + f" Document {seed}."


def good_lines(start: int, count: int) -> bytes:
    return b"".join(json.dumps({"id": f"doc-{n}", "text": prose(n), "n": n}).encode() + b"\n"
                    for n in range(start, start + count))


HOSTILE_LINES = [
    b'{"id": "broken", "text": ',                          # malformed JSON
    b'{"id": "unterminated", "text": "abc',                # "Unterminated string starting at"
    b'{"id": "latin1", "text": "caf\xe9"}',                 # invalid UTF-8
    b'{"id": "surrogate", "text": "\\ud800 alone"}',        # lone surrogate escape
    b'["an", "array"]', b'null', b'42', b'"a string"', b'true',
    b'{"id": "notext", "body": "x"}',
    b'{"id": "nulltext", "text": null}', b'{"id": "numtext", "text": 3.5}', b'{"id": "listtext", "text": ["a"]}',
    b'{"id": "objtext", "text": {"a": 1}}',
    b'{"id": "nan", "text": "x", "score": NaN}', b'{"id": "inf", "text": "x", "score": -Infinity}',
    b'{"id": "overflow", "text": "x", "score": 1e999}',
    b'{"id": "huge", "text": "x", "big": ' + b"9" * 5000 + b"}",
    b'{"id": "deep", "text": "x", "nest": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"id": "empty", "text": ""}',
    b'{"id": "doc-0", "text": "a repeated id"}',           # duplicate of the file's first id
    b'{"id": {"odd": "id"}, "text": "an id that is an object, kept as its string"}',
    b'{"id": "nul", "text": "nul \\u0000 inside and a line separator \\u2028 too"}',
    b'{"id": "crlf", "text": "windows line ending"}\r',
    b"   ", b"",                                            # blank lines are not records
    b'{"id": "long", "text": "' + b"long " * 50_000 + b'"}',
]


def _zstd_frames(data: bytes, frames: int = 1) -> bytes:
    step = len(data) // frames + 1
    return b"".join(zstandard.ZstdCompressor().compress(data[i:i + step]) for i in range(0, len(data), step))


def write_corpus(root: Path) -> Path:
    """The hostile corpus under ``root/corpus`` (returned)."""
    corpus = root / "corpus"
    (corpus / "nested" / "deeper").mkdir(parents=True, exist_ok=True)
    (corpus / "hostile.jsonl").write_bytes(good_lines(0, 3) + b"\n".join(HOSTILE_LINES) + b"\n" + good_lines(3, 3))
    plain = good_lines(100, 150)
    compressed = _zstd_frames(plain)
    (corpus / "cut-half.jsonl.zst").write_bytes(compressed[:len(compressed) // 2])
    (corpus / "cut-90.jsonl.zst").write_bytes(compressed[:len(compressed) * 9 // 10])
    (corpus / "cut-100-bytes.jsonl.zst").write_bytes(compressed[:-100])
    gzipped = gzip.compress(good_lines(300, 150))
    (corpus / "cut.jsonl.gz").write_bytes(gzipped[:len(gzipped) * 2 // 3])
    (corpus / "frames.jsonl.zst").write_bytes(_zstd_frames(good_lines(500, 40), frames=3))
    skippable = struct.pack("<II", 0x184D2A50, 4) + b"pzst"  # what pzstd writes before its frames
    (corpus / "skippable.jsonl.zst").write_bytes(skippable + _zstd_frames(good_lines(550, 4), frames=2))
    (corpus / "members.jsonl.gz").write_bytes(gzip.compress(good_lines(600, 5)) + gzip.compress(good_lines(605, 5)))
    (corpus / "plain-text.jsonl.zst").write_bytes(good_lines(700, 3))  # not zstd at all
    (corpus / "plain-text.jsonl.gz").write_bytes(b"this is not gzip\n")
    (corpus / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + good_lines(800, 3))
    (corpus / "utf16.jsonl").write_bytes(good_lines(810, 2).decode().encode("utf-16"))
    (corpus / "no-newline-at-end.jsonl").write_bytes(good_lines(820, 3).rstrip(b"\n"))
    (corpus / "empty.jsonl").write_bytes(b"")
    (corpus / "blank.jsonl").write_bytes(b"\n \n\t\n")
    (corpus / "UPPER.JSONL").write_bytes(good_lines(830, 2))
    (corpus / "nested" / "lines.ndjson").write_bytes(good_lines(840, 2))
    (corpus / "nested" / "deeper" / "b.jsonl.bz2").write_bytes(bz2.compress(good_lines(850, 2)))
    (corpus / "nested" / "x.jsonl.xz").write_bytes(lzma.compress(good_lines(860, 2)))
    records = [json.loads(line) for line in good_lines(870, 4).splitlines()] + [["not", "an", "object"]]
    (corpus / "array.json").write_text(json.dumps(records, indent=2))
    (corpus / "broken-array.json").write_text('[{"id": "a", "text": "x"}, {"id": ')
    (corpus / "lines.json").write_bytes(good_lines(880, 2))  # .json holding JSON Lines
    pq.write_table(pa.table({"id": ["p0", "p1", "p2"], "text": [prose(900), prose(901), prose(902)],
                             "score": [0.5, float("nan"), float("inf")]}), corpus / "table.parquet")
    (corpus / "corrupt.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 4 + b"PAR1")
    pq.write_table(pa.table({"id": ["q0", "q1"], "body": ["no text column", "here"]}), corpus / "no-text.parquet")
    pq.write_table(pa.table({"id": ["r0"], "text": [7]}), corpus / "int-text.parquet")
    (corpus / "a-directory.jsonl").mkdir()  # named like an input, but not a file
    for name in SKIPPED:
        (corpus / name).write_text("not an input\n")
    (corpus / ".hidden.jsonl").write_bytes(good_lines(990, 1))  # hidden files are not inputs
    return corpus


def _complete_lines(data: bytes) -> int:
    """Non-blank newline-terminated lines (what survives when the data stops early)."""
    return sum(1 for line in data.split(b"\n")[:-1] if line.strip())


def _lines(data: bytes) -> int:
    return sum(1 for line in data.removeprefix(b"\xef\xbb\xbf").split(b"\n") if line.strip())


def _stream_prefix(decompressor_factory, data: bytes) -> tuple[bytes, bool]:
    """Everything that decompresses from ``data`` and whether the data was complete."""
    out, rest = [], data
    decompressor = None
    while rest:
        decompressor = decompressor_factory()
        out.append(decompressor.decompress(rest))
        if not decompressor.eof:
            return b"".join(out), False
        rest = decompressor.unused_data
    return b"".join(out), True


def expected_records(path: Path) -> int:
    """Records the tools must account for in ``path`` (an unreadable rest counts as one)."""
    name, data = path.name.lower(), path.read_bytes()
    if name.endswith(".parquet"):
        try:
            return pq.read_metadata(path).num_rows
        except Exception:  # pyarrow's errors for a corrupt file have no common base
            return 1
    magic = {".zst": (b"\x28\xb5\x2f\xfd", b"\x50\x2a\x4d\x18"), ".gz": b"\x1f\x8b", ".bz2": b"BZh", ".xz": b"\xfd7zXZ"}
    factories = {".zst": lambda: zstandard.ZstdDecompressor().decompressobj(),
                 ".gz": lambda: zlib.decompressobj(wbits=31), ".bz2": bz2.BZ2Decompressor,
                 ".xz": lzma.LZMADecompressor}
    for suffix, factory in factories.items():
        if name.endswith(suffix):
            if data and not data.startswith(magic[suffix]):
                return 1
            text, complete = _stream_prefix(factory, data)
            return _lines(text) if complete else _complete_lines(text) + 1
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return 1
    if name.endswith(".json") and data.lstrip().startswith(b"["):
        try:
            return len(json.loads(data))
        except ValueError:
            return 1
    return _lines(data)
