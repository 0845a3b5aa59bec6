"""The quality classifier: trained with a held-out split on a labelled set built from the standard
library, it separates prose and code from boilerplate, keyword spam, shuffled and garbled text;
``qwen-data score --classifier`` reproduces the held-out figures and filters by threshold or top
fraction; a classifier file it cannot read is one error line."""

from __future__ import annotations

import json

import pytest

from tests.tools.score.accounting import assert_accounted
from tests.tools.score.corpora import qwen_data, read_jsonl, stage_records, write_jsonl
from tools.score.labelled import labelled_set
from tools.score.training import held_out_path, metrics_path

PER_CLASS = 1500
SMALL_MODEL = ("--dim", "32", "--buckets", "100000", "--held-out", "0.2", "--seed", "3")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("classifier")
    positive, negative = labelled_set(PER_CLASS)
    write_jsonl(directory / "positive.jsonl", [{"id": f"pos-{i}", "text": t} for i, t in enumerate(positive)])
    write_jsonl(directory / "negative.jsonl", [{"id": f"neg-{i}", "text": t} for i, t in enumerate(negative)])
    model = directory / "quality.bin"
    done = qwen_data("train-classifier", "--positive", str(directory / "positive.jsonl"),
                     "--negative", str(directory / "negative.jsonl"), "--output", str(model), *SMALL_MODEL)
    assert done.returncode == 0, done.stderr[-2000:]
    return model, done.stdout


def test_training_reaches_f1_09_on_the_held_out_split_and_writes_it_next_to_the_model(trained):
    model, stdout = trained
    report = json.loads(metrics_path(model).read_text(encoding="utf-8"))
    figures = report["held_out"]
    assert figures["f1"] >= 0.9, figures
    assert f"F1 {figures['f1']:.4f}" in stdout and f"precision {figures['precision']:.4f}" in stdout
    held_out = read_jsonl(held_out_path(model))
    assert report["documents"]["held_out"] == len(held_out) == round(0.2 * PER_CLASS) * 2
    assert {r["label"] for r in held_out} == {"positive", "negative"}


def test_score_reproduces_the_held_out_figures(trained, tmp_path):
    model, _ = trained
    done = qwen_data("score", "--input", str(held_out_path(model)), "--output", str(tmp_path / "out"),
                     "--classifier", str(model), "--min-quality", "0.5", "--workers", "2", "--split-bytes", "100000",
                     "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    held_out = read_jsonl(held_out_path(model))
    assert_accounted(tmp_path / "out", len(held_out))
    kept = stage_records(tmp_path / "out", "kept")
    true_positives = sum(r["label"] == "positive" for r in kept)
    positives = sum(r["label"] == "positive" for r in held_out)
    precision, recall = true_positives / len(kept), true_positives / positives
    figures = json.loads(metrics_path(model).read_text(encoding="utf-8"))["held_out"]
    assert (round(precision, 6), round(recall, 6)) == (figures["precision"], figures["recall"])
    assert all(r["scores"]["quality"] >= 0.5 for r in kept)
    for record in stage_records(tmp_path / "out", "removed"):
        assert record["reason"] == "quality" and record["details"]["value"] < record["details"]["limit"] == 0.5


def test_a_top_fraction_keeps_the_highest_scored_share_of_the_corpus(trained, tmp_path):
    model, _ = trained
    done = qwen_data("score", "--input", str(held_out_path(model)), "--output", str(tmp_path / "out"),
                     "--classifier", str(model), "--top-fraction", "0.25", "--workers", "1", "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    held_out = read_jsonl(held_out_path(model))
    manifest = assert_accounted(tmp_path / "out", len(held_out))
    kept, removed = stage_records(tmp_path / "out", "kept"), stage_records(tmp_path / "out", "removed")
    limit = manifest["figures"]["quality"]["*"]["limit"]
    assert len(kept) >= 0.25 * len(held_out) and min(r["scores"]["quality"] for r in kept) >= limit
    assert max(r["details"]["value"] for r in removed) < limit


@pytest.mark.parametrize("content", [b"", b"not a fastText model\n", bytes(range(256)) * 64])
def test_an_unreadable_classifier_file_is_one_line_and_exit_2(content, tmp_path):
    (tmp_path / "model.bin").write_bytes(content)
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "some text"}])
    done = qwen_data("score", "--input", str(inputs), "--output", str(tmp_path / "out"),
                     "--classifier", str(tmp_path / "model.bin"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "model.bin" in done.stderr
    assert not (tmp_path / "out" / "kept").exists()


def test_a_missing_classifier_file_is_one_line_and_exit_2(tmp_path):
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "some text"}])
    done = qwen_data("score", "--input", str(inputs), "--output", str(tmp_path / "out"),
                     "--classifier", str(tmp_path / "absent.bin"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "absent.bin" in done.stderr


def test_training_on_an_unreadable_record_is_one_line_naming_it(tmp_path):
    (tmp_path / "positive.jsonl").write_text('{"text": "fine"}\n{"text": "fine too"}\n{"text": 3}\n')
    negative = write_jsonl(tmp_path / "negative.jsonl", [{"text": "spam"}, {"text": "more spam"}])
    done = qwen_data("train-classifier", "--positive", str(tmp_path / "positive.jsonl"), "--negative",
                     str(negative), "--output", str(tmp_path / "model.bin"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "positive.jsonl:3" in done.stderr
    assert not (tmp_path / "model.bin").exists()


def test_as_a_block_in_a_list_it_records_the_probability_and_applies_its_threshold(trained):
    from tools.score.classifier import QualityClassifier
    from foundation.records.document import Document

    model, _ = trained
    held_out = read_jsonl(held_out_path(model))[:40]
    docs = [Document(r["id"], r["text"]) for r in held_out]
    decisions = QualityClassifier(str(model), min_probability=0.5).decide_batch(docs)
    for doc, decision in zip(docs, decisions):
        probability = doc.fields["scores"]["quality"]
        assert 0 <= probability <= 1
        assert (decision is None) == (probability >= 0.5)
        if decision is not None:
            assert decision.details == {"value": probability, "limit": 0.5}
    with pytest.raises(ValueError, match="qwen-data score"):
        QualityClassifier(str(model), top_fraction=0.1).decide(docs[0])  # a top fraction needs the corpus


def test_reuse_scores_rethresholds_a_scored_corpus_without_scoring_again(trained, tmp_path):
    model, _ = trained
    done = qwen_data("score", "--input", str(held_out_path(model)), "--output", str(tmp_path / "first"),
                     "--classifier", str(model), "--workers", "1", "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    scored = stage_records(tmp_path / "first", "kept")
    # An earlier score that the model would not give: the second run must take it as recorded.
    scored[0]["scores"]["quality"] = 0.999999 if scored[0]["scores"]["quality"] < 0.5 else 0.000001
    inputs = write_jsonl(tmp_path / "scored.jsonl", scored)
    done = qwen_data("score", "--input", str(inputs), "--output", str(tmp_path / "second"), "--classifier", str(model),
                     "--min-quality", "0.5", "--reuse-scores", "--workers", "1", "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    assert_accounted(tmp_path / "second", len(scored))
    kept = {r["id"]: r["scores"]["quality"] for r in stage_records(tmp_path / "second", "kept")}
    removed = {r["id"]: r["details"] for r in stage_records(tmp_path / "second", "removed")}
    for record in scored:
        value = record["scores"]["quality"]
        if value >= 0.5:
            assert kept[record["id"]] == value
        else:
            assert removed[record["id"]] == {"value": value, "limit": 0.5, "recorded": True}
