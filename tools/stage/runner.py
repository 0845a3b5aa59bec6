"""The shared stage options and shards, the units of parallel work and of resumption.

A shard is one input file, or one byte range of a large uncompressed JSON Lines file (see
``split``). Its name (``<stem>-<8 hex digits of a hash of its absolute path>``, with ``_partNNNN``
after the stem for a range) names every file the stages write for it, so it stays the same when
other files are added to or removed from an input directory. Its fingerprint (path, size, mtime,
and the range) is what a completion marker checks before a rerun skips it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation.records.reader import RecordParser
from foundation.records.split import DEFAULT_SPLIT_BYTES, ByteRange
from foundation.records.streams import READ_SUFFIXES
from tools.stage.inputs import normalized

_IDENTITY_SUFFIX = re.compile(r"-[0-9a-f]{8}$")  # the hash an earlier stage appended to a name
_STEM_CHARS = 80


@dataclass(frozen=True)
class StageConfig:
    """The options every stage shares (see ``tools.stage.cli.add_stage_arguments``)."""

    inputs: tuple[str, ...]
    output: Path
    text_field: str = "text"
    id_field: str = "id"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    progress: bool = True
    split_bytes: int = DEFAULT_SPLIT_BYTES  # larger JSON Lines files become several shards; 0: never
    # In a pipeline: a JSON file whose "outputs" ({"path", "source"}) are this stage's inputs, written
    # by the stage before; read when the stage plans, with only the files of ``inputs_source`` if set.
    inputs_record: str | None = None
    inputs_source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(normalized(str(i)) for i in self.inputs))
        object.__setattr__(self, "output", Path(self.output))

    def input_patterns(self) -> tuple[str, ...]:
        if self.inputs_record is None:
            return self.inputs
        outputs = json.loads(Path(self.inputs_record).read_text(encoding="utf-8"))["outputs"]
        return tuple(o["path"] for o in outputs if self.inputs_source in (None, o["source"]))

    @property
    def parser(self) -> RecordParser:
        return RecordParser(self.text_field, self.id_field)

    def resume_key(self) -> dict[str, Any]:
        """What must match for a rerun to reuse finished shards. The inputs are not part of it:
        shards are matched one by one, so added, removed or changed files are redone."""
        return {"text_field": self.text_field, "id_field": self.id_field}


def shard_name(path: str, part: int | None = None) -> str:
    base = os.path.basename(path)
    lowered = base.lower()
    suffix = next((s for s in sorted(READ_SUFFIXES, key=len, reverse=True) if lowered.endswith(s)), "")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", base[:len(base) - len(suffix)])
    stem = _IDENTITY_SUFFIX.sub("", stem)[:_STEM_CHARS] or "shard"
    if part is not None:
        stem = f"{stem}_part{part:04d}"
    digest = hashlib.blake2b(os.path.abspath(path).encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
    return f"{stem}-{digest}"


@dataclass(frozen=True)
class Shard:
    index: int  # position in the input order (the keep order of dedup)
    path: str
    corpus: int  # index of the --input argument that listed it
    part: int | None = None  # number of the byte range, when a large file is split
    byte_range: ByteRange | None = None

    @property
    def name(self) -> str:
        return shard_name(self.path, self.part)

    @property
    def label(self) -> str:
        """The file, and the byte range for a part of one (for messages)."""
        if self.byte_range is None:
            return self.path
        return f"{self.path} (bytes {self.byte_range.start}-{self.byte_range.end})"

    def fingerprint(self) -> dict[str, Any]:
        found = file_fingerprint(self.path)
        if self.byte_range is not None:
            found["bytes"] = [self.byte_range.start, self.byte_range.end]
        return found

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "path": self.path, "corpus": self.corpus, "part": self.part,
                "byte_range": None if self.byte_range is None else vars(self.byte_range)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> "Shard":
        byte_range = value.get("byte_range")
        return cls(value["index"], value["path"], value["corpus"], value.get("part"),
                   None if byte_range is None else ByteRange(**byte_range))


def file_fingerprint(path: str) -> dict[str, Any]:
    """What changes when a file is rewritten: its size and modification time."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        return {"path": path, "error": str(exc)}
    return {"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def digest(value: Any) -> str:
    """A short stable digest of a JSON-serializable value (for the keys of completion markers)."""
    return hashlib.blake2b(json.dumps(value, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()
