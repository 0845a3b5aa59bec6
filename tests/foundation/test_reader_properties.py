"""Properties of the record reader over generated files (hypothesis, a bounded number of examples):
every non-blank line becomes exactly one document or rejection at its own line, documents come
back exactly as written, and a compressed file cut anywhere yields a prefix of its records and then
one rejection saying where reading stopped, never a shorter file in silence."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundation.records.document import Document, Rejection
from foundation.records.reader import RecordParser, read_documents

EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
DOCUMENTS = st.fixed_dictionaries({"id": st.text(min_size=1, max_size=8), "text": st.text(max_size=60)},
                                  optional={"meta": JSON_VALUES})
# Junk never starts with a byte-order mark: as a file's first bytes one says how the file is encoded.
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
JUNK = st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b.strip() and not b.startswith(BOMS))
LINES = st.lists(st.one_of(DOCUMENTS.map(lambda d: ("doc", d)), JUNK.map(lambda b: ("junk", b)),
                           st.just(("blank", b"  "))), max_size=25)
COMPRESSORS = {".jsonl": lambda data: data, ".jsonl.gz": gzip.compress,
               ".jsonl.zst": lambda data: zstandard.ZstdCompressor().compress(data)}


def encode(lines) -> bytes:
    return b"".join((json.dumps(value, ensure_ascii=False).encode() if kind == "doc" else value) + b"\n"
                    for kind, value in lines)


def read(data: bytes, suffix: str) -> list[Document | Rejection]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"f{suffix}"
        path.write_bytes(data)
        return list(read_documents(str(path), RecordParser()))


@EXAMPLES
@given(lines=LINES, suffix=st.sampled_from(sorted(COMPRESSORS)))
def test_every_line_is_one_item_at_its_own_line(lines, suffix):
    items = read(COMPRESSORS[suffix](encode(lines)), suffix)
    records = [(number, kind, value) for number, (kind, value) in enumerate(lines, 1) if kind != "blank"]
    assert [item.line for item in items] == [number for number, _, _ in records]
    for item, (_, kind, value) in zip(items, records):
        assert not getattr(item, "stops_file", False)
        if kind == "doc" and isinstance(item, Document):
            assert (item.id, item.text) == (value["id"], value["text"])
            assert item.fields == {k: v for k, v in value.items() if k not in ("id", "text")}
        elif kind == "doc":  # the only documents rejected are ones JSON cannot round-trip (lone surrogates)
            assert item.error == "invalid UTF-8: unpaired surrogate escape"


@EXAMPLES
@given(documents=st.lists(DOCUMENTS, min_size=1, max_size=30), suffix=st.sampled_from([".jsonl.gz", ".jsonl.zst"]),
       cut=st.floats(min_value=0.0, max_value=0.999))
def test_a_cut_compressed_file_reads_a_prefix_then_says_where_it_stopped(documents, suffix, cut):
    data = COMPRESSORS[suffix](encode([("doc", d) for d in documents]))
    items = read(data[:max(1, int(len(data) * cut))], suffix)
    *records, last = items
    assert isinstance(last, Rejection) and last.stops_file and last.line == len(records) + 1
    assert last.error.startswith("unreadable: ") and last.byte is not None
    for number, (item, document) in enumerate(zip(records, documents), 1):
        assert item.line == number
        if isinstance(item, Document):
            assert (item.id, item.text) == (document["id"], document["text"])
