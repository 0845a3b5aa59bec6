"""The write phase shared by all stages: read a shard, ask a decider about each document, and
write ``kept/``, ``removed/`` and ``rejected/`` shards atomically, counting every record."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from foundation.atomic_write import UnwritableRecord, atomic_jsonl_writers
from foundation.records.document import Document, Rejection, Removal
from foundation.records.reader import read_documents
from tools.stage.runner import Shard, StageConfig

Decider = Callable[[Document], "Removal | None"]


class DeciderSource(Protocol):
    """Anything that can hand out the decision function for one shard (inside a worker)."""

    name: str

    def decider(self, shard: Shard) -> Decider: ...

    def depends(self, shard: Shard) -> str:
        """A digest of what the shard's decisions depend on beyond its own text ("" for nothing):
        the shard is written again when it changes."""


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


@dataclass(frozen=True)
class FilterTask:
    """Per-shard task of the write phase; returns the shard's counts."""

    source: DeciderSource
    config: StageConfig

    def __call__(self, shard: Shard) -> dict[str, Any]:
        out = Path(self.config.output)
        decide = self.source.decider(shard)
        reasons: Counter[str] = Counter()
        unreadable = False
        paths = [out / name / f"{shard.name}.jsonl" for name in ("kept", "removed", "rejected")]
        with atomic_jsonl_writers(*paths) as (kept, removed, rejected):
            for item in read_documents(shard.path, self.config.parser, shard.byte_range):
                if isinstance(item, Rejection):
                    rejected.write(rejected_record(item))
                    unreadable |= item.stops_file
                    continue
                removal = duplicate_id_removal(item) if item.duplicate_of is not None else decide(item)
                if removal is None:
                    try:
                        kept.write(kept_record(item, self.config))
                    except UnwritableRecord as error:
                        rejected.write(rejected_record(Rejection(item.source, item.line, str(error))))
                else:
                    reasons[removal.reason] += 1
                    removed.write(removed_record(item, self.source.name, removal))
        return shard_counts(kept.count, removed.count, rejected.count, reasons, unreadable)
