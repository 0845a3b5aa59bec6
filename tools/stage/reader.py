"""Finding input files and reading them as documents.

Inputs are JSONL (plain, ``.gz``, ``.zst``) and Parquet. A record that cannot become a document
(malformed JSON, invalid UTF-8, missing or non-string text) is yielded as a ``Rejection``; an
unreadable or truncated file yields one ``Rejection`` at the point where reading stopped. Blank
lines are not records and are skipped.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from tools.stage import progress
from tools.stage.document import Document, Rejection

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".parquet")
PARQUET_BATCH_ROWS = 1024


class InputError(ValueError):
    """A fatal problem with the command line inputs (missing path, no files)."""


@dataclass(frozen=True)
class InputFile:
    path: str
    corpus: int  # index of the --input argument that produced this file


def _is_supported(path: str) -> bool:
    return path.endswith(SUPPORTED_SUFFIXES)


def expand_inputs(patterns: list[str] | tuple[str, ...]) -> list[InputFile]:
    """Files named by ``patterns`` (files, directories searched recursively, or globs), in
    argument order and sorted within each argument; a file named twice is read once."""
    files: list[InputFile] = []
    seen: set[str] = set()
    for corpus, pattern in enumerate(patterns):
        if os.path.isdir(pattern):
            found = sorted(str(p) for p in Path(pattern).rglob("*") if p.is_file() and _is_supported(str(p)))
        elif any(ch in pattern for ch in "*?["):
            found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        elif os.path.lexists(pattern):
            found = [pattern]
        else:
            raise InputError(f"--input {pattern}: no such file or directory")
        if not found:
            raise InputError(f"--input {pattern}: matches no {', '.join(SUPPORTED_SUFFIXES)} files")
        for path in found:
            if path not in seen:
                seen.add(path)
                files.append(InputFile(path, corpus))
    return files


def _open_lines(path: str) -> IO[bytes]:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst"):
        import zstandard

        raw = open(path, "rb")
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return open(path, "rb")


@dataclass(frozen=True)
class RecordParser:
    """Turns one decoded record into a Document or a Rejection."""

    text_field: str = "text"
    id_field: str = "id"

    def parse(self, record: Any, source: str, line: int) -> Document | Rejection:
        if not isinstance(record, dict):
            return Rejection(source, line, f"record is a JSON {type(record).__name__}, not an object")
        if self.text_field not in record:
            return Rejection(source, line, f"missing text field {self.text_field!r}")
        text = record[self.text_field]
        if not isinstance(text, str):
            return Rejection(source, line, f"text field {self.text_field!r} is {type(text).__name__}, not a string")
        raw_id = record.get(self.id_field)
        doc_id = f"{source}:{line}" if raw_id is None else str(raw_id)
        fields = {k: v for k, v in record.items() if k not in (self.text_field, self.id_field)}
        return Document(id=doc_id, text=text, fields=fields, source=source, line=line)

    def parse_json_line(self, raw: bytes, source: str, line: int) -> Document | Rejection:
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(source, line, f"invalid UTF-8 at byte {exc.start}")
        try:
            record = json.loads(decoded)
        except json.JSONDecodeError as exc:
            return Rejection(source, line, f"malformed JSON: {exc.msg} at column {exc.colno}")
        if "\\ud" in decoded or "\\uD" in decoded:
            # A JSON escape can encode a lone surrogate, which no UTF-8 output can hold.
            try:
                json.dumps(record, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                return Rejection(source, line, "invalid UTF-8: unpaired surrogate escape")
        return self.parse(record, source, line)


def _read_jsonl(path: str, parser: RecordParser) -> Iterator[Document | Rejection]:
    line = 0
    try:
        with _open_lines(path) as handle:
            for line, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield parser.parse_json_line(raw, path, line)
    except (OSError, EOFError, ValueError) as exc:  # unreadable, truncated or corrupt compressed data
        yield Rejection(path, line + 1, f"unreadable file: {type(exc).__name__}: {exc}")


def _read_parquet(path: str, parser: RecordParser) -> Iterator[Document | Rejection]:
    row = 0
    try:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for record in batch.to_pylist():
                row += 1
                yield parser.parse(record, path, row)
    except Exception as exc:  # pyarrow raises several unrelated types for unreadable files
        yield Rejection(path, row + 1, f"unreadable file: {type(exc).__name__}: {exc}")


def read_documents(path: str, parser: RecordParser) -> Iterator[Document | Rejection]:
    """Documents and rejections of one file in order; documents whose id repeats an earlier one
    of the same file get ``duplicate_of`` set to the first one's line."""
    reader = _read_parquet if path.endswith(".parquet") else _read_jsonl
    first_line_of_id: dict[str, int] = {}
    uncounted = 0
    for item in reader(path, parser):
        if isinstance(item, Document):
            first = first_line_of_id.setdefault(item.id, item.line)
            if first != item.line:
                item.duplicate_of = first
        uncounted += 1
        if uncounted == progress.COUNT_EVERY:
            progress.add(uncounted)
            uncounted = 0
        yield item
    progress.add(uncounted)
