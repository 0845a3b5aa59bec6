"""The records that flow through every stage: a document, a removal, a rejection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """One input document.

    ``fields`` holds every field of the input record except text and id; they pass through to
    ``kept/`` untouched. ``source`` and ``line`` locate the record (line is 1-based; for Parquet it
    is the row number). ``duplicate_of`` is set by the reader when an earlier record of the same
    shard had the same id; the runner removes such documents with reason ``duplicate_id``.
    """

    id: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    line: int = 0
    duplicate_of: int | None = None

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True)
class Removal:
    """A stage's decision to drop a document: ``reason`` is a short label (the rule that fired),
    ``details`` a JSON-serializable dict (measured value, threshold, partner id, similarity...)."""

    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    """An input record that could not be read as a document (file, line, error). With
    ``stops_file`` it stands instead for the unreadable rest of the file from ``line`` on (a
    truncated or corrupt file); ``byte`` then gives the file offset where reading stopped."""

    source: str
    line: int
    error: str
    byte: int | None = None
    stops_file: bool = False
