"""The write phase shared by all stages: read a shard, ask a decider about its documents in
batches (a model scorer batches there), and write ``kept/`` (or the stage's own kept output),
``removed/`` and ``rejected/`` shards atomically, counting every record."""

from __future__ import annotations

from collections import Counter
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from foundation.atomic_write import AtomicJsonlWriter, UnwritableRecord, atomic_jsonl_writers
from foundation.records.document import Document, Rejection, Removal
from foundation.records.reader import read_documents
from tools.stage.runner import Shard, StageConfig

# The decisions about a batch of documents, in order: a Removal, or None to keep (the text may be rewritten)
Decider = Callable[[Sequence[Document]], "list[Removal | None]"]
BATCH_DOCUMENTS = 256  # documents per decision batch
BATCH_CHARS = 4 << 20  # or fewer, when their texts are this long


class DeciderSource(Protocol):
    """Anything that can hand out the decision function for one shard (inside a worker)."""

    name: str

    def decider(self, shard: Shard) -> Decider: ...

    def depends(self, shard: Shard) -> str:
        """A digest of what the shard's decisions depend on beyond its own text ("" for nothing):
        the shard is written again when it changes."""


class KeptSink(Protocol):
    count: int  # documents written

    def write(self, doc: Document) -> None:
        """Raises UnwritableRecord (and writes nothing) for a document that cannot be written."""

    def result(self) -> dict[str, Any]:
        """Extras for the shard's counts (asked once the output is complete)."""


class KeptOutput(Protocol):
    """Where a stage's kept documents go (picklable): ``kept/`` JSON Lines, or a tokenized dataset."""

    def open(self, shard: Shard, config: StageConfig) -> AbstractContextManager[KeptSink]:
        """Written atomically: complete when the block ends normally, gone on any exception."""


def kept_record(doc: Document, config: StageConfig) -> dict[str, Any]:
    return {config.id_field: doc.id, config.text_field: doc.text, **doc.fields}


def removed_record(doc: Document, stage: str, removal: Removal) -> dict[str, Any]:
    return {"id": doc.id, "stage": stage, "reason": removal.reason, "details": removal.details,
            "source": doc.location}


def rejected_record(rejection: Rejection) -> dict[str, Any]:
    record = {"file": rejection.source, "line": rejection.line, "error": rejection.error}
    return record if rejection.byte is None else {**record, "byte": rejection.byte}


def shard_counts(kept: int, removed: int, rejections: int, reasons: Counter[str], unreadable: bool) -> dict[str, Any]:
    """One shard's result: ``in`` counts the records read plus the unreadable rest of a file as one."""
    return {"in": kept + removed + rejections, "kept": kept, "removed": removed, "rejected": rejections,
            "removed_by_reason": dict(reasons), "unreadable_files": int(unreadable)}


def duplicate_id_removal(doc: Document) -> Removal:
    return Removal("duplicate_id", {"first_line": doc.duplicate_of})


@dataclass
class _JsonlSink:
    writer: AtomicJsonlWriter
    config: StageConfig

    @property
    def count(self) -> int:
        return self.writer.count

    def write(self, doc: Document) -> None:
        self.writer.write(kept_record(doc, self.config))

    def result(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class KeptJsonl:
    """``kept/<shard>.jsonl``: {id_field, text_field, every other field of the document}."""

    @contextmanager
    def open(self, shard: Shard, config: StageConfig) -> Iterator[KeptSink]:
        with atomic_jsonl_writers(Path(config.output) / "kept" / f"{shard.name}.jsonl") as (writer,):
            yield _JsonlSink(writer, config)


def _batches(items: Iterator[Document | Rejection]) -> Iterator[list[Document | Rejection]]:
    """Consecutive records, cut after BATCH_DOCUMENTS documents or BATCH_CHARS characters."""
    batch: list[Document | Rejection] = []
    documents = chars = 0
    for item in items:
        batch.append(item)
        if isinstance(item, Document):
            documents, chars = documents + 1, chars + len(item.text)
            if documents >= BATCH_DOCUMENTS or chars >= BATCH_CHARS:
                yield batch
                batch, documents, chars = [], 0, 0
    if batch:
        yield batch


@dataclass(frozen=True)
class FilterTask:
    """Per-shard task of the write phase; returns the shard's counts (and the kept output's extras)."""

    source: DeciderSource
    config: StageConfig
    kept_output: KeptOutput = KeptJsonl()

    def __call__(self, shard: Shard) -> dict[str, Any]:
        out = Path(self.config.output)
        decide = self.source.decider(shard)
        reasons: Counter[str] = Counter()
        unreadable = False
        paths = [out / name / f"{shard.name}.jsonl" for name in ("removed", "rejected")]
        with self.kept_output.open(shard, self.config) as kept, atomic_jsonl_writers(*paths) as (removed, rejected):
            for batch in _batches(read_documents(shard.path, self.config.parser, shard.byte_range)):
                asked = [item for item in batch if isinstance(item, Document) and item.duplicate_of is None]
                decisions = dict(zip(map(id, asked), decide(asked) if asked else []))
                for item in batch:  # in input order: each output file keeps the order of the input
                    if isinstance(item, Rejection):
                        rejected.write(rejected_record(item))
                        unreadable |= item.stops_file
                        continue
                    removal = decisions[id(item)] if item.duplicate_of is None else duplicate_id_removal(item)
                    if removal is None:
                        try:
                            kept.write(item)
                        except UnwritableRecord as error:
                            rejected.write(rejected_record(Rejection(item.source, item.line, str(error))))
                    else:
                        reasons[removal.reason] += 1
                        removed.write(removed_record(item, self.source.name, removal))
        return {**shard_counts(kept.count, removed.count, rejected.count, reasons, unreadable), **kept.result()}
