"""Exact dedup: normalization, keep policies across corpora, accounting (bad records for both methods)."""

from __future__ import annotations

import json
from pathlib import Path

from tools.dedup.exact import ExactDedup, Normalization
from tools.dedup.keep import KeepPolicy
from tools.dedup.minhash import MinHashDedup
from tools.stage import StageConfig, run_corpus_stage
from tools.stage.output import StageOutput


def write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def run_dedup(inputs, out: Path, stage, workers: int = 1) -> StageOutput:
    """Run a dedup stage and check that every input record is accounted for."""
    run_corpus_stage(stage, StageConfig(tuple(map(str, inputs)), out, workers=workers, progress=False))
    result = StageOutput.load(out)
    counts = result.manifest["counts"]
    assert counts["in"] == counts["kept"] + counts["removed"] + counts["rejected"]
    return result


def dedup(inputs, out: Path, stage: ExactDedup = ExactDedup(), workers: int = 1) -> StageOutput:
    return run_dedup(inputs, out, stage, workers)


def test_normalization_folds_unicode_case_and_whitespace_and_optionally_punctuation_and_digits():
    plain = Normalization()
    assert plain.apply("Ｈｅｌｌｏ   World\n") == plain.apply("hello world")
    assert plain.apply("Straße") == plain.apply("STRASSE")
    assert plain.apply("hello, world") != plain.apply("hello world")
    assert Normalization(fold_punctuation=True).apply("hello, world!") == "hello world"
    assert Normalization(fold_digits=True).apply("page 12") == Normalization(fold_digits=True).apply("page 97")
    assert plain.apply("page 12") != plain.apply("page 97")


def test_a_new_crawl_is_deduplicated_against_an_old_one_first_seen(tmp_path):
    old = write(tmp_path / "old" / "part.jsonl", [{"id": "o1", "text": "The same page"}, {"id": "o2", "text": "old only"}])
    new = write(tmp_path / "new" / "part.jsonl", [{"id": "n1", "text": "the  SAME page"}, {"id": "n2", "text": "new only"},
                                                   {"id": "n3", "text": "new only"}])
    result = dedup([old, new], tmp_path / "out")
    assert sorted(r["id"] for r in result.kept) == ["n2", "o1", "o2"]
    removed = result.removed_by_id()
    assert removed["n1"]["reason"] == "exact_duplicate"
    assert removed["n1"]["details"]["partner_id"] == "o1"
    assert removed["n1"]["details"]["partner_source"] == f"{old}:1"
    assert removed["n3"]["details"]["partner_id"] == "n2"
    assert result.manifest["duplicate_groups"] == 2 and "xxh3_128" in result.manifest["hash_scheme"]


def test_source_priority_decides_which_copy_survives(tmp_path):
    web = write(tmp_path / "web.jsonl", [{"id": "w", "text": "shared text"}])
    books = write(tmp_path / "books.jsonl", [{"id": "b", "text": "Shared text"}])
    stage = ExactDedup(keep=KeepPolicy("source-priority", ("*books*",)))
    result = dedup([web, books], tmp_path / "out", stage)
    assert [r["id"] for r in result.kept] == ["b"]
    assert result.removed_by_id()["w"]["details"]["partner_id"] == "b"


def test_parallel_run_equals_a_single_worker_run(tmp_path):
    shards = [write(tmp_path / "in" / f"s{i}.jsonl",
                    [{"id": f"{i}-{j}", "text": f"doc {j % 7}"} for j in range(20)] + [{"broken": True}])
              for i in range(4)]
    single = dedup(shards, tmp_path / "one", workers=1)
    parallel = dedup(shards, tmp_path / "two", workers=2)
    assert single.kept == parallel.kept and single.removed == parallel.removed
    assert single.manifest["counts"] == {"in": 84, "kept": 7, "removed": 73, "rejected": 4, "unreadable_files": 0,
                                         "removed_by_reason": {"exact_duplicate": 73}}


def test_a_rerun_after_an_input_changed_redoes_that_shard_and_the_decisions(tmp_path):
    first = write(tmp_path / "a.jsonl", [{"id": "a", "text": "alpha"}])
    second = write(tmp_path / "b.jsonl", [{"id": "b", "text": "beta"}])
    assert len(dedup([first, second], tmp_path / "out").kept) == 2
    write(second, [{"id": "b", "text": "beta"}, {"id": "b2", "text": "ALPHA"}])
    result = dedup([first, second], tmp_path / "out")
    assert [r["id"] for r in result.kept] == ["a", "b"]
    assert result.removed_by_id()["b2"]["details"]["partner_id"] == "a"


def test_bad_records_are_accounted_for_by_both_methods(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join([
        b'{"id": "a", "text": "some words here"}', b'{"id": "a", "text": "same id again"}', b'{"id": "b", "text": ',
        b'{"id": "c"}', b'{"id": "d", "text": "\xff"}', b'{"id": "e", "text": 1}', b'{"id": "f", "text": ""}',
        b'{"id": "g", "text": "Some words here"}']) + b"\n")
    for stage in (ExactDedup(), MinHashDedup()):
        result = run_dedup([path], tmp_path / stage.name, stage)
        reason = "exact_duplicate" if stage.name == "dedup-exact" else "near_duplicate"
        assert result.manifest["counts"] == {"in": 8, "kept": 2, "removed": 2, "rejected": 4, "unreadable_files": 0,
                                             "removed_by_reason": {"duplicate_id": 1, reason: 1}}
        assert sorted(r["id"] for r in result.kept) == ["a", "f"]
