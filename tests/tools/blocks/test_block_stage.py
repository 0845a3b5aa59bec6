"""A stage of blocks: documents go through the blocks in order in batches, the first block that
drops a document decides (later blocks never see it), scores written by blocks land in the kept
documents' "scores", and a later stage can re-threshold them without scoring again."""

from __future__ import annotations

from tests.tools.blocks.custom import BatchRecorder, LengthScore
from tests.tools.blocks.helpers import document, run_blocks
from tools.blocks.score_threshold import ScoreThreshold
from tools.blocks.stage import BlockStage
from tools.stage import filter as write_phase


def test_the_first_block_that_drops_decides_and_later_blocks_see_only_the_rest():
    later = BatchRecorder("short")
    stage = BlockStage("s", (LengthScore(min_chars=10), BatchRecorder("drop"), later))
    docs = [document("tiny"), document("please drop this one"), document("a short one here"), document("kept as is")]
    decisions = stage.decide_batch(docs)
    assert [d and d.reason for d in decisions] == ["too_short", "has_word", "has_word", None]
    assert decisions[2].details == {"word": "short"}
    assert later.batches == [2]  # only the documents the first two blocks kept


def test_params_and_libraries_list_every_block_in_order():
    stage = BlockStage("s", (LengthScore(5), ScoreThreshold("length", max=9)))
    assert stage.params() == {"blocks": [{"block": "length_score", "min_chars": 5},
                                         {"block": "score_threshold", "score": "length", "min": None, "max": 9}]}


def test_the_write_phase_asks_about_documents_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(write_phase, "BATCH_DOCUMENTS", 4)
    records = [{"id": str(n), "text": "drop" if n % 3 == 0 else f"keep {n}"} for n in range(10)]
    records.insert(5, {"id": "1", "text": "a repeated id is removed before any block sees it"})
    result = run_blocks([BatchRecorder()], records, tmp_path)
    # batches of 4 documents read: 0-3; 4, the repeated id (not asked about), 5, 6; 7-9
    assert [(r["id"], r["batch_size"]) for r in result.kept] == [
        ("1", 4), ("2", 4), ("4", 3), ("5", 3), ("7", 3), ("8", 3)]
    assert [(r["id"], r["reason"]) for r in result.removed] == [
        ("0", "has_word"), ("3", "has_word"), ("1", "duplicate_id"), ("6", "has_word"), ("9", "has_word")]


def test_scores_land_in_kept_documents_and_a_later_stage_rethresholds_them(tmp_path):
    records = [{"id": "a", "text": "x" * 5}, {"id": "b", "text": "y" * 50, "scores": {"other": 1}},
               {"id": "c", "text": "z" * 500}, {"id": "bad", "text": 7}]
    scored = run_blocks([LengthScore()], records, tmp_path / "first")
    assert {r["id"]: r["scores"] for r in scored.kept} == {"a": {"length": 5}, "b": {"other": 1, "length": 50},
                                                           "c": {"length": 500}}
    assert len(scored.rejected) == 1
    again = run_blocks([ScoreThreshold("length", min=10, max=100)], scored.kept, tmp_path / "second")
    assert [r["id"] for r in again.kept] == ["b"]
    assert {r["id"]: (r["reason"], r["details"]["value"]) for r in again.removed} == {
        "a": ("score_below_min", 5), "c": ("score_above_max", 500)}
