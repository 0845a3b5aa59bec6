"""The executor interface: byte-range shards, the same output however the work is split (1 or 2
local workers, 4 SLURM-style tasks running the pickled job), and bad input between steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from foundation.records.split import byte_ranges
from tests.tools.stage_jobs import JOBS, outputs, run_as_tasks, write_mixed_corpus
from tests.tools.test_stage import DropShort
from tools.executor.local import LocalExecutor
from tools.executor.state import SlurmState
from tools.stage.output import StageOutput
from tools.stage.runner import StageConfig
from tools.stage.stages import run_document_stage

QWEN_DATA = str(Path(sys.executable).parent / "qwen-data")


def test_byte_ranges_end_on_line_ends_and_count_the_lines_before_them(tmp_path):
    path = tmp_path / "f.jsonl"
    lines = [json.dumps({"id": i, "text": "x" * (i % 17)}) + "\n" for i in range(500)]
    path.write_text("".join(lines))
    ranges = byte_ranges(str(path), path.stat().st_size, 1000)
    data = path.read_bytes()
    assert len(ranges) > 5 and ranges[0].start == 0 and ranges[-1].end == len(data)
    for before, after in zip(ranges, ranges[1:]):
        assert before.end == after.start and data[after.start - 1:after.start] == b"\n"
        assert after.first_line == data[:after.start].count(b"\n") + 1
    assert byte_ranges(str(path), path.stat().st_size, 0) is None
    assert byte_ranges(str(path), path.stat().st_size, 10 ** 9) is None


def test_a_split_file_gives_the_same_documents_with_their_lines_in_the_whole_file(tmp_path):
    path = tmp_path / "in.jsonl"
    records = [{"id": f"d{i}", "text": "x" * (i % 7)} for i in range(300)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records[:150]) + "{broken\n" +
                    "".join(json.dumps(r) + "\n" for r in records[150:]))
    whole = tmp_path / "whole"
    split = tmp_path / "split"
    run_document_stage(DropShort(), StageConfig((str(path),), whole, workers=1, progress=False))
    manifest = run_document_stage(DropShort(), StageConfig((str(path),), split, workers=2, progress=False,
                                                           split_bytes=2000))
    assert manifest["shards"] > 4 and len(list((split / "kept").iterdir())) == manifest["shards"]
    one, many = StageOutput.load(whole), StageOutput.load(split)
    assert sorted(map(json.dumps, one.kept)) == sorted(map(json.dumps, many.kept))
    assert sorted(r["source"] for r in one.removed) == sorted(r["source"] for r in many.removed)
    assert [(r["line"], r["error"]) for r in many.rejected] == [(151, r["error"]) for r in one.rejected]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("executor")
    write_mixed_corpus(root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(JOBS))
def test_one_worker_two_workers_and_four_tasks_give_the_same_output(corpus, tmp_path, name):
    results = []
    for workers, tasks in ((1, None), (2, None)):
        out = tmp_path / f"local-{workers}"
        LocalExecutor(workers, False).run(JOBS[name](corpus, out, workers, tasks or workers))
        results.append(outputs(out))
    out = tmp_path / "tasks-4"
    assert set(run_as_tasks(JOBS[name](corpus, out, 1, 4), 4)) == {0}
    results.append(outputs(out))
    assert results[0] == results[1] == results[2]
    # Every job produces something that could differ: kept records, or (tokenize) dataset bytes.
    kept = [lines for key, lines in results[0].items() if key.endswith("kept")]
    datasets = [data for key, data in results[0].items() if "text_document" in key]
    assert (kept and all(kept)) or (len(datasets) == 2 and all(datasets))
    assert list((out / "slurm").glob("job.pkl"))


def test_a_shard_that_vanishes_between_index_and_write_is_one_error_line(corpus, tmp_path, capfd):
    data = tmp_path / "in"
    data.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        (data / name).write_text((corpus / "in" / "big.jsonl").read_text())
    job = JOBS["dedup-exact"](tmp_path, tmp_path / "out", 1, 2)

    def vanish(step):
        if step.name == "dedup-exact.write":
            (data / "b.jsonl").unlink()

    capfd.readouterr()
    codes = run_as_tasks(job, 2, before=vanish)
    errors = [line for line in capfd.readouterr().err.splitlines() if "error:" in line]
    assert codes[-1] == 2 and len(errors) == 1
    assert f"{data / 'b.jsonl'} (bytes " in errors[0]  # a byte range of the file (it is split)
    assert errors[0].endswith("the input file vanished after it was indexed; rerun the same command to index it again")
    [failure] = [json.loads(p.read_text()) for p in (tmp_path / "out" / "slurm" / "failed").iterdir()]
    assert failure["exit_code"] == 2 and "b.jsonl" in failure["error"]  # a follower reports it, no retry


def test_a_corrupt_partition_file_is_one_error_line_naming_it(corpus, tmp_path, capfd):
    job = JOBS["dedup-minhash"](corpus, tmp_path / "out", 1, 2)
    damaged = []

    def damage(step):
        if step.name == "dedup-minhash.components1":
            path = sorted((tmp_path / "out" / ".work" / "merge-p2" / "edges").glob("*.npy"))[3]
            path.write_bytes(path.read_bytes()[:100])
            damaged.append(path)

    capfd.readouterr()
    codes = run_as_tasks(job, 2, before=damage)
    errors = [line for line in capfd.readouterr().err.splitlines() if "error:" in line]
    assert codes[-1] == 2 and len(errors) == 1
    assert f"{damaged[0]}: unreadable" in errors[0]
    assert errors[0].endswith(f"delete {tmp_path / 'out' / '.work' / 'merge-p2'} and rerun to redo the merge")


def test_a_slurm_rerun_with_another_task_count_is_refused_before_anything_runs(corpus, tmp_path):
    out = tmp_path / "out"
    SlurmState.load(out / "slurm").check_tasks(4)  # as the first submission recorded it
    result = subprocess.run([QWEN_DATA, "dedup", "--method", "exact", "--input", str(corpus / "in"), "--output",
                             str(out), "--executor", "slurm", "--tasks", "2"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"qwen-data dedup: error: --tasks 2: {out / 'slurm' / 'state.json'} records a run submitted with --tasks 4; "
        "use --tasks 4, or a fresh --output"]
    assert not (out / "kept").exists()
