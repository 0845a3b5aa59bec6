"""A rerun into the same output equals a fresh run: added, deleted and edited inputs, edited
benchmarks and corpus-wide decisions are redone exactly; nothing stale stays behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tools.adversarial import prose
from tests.tools.test_adversarial import jsonl_records, qwen_data, write_lines

STAGES = {"clean": ["clean", "--no-quality-filters"], "dedup": ["dedup", "--method", "exact"]}


def outputs(directory: Path) -> dict[str, bytes]:
    """Every result file of a stage's output directory (not its resume state or manifest)."""
    return {str(p.relative_to(directory)): p.read_bytes() for sub in ("kept", "removed", "rejected")
            for p in sorted((directory / sub).glob("*")) if p.is_file()}


def rerun_equals_fresh(capfd, argv: list[str], inputs: Path, output: Path, fresh: Path) -> dict[str, bytes]:
    assert qwen_data(capfd, *argv, "--input", str(inputs), "--output", str(output))[0] == 0
    assert qwen_data(capfd, *argv, "--input", str(inputs), "--output", str(fresh))[0] == 0
    assert outputs(output) == outputs(fresh)
    return outputs(output)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_adding_and_deleting_input_files_leaves_no_stale_shards(tmp_path, capfd, stage):
    data = tmp_path / "in"
    for i in range(3):
        write_lines(data / f"part-{i}.jsonl", [{"id": f"{i}-{j}", "text": prose(j)} for j in range(5)])
    output = tmp_path / "out"
    assert qwen_data(capfd, *STAGES[stage], "--input", str(data), "--output", str(output))[0] == 0
    write_lines(data / "part-00.jsonl", [{"id": "new", "text": prose(99)}])  # sorts before part-1
    result = rerun_equals_fresh(capfd, STAGES[stage], data, output, tmp_path / "fresh-added")
    assert len([name for name in result if name.startswith("kept/")]) == 4
    (data / "part-1.jsonl").unlink()
    (data / "part-2.jsonl").unlink()
    result = rerun_equals_fresh(capfd, STAGES[stage], data, output, tmp_path / "fresh-deleted")
    assert len([name for name in result if name.startswith("kept/")]) == 2
    assert json.loads((output / "manifest.json").read_text())["counts"]["in"] == len(jsonl_records(output / "kept")) \
        + len(jsonl_records(output / "removed")) + len(jsonl_records(output / "rejected")) == 6


def test_a_line_added_to_an_input_is_seen_by_dedup_across_shards(tmp_path, capfd):
    data = tmp_path / "in"
    write_lines(data / "a.jsonl", [{"id": "a", "text": prose(1)}])
    write_lines(data / "b.jsonl", [{"id": "b", "text": prose(2)}])
    assert qwen_data(capfd, *STAGES["dedup"], "--input", str(data), "--output", str(tmp_path / "out"))[0] == 0
    write_lines(data / "b.jsonl", [{"id": "b", "text": prose(2)}, {"id": "b2", "text": prose(1).upper()}])
    rerun_equals_fresh(capfd, STAGES["dedup"], data, tmp_path / "out", tmp_path / "fresh")
    assert [r["id"] for r in jsonl_records(tmp_path / "out" / "removed")] == ["b2"]


def test_a_trailing_slash_names_the_same_input(tmp_path, capfd):
    data = tmp_path / "in"
    write_lines(data / "a.jsonl", [{"id": "a", "text": prose(1)}])
    assert qwen_data(capfd, *STAGES["clean"], "--input", f"{data}/", "--output", str(tmp_path / "out"))[0] == 0
    code, err = qwen_data(capfd, *STAGES["clean"], "--input", str(data), "--output", str(tmp_path / "out"))
    assert code == 0 and "1 of 1 shards finished earlier, skipped" in err


@pytest.mark.parametrize("stage", [["tokenize"], ["decontaminate", "--benchmark", "humaneval"]])
def test_an_input_typo_does_not_lock_the_output(tmp_path, capfd, stage):
    path = write_lines(tmp_path / "in" / "a.jsonl", [{"id": "a", "text": prose(1)}])
    code, err = qwen_data(capfd, *stage, "--input", str(tmp_path / "in" / "typo.jsonl"), "--output", str(tmp_path / "o"))
    assert code == 2 and "no such file" in err
    assert qwen_data(capfd, *stage, "--input", str(path), "--output", str(tmp_path / "o"))[0] == 0


def test_shard_names_keep_one_identity_suffix_through_stages(tmp_path, capfd):
    path = write_lines(tmp_path / "in" / "part-03.jsonl", [{"id": "a", "text": prose(1)}])
    assert qwen_data(capfd, *STAGES["clean"], "--input", str(path), "--output", str(tmp_path / "clean"))[0] == 0
    assert qwen_data(capfd, *STAGES["dedup"], "--input", str(tmp_path / "clean" / "kept"),
                     "--output", str(tmp_path / "dedup"))[0] == 0
    [first] = (tmp_path / "clean" / "kept").iterdir()
    [second] = (tmp_path / "dedup" / "kept").iterdir()
    assert first.name.startswith("part-03-") and second.name.startswith("part-03-") and len(first.name) == len(second.name)


def test_temporary_files_of_a_killed_run_are_removed_by_the_next(tmp_path, capfd):
    path = write_lines(tmp_path / "in" / "a.jsonl", [{"id": "a", "text": prose(1)}])
    assert qwen_data(capfd, *STAGES["clean"], "--input", str(path), "--output", str(tmp_path / "o"))[0] == 0
    left = [tmp_path / "o" / "kept" / ".a-0123abcd.jsonl.4242.tmp", tmp_path / "o" / ".manifest.json.4242.tmp"]
    for leftover in left:
        leftover.write_text("half")
    assert qwen_data(capfd, *STAGES["clean"], "--input", str(path), "--output", str(tmp_path / "o"))[0] == 0
    assert not any(p.exists() for p in left)


def decontaminate(capfd, data: Path, bench: Path, output: Path, *extra: str) -> None:
    argv = ["decontaminate", "--input", str(data), "--output", str(output), "--benchmark", f"b={bench}",
            "--mode", "drop-document", *extra]
    assert qwen_data(capfd, *argv)[0] == 0


def test_an_edited_benchmark_file_is_matched_again(tmp_path, capfd):
    data = tmp_path / "in"
    write_lines(data / "a.jsonl", [{"id": f"d{i}", "text": prose(i)} for i in range(4)])
    bench = write_lines(tmp_path / "bench.jsonl", [{"id": "q", "text": prose(1)}])
    decontaminate(capfd, data, bench, tmp_path / "out")
    assert [r["id"] for r in jsonl_records(tmp_path / "out" / "removed")] == ["d1"]
    write_lines(bench, [{"id": "q", "text": prose(2)}])
    decontaminate(capfd, data, bench, tmp_path / "out")
    decontaminate(capfd, data, bench, tmp_path / "fresh")
    assert [r["id"] for r in jsonl_records(tmp_path / "out" / "removed")] == ["d2"]
    assert outputs(tmp_path / "out") == outputs(tmp_path / "fresh")


def test_an_ngram_made_frequent_by_a_new_shard_rewrites_the_finished_ones(tmp_path, capfd):
    data = tmp_path / "in"
    leak = prose(7)
    write_lines(data / "a.jsonl", [{"id": "a", "text": leak}, {"id": "a2", "text": prose(8)}])
    bench = write_lines(tmp_path / "bench.jsonl", [{"id": "q", "text": leak}])
    decontaminate(capfd, data, bench, tmp_path / "out", "--max-ngram-documents", "1")
    assert [r["id"] for r in jsonl_records(tmp_path / "out" / "removed")] == ["a"]
    write_lines(data / "b.jsonl", [{"id": "b", "text": leak}])  # now in 2 documents: a common phrase
    decontaminate(capfd, data, bench, tmp_path / "out", "--max-ngram-documents", "1")
    decontaminate(capfd, data, bench, tmp_path / "fresh", "--max-ngram-documents", "1")
    assert jsonl_records(tmp_path / "out" / "removed") == []
    assert outputs(tmp_path / "out") == outputs(tmp_path / "fresh")
    report = json.loads((tmp_path / "out" / "decontamination_report.json").read_text())
    assert report["ignored_frequent_ngrams"] > 0 and report["documents_removed"] == 0
