"""What every stage checks and tidies before it runs, in this order, so that a typo never locks an
output directory: the output directory is usable, the inputs exist, the text field is there, and
only then the run's parameters are recorded (or checked against an earlier run's) and what an
earlier run left for files that are no longer inputs is deleted."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from foundation.atomic_write import write_json_atomic
from foundation.records.document import Rejection
from foundation.records.reader import iter_records
from tools.stage.errors import InputError
from tools.stage.runner import Shard

TEXT_FIELD_SAMPLE = 100  # records looked at for --text-field
TEXT_FIELD_FILES = 8  # files looked at for them, at most
# Directories holding files named after shards (<shard>.<suffixes>); see remove_stale.
SHARD_DIRS = ("kept", "removed", "rejected", ".work/index", ".work/shards")
MARKERS_DIR = ".markers"  # one subdirectory per per-shard step, one marker per shard
RUN_RECORD = ".run.json"


class RunConflict(InputError):
    """The output directory holds a run with other parameters; resuming it would mix results."""


def check_output(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {output}: exists and is not a directory")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--output {output}: cannot create it ({error.strerror})") from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise InputError(f"--output {output}: not writable")


def check_text_field(paths: list[str], text_field: str) -> None:
    """Fail when none of the first records (that are JSON objects) has ``text_field``."""
    objects = 0
    fields: Counter[str] = Counter()
    for path in paths[:TEXT_FIELD_FILES]:
        for item in iter_records(path):
            if isinstance(item, Rejection) or not isinstance(item[1], dict):
                continue
            if text_field in item[1]:
                return
            objects += 1
            fields.update(list(item[1]))
            if objects >= TEXT_FIELD_SAMPLE:
                break
        if objects >= TEXT_FIELD_SAMPLE:
            break
    if objects:
        found = ", ".join(name for name, _ in fields.most_common(8))
        raise InputError(f"--text-field {text_field!r}: none of the first {objects} records has it "
                         f"(they have: {found})")


def claim_output(output: Path, stage: str, params: dict[str, Any]) -> None:
    """Record the run's parameters in ``output/.run.json``, or check them against a previous run."""
    record = json.loads(json.dumps({"stage": stage, "params": params}, default=str))
    path = Path(output) / RUN_RECORD
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != record:
            changed = sorted(k for k in set(previous.get("params", {})) | set(record["params"])
                             if previous.get("params", {}).get(k) != record["params"].get(k))
            raise RunConflict(f"--output {output} holds a {previous.get('stage')} run with other parameters "
                              f"({', '.join(changed) or 'stage'}); use a fresh --output directory")
        return
    write_json_atomic(path, record)


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and (name.endswith(".tmp") or name.startswith(".tmp-"))


def remove_stale(output: Path, shards: list[Shard], temporaries: bool = True) -> None:
    """Delete files of shards that are no longer inputs (a file deleted from an input directory,
    or renamed), and with ``temporaries`` the temporary files a killed run left anywhere."""
    names = {shard.name for shard in shards}
    markers = Path(output) / MARKERS_DIR
    directories = [Path(output) / d for d in SHARD_DIRS]
    directories += [p for p in markers.iterdir() if p.is_dir()] if markers.is_dir() else []
    for directory in directories:
        if directory.is_dir():
            for path in directory.iterdir():
                if not path.name.startswith(".") and path.name.split(".")[0] not in names:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
    if temporaries:
        for path in Path(output).rglob(".*"):
            if path.is_file() and _is_temporary(path.name):
                path.unlink(missing_ok=True)
