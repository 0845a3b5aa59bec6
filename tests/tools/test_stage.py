"""The stage framework: input formats, bad records, accounting, ids, resume."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tools.blocks.base import OneAtATime
from tools.stage import Document, InputError, Removal, StageConfig, run_document_stage
from tools.stage.output import StageOutput
from tools.stage.startup import RunConflict


@dataclass(frozen=True)
class DropShort(OneAtATime):
    """A minimal per-document stage (a block is one): remove texts under ``minimum`` characters."""

    minimum: int = 3
    name: str = "drop-short"
    libraries: tuple[str, ...] = ()

    def decide(self, doc: Document) -> Removal | None:
        return Removal("too_short", {"chars": len(doc.text)}) if len(doc.text) < self.minimum else None


def write_jsonl(path: Path, records: list[dict]) -> Path:
    lines = "".join(json.dumps(r) + "\n" for r in records).encode()
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(lines))
    elif path.name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(lines))
    else:
        path.write_bytes(lines)
    return path


def run(inputs, output: Path, stage=DropShort(), workers: int = 1, **fields) -> StageOutput:
    config = StageConfig(inputs=tuple(str(i) for i in inputs), output=output, workers=workers, progress=False,
                         **fields)
    run_document_stage(stage, config)
    result = StageOutput.load(output)
    counts = result.manifest["counts"]
    assert counts["in"] == counts["kept"] + counts["removed"] + counts["rejected"]
    assert (len(result.kept), len(result.removed), len(result.rejected)) == \
        (counts["kept"], counts["removed"], counts["rejected"])
    return result


def test_all_input_formats_are_read_and_other_fields_pass_through(tmp_path):
    data = tmp_path / "in"
    (data / "sub").mkdir(parents=True)
    write_jsonl(data / "a.jsonl", [{"id": "a", "text": "plain", "url": "u1"}])
    write_jsonl(data / "b.jsonl.gz", [{"id": "b", "text": "gzipped", "meta": {"k": [1, 2]}}])
    write_jsonl(data / "sub" / "c.jsonl.zst", [{"id": "c", "text": "zstd"}])
    pq.write_table(pa.table({"id": ["d"], "text": ["parquet"], "score": [0.5]}), data / "d.parquet")
    (data / "notes.txt").write_text("not an input")
    result = run([data], tmp_path / "out")
    by_id = {r["id"]: r for r in result.kept}
    assert sorted(by_id) == ["a", "b", "c", "d"]
    assert by_id["a"]["url"] == "u1" and by_id["b"]["meta"] == {"k": [1, 2]} and by_id["d"]["score"] == 0.5
    assert result.manifest["counts"]["in"] == 4


def test_bad_records_are_rejected_with_their_reason_and_never_stop_the_run(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "bad.jsonl").write_bytes(b"\n".join([
        b'{"id": "ok", "text": "fine text"}',
        b'{"id": "broken", "text": ',
        b'{"id": "notext", "body": "x"}',
        b'{"id": "utf", "text": "caf\xe9"}',
        b'{"id": "int", "text": 42}',
        b'["a", "list"]',
        b'{"id": "surrogate", "text": "\\ud800"}',
        b'{"id": "empty", "text": ""}',
    ]) + b"\n")
    (data / "corrupt.jsonl.gz").write_bytes(b"this is not gzip")
    truncated = gzip.compress(b"".join(json.dumps({"id": f"t{i}", "text": "x" * 50}).encode() + b"\n"
                                       for i in range(200)))
    (data / "truncated.jsonl.gz").write_bytes(truncated[: len(truncated) // 2])
    result = run([data], tmp_path / "out")
    errors = {(Path(r["file"]).name, r["line"]): r["error"] for r in result.rejected}
    assert errors[("bad.jsonl", 2)].startswith("malformed JSON")
    assert errors[("bad.jsonl", 3)] == "missing text field 'text'"
    assert errors[("bad.jsonl", 4)].startswith("invalid UTF-8")
    assert errors[("bad.jsonl", 5)] == "text field 'text' is a number, not a string"
    assert errors[("bad.jsonl", 6)] == "record is an array, not an object"
    assert errors[("bad.jsonl", 7)].startswith("invalid UTF-8")
    assert errors[("corrupt.jsonl.gz", 1)].startswith("unreadable: not gzip data")
    assert any(name == "truncated.jsonl.gz" and e.startswith("unreadable: gzip data ends mid-stream")
               for (name, _), e in errors.items())
    assert result.removed_by_id()["empty"]["reason"] == "too_short"
    assert [r["id"] for r in result.kept][0] == "ok"


def test_an_unreadable_file_is_rejected_not_fatal(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    write_jsonl(data / "good.jsonl", [{"text": "readable"}])
    (data / "dangling.jsonl").symlink_to(tmp_path / "gone.jsonl")  # listed, but open() fails
    result = run([data / "good.jsonl", data / "dangling.jsonl"], tmp_path / "out")
    assert [r["text"] for r in result.kept] == ["readable"]
    assert result.rejected[0]["error"] == "unreadable: No such file or directory"


def test_a_50_mb_document_is_processed(tmp_path):
    big = "word " * (10 * 1024 * 1024)  # 50 MB
    path = write_jsonl(tmp_path / "big.jsonl", [{"id": "big", "text": big}, {"id": "small", "text": "tiny text"}])
    result = run([path], tmp_path / "out")
    assert {r["id"] for r in result.kept} == {"big", "small"}
    assert len(next(r for r in result.kept if r["id"] == "big")["text"]) == len(big)


def test_duplicate_ids_are_removed_with_a_reason_naming_the_first(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": 7, "text": "first"}, {"id": 7, "text": "second"}])
    result = run([path], tmp_path / "out")
    assert [r["text"] for r in result.kept] == ["first"]
    assert result.removed[0]["reason"] == "duplicate_id" and result.removed[0]["details"] == {"first_line": 1}


def test_missing_ids_become_file_and_line_and_fields_are_configurable(tmp_path):
    path = write_jsonl(tmp_path / "n.jsonl", [{"content": "alpha"}, {"content": "beta", "key": "k2"}])
    result = run([path], tmp_path / "out", text_field="content", id_field="key")
    assert [(r["key"], r["content"]) for r in result.kept] == [(f"{path}:1", "alpha"), ("k2", "beta")]


def test_rerun_skips_finished_shards_and_gives_the_same_output(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    for i in range(3):
        write_jsonl(data / f"p{i}.jsonl", [{"id": f"{i}-{j}", "text": "x" * j} for j in range(6)])
    out = tmp_path / "out"
    first = run([data], out, workers=2)
    markers = sorted((out / ".markers" / "write").iterdir())
    stamps = [m.stat().st_mtime_ns for m in markers]
    [p1] = (out / "kept").glob("p1-*.jsonl")
    p1.unlink()
    markers[1].unlink()  # as if the run had died while writing shard 1
    second = run([data], out, workers=2)
    assert [m.stat().st_mtime_ns for m in (markers[0], markers[2])] == [stamps[0], stamps[2]]
    assert second.kept == first.kept and second.removed == first.removed
    assert second.manifest["counts"] == first.manifest["counts"]


def test_rerun_with_other_parameters_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "abc"}])
    run([path], tmp_path / "out")
    with pytest.raises(RunConflict, match="minimum"):
        run([path], tmp_path / "out", stage=DropShort(minimum=10))


def test_missing_input_is_a_one_line_error_with_exit_code_2(tmp_path):
    qwen_data = Path(sys.executable).parent / "qwen-data"
    result = subprocess.run([str(qwen_data), "dedup", "--method", "exact", "--input",
                             str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"qwen-data dedup: error: --input {tmp_path / 'nope.jsonl'}: "
                                                  "no such file or directory"]
    with pytest.raises(InputError):
        run([tmp_path / "missing-*.jsonl"], tmp_path / "out2")


@pytest.mark.parametrize("stop_at", ["open", "commit"])
def test_a_stop_while_shard_writers_open_or_commit_leaves_no_temporary_file(tmp_path, monkeypatch, stop_at):
    """A stop signal can arrive between one output's open() or rename and the next; none of the
    shard's temporary files may survive it (each file is deleted by name, not through a handle)."""
    from foundation import atomic_write as writer_module
    from tools.stage.errors import StopSignal

    calls = []
    real = getattr(writer_module.AtomicJsonlWriter, stop_at)

    def second_call_stops(self):
        calls.append(self.path.name)
        if len(calls) == 2:
            raise StopSignal(15)
        real(self)

    monkeypatch.setattr(writer_module.AtomicJsonlWriter, stop_at, second_call_stops)
    paths = [tmp_path / d / "shard.jsonl" for d in ("kept", "removed", "rejected")]
    with pytest.raises(StopSignal):
        with writer_module.atomic_jsonl_writers(*paths) as writers:
            for writer in writers:
                writer.write({"id": 1})
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert calls and not leftovers
