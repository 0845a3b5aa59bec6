"""Which documents the review page shows: a seeded sample of N per group, where a group is one
stage's documents of one source with one outcome (kept, or removed for one reason).

The sample is bottom-k: every record gets a rank, a hash of the seed and the record's place (stage,
shard file, line), and each group keeps its N lowest ranks. So it streams (N records per group in
memory, however large the stage output), and the same seed gives the same documents whatever the
order the files are read in.

Removed records hold no text (a stage's ``removed/`` would otherwise repeat the input); they name
the ``FILE:LINE`` the stage read the document from, and the sampled ones are read back from there
with the stage's own text and id fields. A file that has gone or changed since shows as a note in
the page instead of the text.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from foundation.records.document import Document, Rejection
from foundation.records.reader import RecordParser, iter_records
from tools.pipeline.records import record_path
from tools.stage.errors import InputError

KEPT = "kept"  # the group "reason" of kept documents
# A shard file is named <stem>[_partNNNN]-<8 hex digits> after its input file (runner.shard_name),
# the same in kept/ and removed/: outside a pipeline the source is that stem.
_SHARD_SUFFIX = re.compile(r"(_part\d{4})?-[0-9a-f]{8}$")


def _pipeline_sources(path: Path) -> dict[str, str]:
    """Shard name -> pipeline source, from the record the pipeline wrote after this stage
    (OUTPUT/.pipeline/<stage>.json, "outputs"); empty for a stage run on its own."""
    try:
        record = json.loads(record_path(path.parent, path.name).read_text(encoding="utf-8"))
        return {Path(o["path"]).stem: str(o["source"]) for o in record["outputs"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


@dataclass(frozen=True)
class StageDir:
    """One stage output directory, its manifest checked."""

    path: Path
    stage: str
    counts: dict[str, Any]
    text_field: str
    id_field: str
    sources: dict[str, str]  # shard name -> source, in a pipeline

    def source(self, shard: Path) -> str:
        return self.sources.get(shard.stem) or _SHARD_SUFFIX.sub("", shard.stem)

    @classmethod
    def open(cls, path: Path) -> "StageDir":
        manifest_path = Path(path) / "manifest.json"
        if not Path(path).is_dir():
            raise InputError(f"{path}: not a directory")
        if not manifest_path.is_file():
            raise InputError(f"{path}: not a stage output (no manifest.json)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise InputError(f"{manifest_path}: malformed manifest: {str(error).splitlines()[0]}") from None
        counts = manifest.get("counts") if isinstance(manifest, dict) else None
        if not isinstance(counts, dict) or not isinstance(manifest.get("stage"), str) \
                or not isinstance(counts.get("removed_by_reason"), dict):
            raise InputError(f"{manifest_path}: malformed manifest: expected an object with \"stage\" and "
                             "\"counts\" holding \"removed_by_reason\"")
        parameters = manifest.get("parameters") if isinstance(manifest.get("parameters"), dict) else {}
        return cls(Path(path), manifest["stage"], counts, parameters.get("text_field", "text"),
                   parameters.get("id_field", "id"), _pipeline_sources(Path(path)))


@dataclass(frozen=True)
class Group:
    stage: int  # position of the stage output on the command line
    source: str
    reason: str  # KEPT or the removal reason


@dataclass
class Sampled:
    """One document of the page. ``location`` is where its text was read (FILE:LINE); ``note``
    says why ``text`` is None."""

    group: Group
    id: str
    location: str
    details: dict[str, Any] = field(default_factory=dict)  # the removal's measured value, limit...
    fields: dict[str, Any] = field(default_factory=dict)  # the document's other fields (language, url)
    scores: dict[str, float] = field(default_factory=dict)
    text: str | None = None
    note: str = ""


@dataclass(frozen=True)
class ReviewSample:
    stages: list[StageDir]
    counts: dict[Group, int]  # every record of every group, sampled or not
    documents: list[Sampled]  # in group order, each group in rank order


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
            except ValueError as error:
                raise InputError(f"{path}:{number}: malformed record: {str(error).splitlines()[0]}") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number}: malformed record: not a JSON object")
            yield number, record


def numeric_scores(value: Any) -> dict[str, float]:
    """The numbers of a document's ``scores`` dict (what a scoring block wrote)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _document(stage: StageDir, group: Group, path: Path, line: int, record: dict[str, Any]) -> Sampled:
    if group.reason != KEPT:
        details = record.get("details")
        return Sampled(group, str(record.get("id")), record["source"],
                       details=details if isinstance(details, dict) else {"details": details})
    extra = {k: v for k, v in record.items() if k not in (stage.id_field, stage.text_field, "scores")}
    text = record.get(stage.text_field)
    return Sampled(group, str(record.get(stage.id_field)), f"{path}:{line}", fields=extra,
                   scores=numeric_scores(record.get("scores")), text=text if isinstance(text, str) else None)


def _rank(seed: int, stage: StageDir, path: Path, line: int) -> int:
    key = f"{seed}\0{stage.stage}\0{path.parent.name}/{path.name}\0{line}".encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _records(index: int, stage: StageDir) -> Iterator[tuple[Group, Path, int, dict[str, Any]]]:
    for kind in (KEPT, "removed"):
        for path in sorted((stage.path / kind).glob("*.jsonl")):
            source = stage.source(path)
            for line, record in _lines(path):
                if kind == KEPT:
                    yield Group(index, source, KEPT), path, line, record
                elif not isinstance(record.get("reason"), str) or not isinstance(record.get("source"), str):
                    raise InputError(f"{path}:{line}: malformed record: a removed record needs "
                                     "\"reason\" and \"source\"")
                else:
                    yield Group(index, source, record["reason"]), path, line, record


def _read_back(documents: list[Sampled], stages: list[StageDir]) -> None:
    """Fills in the text (and the fields and scores) of sampled removed documents from the
    FILE:LINE their record names, reading each file once, up to the last line wanted."""
    wanted: dict[str, dict[int, list[Sampled]]] = defaultdict(lambda: defaultdict(list))
    for doc in documents:  # two stage outputs may have removed the same input line
        if doc.group.reason != KEPT:
            file, _, line = doc.location.rpartition(":")
            wanted[file][int(line) if line.isdigit() else -1].append(doc)
    for file, by_line in sorted(wanted.items()):
        note = f"text not available: {file} has no such line any more; the file changed"
        for item in iter_records(file):
            if isinstance(item, Rejection) and item.stops_file:
                note = f"text not available: {file}: {item.error}"
                print(f"qwen-data review: warning: {note}", file=sys.stderr)
                break
            line = item.line if isinstance(item, Rejection) else item[0]
            for doc in by_line.pop(line, []):
                stage = stages[doc.group.stage]
                _fill(doc, item if isinstance(item, Rejection) else
                      RecordParser(stage.text_field, stage.id_field).parse(item[1], file, line))
            if not by_line:
                break
        for doc in (doc for docs in by_line.values() for doc in docs):
            doc.note = note


def _fill(doc: Sampled, read: Document | Rejection) -> None:
    if isinstance(read, Rejection):
        doc.note = f"text not available: {read.error}"
    elif read.id != doc.id:
        doc.note = f"text not available: {doc.location} now holds document {read.id!r}; the file changed"
    else:
        doc.text = read.text
        doc.fields = {k: v for k, v in read.fields.items() if k != "scores"}
        doc.scores = numeric_scores(read.fields.get("scores"))


def sample_stages(paths: list[Path], per_group: int, seed: int) -> ReviewSample:
    stages = [StageDir.open(path) for path in paths]
    counts: Counter[Group] = Counter()
    # Per group a max-heap (negated ranks) of the per_group lowest ranks seen so far.
    heaps: dict[Group, list[tuple[int, str, int, Sampled]]] = defaultdict(list)
    for index, stage in enumerate(stages):
        for group, path, line, record in _records(index, stage):
            counts[group] += 1
            rank = _rank(seed, stage, path, line)
            heap = heaps[group]
            if len(heap) == per_group and -heap[0][0] <= rank:
                continue
            entry = (-rank, str(path), line, _document(stage, group, path, line, record))
            (heapq.heappushpop if len(heap) == per_group else heapq.heappush)(heap, entry)
    order = sorted(counts, key=lambda g: (g.stage, g.source, g.reason == KEPT, g.reason))
    documents = [entry[3] for group in order for entry in sorted(heaps[group], reverse=True)]
    _read_back(documents, stages)
    return ReviewSample(stages, {group: counts[group] for group in order}, documents)
