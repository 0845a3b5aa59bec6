"""Every stage and the pipeline over the hostile corpus of ``adversarial.py``: nothing is lost
(in = kept + removed + rejected, counted from the files on both sides), every rejection names its
file and line, no traceback reaches stderr, and a run that cannot proceed says why in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from megatron.core.datasets.indexed_dataset import IndexedDataset

from foundation.dispatch import run_subcommand
from tests.tools.adversarial import SKIPPED, expected_records, prose, write_corpus
from tools.cli import COMMANDS
from tools.stage.inputs import list_inputs

# Files whose rest cannot be read: each is one rejection that stops the file.
UNREADABLE = {"cut-half.jsonl.zst", "cut-90.jsonl.zst", "cut-100-bytes.jsonl.zst", "cut.jsonl.gz",
              "plain-text.jsonl.zst", "plain-text.jsonl.gz", "utf16.jsonl", "broken-array.json", "corrupt.parquet"}


def qwen_data(capfd, *argv: str) -> tuple[int, str]:
    """Run ``qwen-data ARGV`` in this process; (exit code, everything written to stderr). What it
    wrote to stdout is in ``qwen_data.stdout``."""
    capfd.readouterr()
    code = run_subcommand("qwen-data", "", COMMANDS, [*argv, *(() if argv[0] == "inspect" else ("--no-progress",))])
    captured = capfd.readouterr()
    qwen_data.stdout = captured.out
    return code, captured.err


def jsonl_records(directory: Path) -> list[dict]:
    # split at "\n" only: JSON strings may hold U+2028 and other characters splitlines() breaks at
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").split("\n") if line]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adversarial")
    path = write_corpus(root)
    (root / "bench.jsonl").write_text(json.dumps({"id": "leaked", "text": prose(4)}) + "\n")
    return path


def input_files(corpus: Path) -> list[Path]:
    return [Path(f.path) for f in list_inputs([str(corpus)]).files]


def check_accounting(corpus: Path, output: Path, stderr: str, kept: int) -> dict:
    """The shared assertions; ``kept`` is counted by the caller from the stage's own output."""
    assert "Traceback" not in stderr, stderr
    assert f"warning: {len(SKIPPED)} files in --input directories" in stderr
    files = input_files(corpus)
    expected = sum(expected_records(path) for path in files)
    removed, rejected = jsonl_records(output / "removed"), jsonl_records(output / "rejected")
    assert kept + len(removed) + len(rejected) == expected
    counts = json.loads((output / "manifest.json").read_text())["counts"]
    assert (counts["in"], counts["kept"], counts["removed"], counts["rejected"]) == \
        (expected, kept, len(removed), len(rejected))
    names = {str(path) for path in files}
    for record in rejected:
        assert record["file"] in names and isinstance(record["line"], int) and record["line"] >= 1, record
    stopped = {Path(r["file"]).name for r in rejected if r["error"].startswith("unreadable")}
    assert stopped == UNREADABLE and counts["unreadable_files"] == len(UNREADABLE)
    return {(Path(r["file"]).name, r["line"]): r["error"] for r in rejected}


def test_clean_accounts_for_every_hostile_record(corpus, tmp_path, capfd):
    code, err = qwen_data(capfd, "clean", "--input", str(corpus), "--output", str(tmp_path / "out"),
                          "--no-quality-filters", "--workers", "2")
    assert code == 0
    errors = check_accounting(corpus, tmp_path / "out", err, len(jsonl_records(tmp_path / "out" / "kept")))
    assert errors[("hostile.jsonl", 5)] == "malformed JSON: Unterminated string starting at column 32"
    assert errors[("hostile.jsonl", 8)] == "record is an array, not an object"
    assert errors[("hostile.jsonl", 9)] == "record is null, not an object"
    assert errors[("hostile.jsonl", 14)] == "text field 'text' is null, not a string"
    assert errors[("hostile.jsonl", 18)] == "not strict JSON: NaN is not JSON"
    assert errors[("hostile.jsonl", 21)] == "not strict JSON: an integer of 5000 digits (more than 4300)"
    assert errors[("hostile.jsonl", 22)] == "JSON nested too deeply for the parser"
    assert errors[("table.parquet", 2)].startswith("not writable as JSON")
    assert errors[("no-text.parquet", 2)] == "missing text field 'text'"
    assert errors[("int-text.parquet", 1)] == "text field 'text' is a number, not a string"
    assert errors[("cut.jsonl.gz", 75)].startswith("unreadable: gzip data ends mid-stream")
    assert errors[("plain-text.jsonl.zst", 1)].startswith("unreadable: not zstd data")
    kept_ids = {r["id"] for r in jsonl_records(tmp_path / "out" / "kept")}
    assert {"doc-800", "doc-5", "doc-0", "doc-873", "doc-505", "doc-553", "doc-609", "p0", "long", "crlf"} <= kept_ids


@pytest.mark.parametrize("method", ["exact", "minhash"])
def test_dedup_accounts_for_every_hostile_record(corpus, tmp_path, capfd, method):
    code, err = qwen_data(capfd, "dedup", "--method", method, "--input", str(corpus), "--output", str(tmp_path / "o"))
    assert code == 0
    check_accounting(corpus, tmp_path / "o", err, len(jsonl_records(tmp_path / "o" / "kept")))


def test_decontaminate_accounts_for_every_hostile_record(corpus, tmp_path, capfd):
    bench = corpus.parent / "bench.jsonl"
    code, err = qwen_data(capfd, "decontaminate", "--input", str(corpus), "--output", str(tmp_path / "o"),
                          "--benchmark", f"bench={bench}", "--mode", "drop-document")
    assert code == 0
    check_accounting(corpus, tmp_path / "o", err, len(jsonl_records(tmp_path / "o" / "kept")))
    removed = {r["id"]: r["reason"] for r in jsonl_records(tmp_path / "o" / "removed")}
    assert removed["doc-4"] == "benchmark_overlap"


def test_tokenize_accounts_for_every_hostile_record_and_skips_empty_shards(corpus, tmp_path, capfd):
    code, err = qwen_data(capfd, "tokenize", "--input", str(corpus), "--output", str(tmp_path / "o"))
    assert code == 0
    dataset = IndexedDataset(str(tmp_path / "o" / "text_document"))
    check_accounting(corpus, tmp_path / "o", err, len(dataset.document_indices) - 1)


def test_pipeline_accounts_for_every_hostile_record(corpus, tmp_path, capfd):
    config = {"output": str(tmp_path / "run"), "workers": 2,
              "sources": [{"name": "hostile", "inputs": [str(corpus)]}],
              "stages": {"clean": {"quality_filters": False}, "exact_dedup": {}, "fuzzy_dedup": {},
                         "decontaminate": {"benchmarks": [f"bench={corpus.parent / 'bench.jsonl'}"]},
                         "tokenize": {}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config))
    code, err = qwen_data(capfd, "pipeline", "--config", str(tmp_path / "p.yaml"))
    assert code == 0 and "Traceback" not in err
    stages = json.loads((tmp_path / "run" / "pipeline_summary.json").read_text())["stages"]
    check_accounting(corpus, tmp_path / "run" / "clean", err, stages[0]["counts"]["kept"])
    for before, after in zip(stages, stages[1:]):
        assert after["counts"]["in"] == before["counts"]["kept"]
        assert after["counts"]["in"] == after["counts"]["kept"] + after["counts"]["removed"] + after["counts"]["rejected"]
    dataset = IndexedDataset(stages[-1]["dataset"]["prefix"])
    assert len(dataset.document_indices) - 1 == stages[-1]["counts"]["kept"] > 0


def write_lines(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def small(tmp_path) -> Path:
    return write_lines(tmp_path / "in" / "a.jsonl", [{"id": str(i), "text": prose(i)} for i in range(3)])


@pytest.mark.parametrize("argv, message", [
    (["clean", "--text-field", "body"], "--text-field 'body': none of the first 3 records has it (they have: id, text)"),
    (["clean", "--output", "{file}"], "--output {file}: exists and is not a directory"),
    (["clean", "--output", "{file}/sub"], "--output {file}/sub: cannot create it (Not a directory)"),
    (["clean", "--input", "{root}/missing"], "--input {root}/missing: no such file or directory"),
    (["clean", "--input", "{root}/notes.txt"], "--input {root}/notes.txt: {root}/notes.txt has a suffix that is not read"),
    (["dedup", "--method", "minhash", "--threshold", "1.5"], "--threshold must be in (0, 1], got 1.5"),
    (["dedup", "--method", "minhash", "--num-perm", "1"], "--num-perm must be >= 2, got 1"),
    (["decontaminate", "--benchmark", "humaneval", "--ngram", "0"], "--ngram must be >= 1, got 0"),
    (["decontaminate", "--benchmark", "humaneval", "--window", "-5"], "--window must be >= 0, got -5"),
    (["decontaminate", "--benchmark", "b={root}/latin1.jsonl"], "{root}/latin1.jsonl:1: invalid UTF-8 at byte 13 of the line"),
    (["decontaminate", "--benchmark", "b={root}/bad.parquet"], "{root}/bad.parquet:1: unreadable Parquet:"),
    (["decontaminate", "--benchmark", "nosuch"], "--benchmark nosuch: not a built-in benchmark"),
    (["tokenize", "--tokenizer-file", "{root}/none.tiktoken"], "--tokenizer-file {root}/none.tiktoken: no such file"),
    (["tokenize", "--input", "{root}/rejected.jsonl"], "no documents to tokenize: of 1 records, 0 were removed and 1 rejected"),
])
def test_a_run_that_cannot_proceed_says_why_in_one_line(small, tmp_path, capfd, argv, message):
    root = tmp_path
    (root / "file").write_text("x")
    (root / "notes.txt").write_text("x")
    (root / "latin1.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    (root / "bad.parquet").write_bytes(b"PAR1 not parquet PAR1")
    (root / "rejected.jsonl").write_text("{not json\n")
    argv = [a.format(root=root, file=root / "file") for a in argv]
    if "--input" not in argv:
        argv += ["--input", str(small.parent)]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "out")]
    code, err = qwen_data(capfd, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"qwen-data {argv[0]}: error: {message.format(root=root, file=root / 'file')}")


def test_inspect_takes_the_bin_file_for_its_prefix(small, tmp_path, capfd):
    assert qwen_data(capfd, "tokenize", "--input", str(small), "--output", str(tmp_path / "t"))[0] == 0
    code, _ = qwen_data(capfd, "inspect", str(tmp_path / "t" / "text_document.bin"), "--samples", "0")
    assert code == 0 and "documents: 3" in qwen_data.stdout


def test_a_source_filtered_out_entirely_is_left_out_of_the_training_data(small, tmp_path, capfd):
    write_lines(tmp_path / "short" / "s.jsonl", [{"id": "s", "text": " \n "}])  # empty once cleaned
    config = {"output": str(tmp_path / "run"), "workers": 1,
              "sources": [{"name": "good", "inputs": [str(small.parent)], "weight": 0.5},
                          {"name": "short", "inputs": [str(tmp_path / "short")], "weight": 0.5}],
              "stages": {"clean": {"quality_filters": False}, "tokenize": {}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config))
    code, err = qwen_data(capfd, "pipeline", "--config", str(tmp_path / "p.yaml"))
    assert code == 0 and "Traceback" not in err, err
    assert "pipeline: warning: source 'short' has no documents left to tokenize" in err
    data = json.loads((tmp_path / "run" / "pipeline_summary.json").read_text())["qwen_train"]["data"]
    assert data == {"prefixes": [str(tmp_path / "run" / "tokenize" / "good" / "text_document")]}


@pytest.mark.parametrize("command, text", [
    ("dedup", "near duplicates by estimated Jaccard"),  # --method has help
    ("tokenize", "NAME.bin/.idx (see --dataset-name), removed/, rejected/"),  # no kept/ it does not write
])
def test_help_describes_what_the_command_does(capfd, command, text):
    with pytest.raises(SystemExit):
        run_subcommand("qwen-data", "", COMMANDS, [command, "--help"])
    assert text in " ".join(capfd.readouterr().out.split())
