"""Reading one input file as documents: every record becomes a ``Document`` or a ``Rejection``.

JSON Lines files (see ``streams`` for suffixes and compression) hold one JSON object per line;
blank lines are not records. A ``.json`` file whose first character is ``[`` is one JSON array
whose elements are the records (read whole into memory; positions are element numbers). Parquet
rows are records (positions are row numbers).

JSON is parsed strictly, so that what is kept can always be written back as JSON: ``NaN`` and
``Infinity``, a number too large for a float, an integer of more digits than Python converts
(``sys.get_int_max_str_digits()``, 4300) and nesting deeper than the parser's recursion limit make
the record a rejection, and the next line is read as usual. When the file itself stops being
readable (truncated or corrupt compressed data, an unreadable Parquet page), one rejection with
``stops_file`` names the line (and byte) where reading stopped; nothing after it is read.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Iterator

from foundation.records import progress
from foundation.records.document import Document, Rejection
from foundation.records.split import ByteRange
from foundation.records.streams import UnreadableData, is_parquet, numbered_lines

PARQUET_BATCH_ROWS = 1024
JSON_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
                   float: "a number", type(None): "null"}


def json_type(value: Any) -> str:
    """The JSON name of a value's type (Parquet values that JSON lacks keep their Python name)."""
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)


class _NotStrictJson(ValueError):
    pass


def _parse_int(digits: str) -> int:
    limit = sys.get_int_max_str_digits()
    if limit and len(digits.lstrip("-")) > limit:
        raise _NotStrictJson(f"an integer of {len(digits.lstrip('-'))} digits (more than {limit})")
    return int(digits)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NotStrictJson(f"the number {text[:40]} is too large for a float")
    return value


def _parse_constant(name: str) -> Any:
    raise _NotStrictJson(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)


def decode_json(text: str) -> Any:
    """``json.loads`` with the strict rules above; raises ValueError with a one-line reason."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as error:
        # Some messages end in "at" ("Unterminated string starting at"); the column follows.
        raise ValueError(f"malformed JSON: {error.msg.removesuffix(' at')} at column {error.colno}") from None
    except _NotStrictJson as error:
        raise ValueError(f"not strict JSON: {error}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply for the parser") from None


def _has_lone_surrogate(decoded: str, record: Any) -> bool:
    if "\\ud" not in decoded and "\\uD" not in decoded:
        return False
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_line(raw: bytes, source: str, line: int) -> tuple[int, Any] | Rejection:
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Rejection(source, line, f"invalid UTF-8 at byte {error.start} of the line")
    try:
        record = decode_json(decoded)
    except ValueError as error:
        return Rejection(source, line, str(error))
    if _has_lone_surrogate(decoded, record):  # no UTF-8 output can hold a lone surrogate
        return Rejection(source, line, "invalid UTF-8: unpaired surrogate escape")
    return line, record


def _json_array(first_line: bytes, rest: Iterator[tuple[int, bytes]], source: str) -> Iterator[tuple[int, Any] | Rejection]:
    text = b"\n".join([first_line, *(raw for _, raw in rest)])
    parsed = _json_line(text, source, 1)
    if isinstance(parsed, Rejection):
        yield Rejection(source, 1, f"unreadable JSON array: {parsed.error}", stops_file=True)
        return
    for element, record in enumerate(parsed[1], start=1):
        yield element, record


def _jsonl_records(path: str, byte_range: ByteRange | None) -> Iterator[tuple[int, Any] | Rejection]:
    start, end, first_line = (byte_range.start, byte_range.end, byte_range.first_line) if byte_range else (0, None, 1)
    lines = numbered_lines(path, start, end, first_line)
    try:
        for number, raw in lines:
            if not raw.strip():
                continue
            if number == 1 and path.lower().endswith(".json") and raw.lstrip().startswith(b"["):
                yield from _json_array(raw, lines, path)
                return
            yield _json_line(raw, path, number)
    except UnreadableData as error:
        yield Rejection(path, error.line, f"unreadable: {error.message}", byte=error.byte, stops_file=True)
    except OSError as error:
        yield Rejection(path, first_line, f"unreadable: {error.strerror or error}",
                        byte=start, stops_file=True)


def _parquet_records(path: str) -> Iterator[tuple[int, Any] | Rejection]:
    row = 0
    try:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for record in batch.to_pylist():
                row += 1
                yield row, record
    except Exception as error:  # pyarrow raises several unrelated types for unreadable files
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        yield Rejection(path, row + 1, f"unreadable Parquet: {message}", stops_file=True)


def iter_records(path: str, byte_range: ByteRange | None = None) -> Iterator[tuple[int, Any] | Rejection]:
    """(position, decoded record) for every record of one file (or of one byte range of an
    uncompressed JSON Lines file), or a Rejection in its place."""
    return _parquet_records(path) if is_parquet(path) else _jsonl_records(path, byte_range)


@dataclass(frozen=True)
class RecordParser:
    """Turns one decoded record into a Document or a Rejection."""

    text_field: str = "text"
    id_field: str = "id"

    def parse(self, record: Any, source: str, line: int) -> Document | Rejection:
        if not isinstance(record, dict):
            return Rejection(source, line, f"record is {json_type(record)}, not an object")
        if self.text_field not in record:
            return Rejection(source, line, f"missing text field {self.text_field!r}")
        text = record[self.text_field]
        if not isinstance(text, str):
            return Rejection(source, line, f"text field {self.text_field!r} is {json_type(text)}, not a string")
        raw_id = record.get(self.id_field)
        doc_id = f"{source}:{line}" if raw_id is None else str(raw_id)
        fields = {k: v for k, v in record.items() if k not in (self.text_field, self.id_field)}
        return Document(id=doc_id, text=text, fields=fields, source=source, line=line)


def read_documents(path: str, parser: RecordParser,
                   byte_range: ByteRange | None = None) -> Iterator[Document | Rejection]:
    """Documents and rejections of one file (or byte range) in order; documents whose id repeats
    an earlier one of the same file (range) get ``duplicate_of`` set to the first one's line."""
    first_line_of_id: dict[str, int] = {}
    uncounted = 0
    for item in iter_records(path, byte_range):
        if not isinstance(item, Rejection):
            item = parser.parse(item[1], path, item[0])
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
