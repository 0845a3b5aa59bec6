"""The offensive-content block: the shipped English and Chinese word lists, matched on normalized
text, remove documents with planted offensive passages (naming category and density) and leave
clean documents untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.records.document import Document
from tests.tools.score.accounting import assert_accounted
from tests.tools.score.corpora import qwen_data, stage_records, write_jsonl
from tools.score.labelled import docstrings, stdlib_sources
from tools.score.offensive import OffensiveContent, SHIPPED_LISTS, load_word_list

ENGLISH_PASSAGE = "Shut up, you f*cking idiot: this is BULLSHIT, a total piece of shit, motherfucker."
CHINESE_PASSAGE = "你他妈的傻逼，操你妈，滚开！"
CHINESE_CLEAN = ["今天天气很好，我们一起去公园散步，顺便看看湖边新开的花。",
                 "这个函数返回排好序的列表，性能在大多数情况下都足够好。",
                 "他逼迫自己每天早上六点起床，坚持跑步已经三年了。"]


def clean_english(count: int) -> list[str]:
    texts = []
    for source in stdlib_sources():
        texts += docstrings(source)
        if len(texts) >= count:
            return texts[:count]
    return texts


def documents() -> tuple[list[dict], set[str]]:
    records, planted = [], set()
    for number, text in enumerate(clean_english(200)):
        if number % 20 == 0:
            text = f"{text}\n\n{ENGLISH_PASSAGE.replace('f*cking', 'fucking')} {ENGLISH_PASSAGE.replace('f*cking', 'Fucking')}"
            planted.add(f"en-{number}")
        records.append({"id": f"en-{number}", "text": text, "language": "en"})
    for number in range(30):
        text = CHINESE_CLEAN[number % 3] * 2
        if number % 5 == 0:
            text += CHINESE_PASSAGE
            planted.add(f"zh-{number}")
        # No language field on half of them: the script decides which list applies.
        records.append({"id": f"zh-{number}", "text": text, **({"language": "zh"} if number % 2 else {})})
    return records, planted


def test_planted_passages_are_removed_and_clean_documents_kept_untouched(tmp_path):
    records, planted = documents()
    inputs = write_jsonl(tmp_path / "in.jsonl", records)
    done = qwen_data("score", "--input", str(inputs), "--output", str(tmp_path / "out"), "--offensive",
                     "--workers", "1", "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = assert_accounted(tmp_path / "out", len(records))
    assert manifest["counts"]["removed_by_reason"] == {"offensive": len(planted)}
    removed = stage_records(tmp_path / "out", "removed")
    assert {r["id"] for r in removed} == planted
    for record in removed:
        details = record["details"]
        assert details["category"] == "profanity" and details["value"] > details["limit"] == 0.01
        assert details["language"] == record["id"][:2]
    originals = {r["id"]: r for r in records}
    kept = stage_records(tmp_path / "out", "kept")
    assert len(kept) == len(records) - len(planted)
    for record in kept:
        assert record["text"] == originals[record["id"]]["text"]
        assert record["scores"]["offensive"] <= 0.01


def test_words_match_whole_words_of_normalized_text_only():
    block = OffensiveContent()
    measure = lambda text, language="en": block.measure(Document("d", text, {"language": language}))
    assert measure("ＦＵＣＫ this").details["matches"] == 1  # full-width letters fold by NFKC
    assert measure("Scunthorpe and cocktail and assholes").details["matches"] == 0  # no word inside a word
    assert measure("what a piece of shit").value == pytest.approx(3 / 5)  # the longest term: 3 of 5 words
    assert measure("这个性能很好", "zh").value == 0.0  # 性 alone is not listed: it is part of everyday words


def test_the_density_limit_is_per_language(tmp_path):
    text = "the weather today is fine and the bullshit forecast was wrong again"  # 1 word in 12
    strict, lenient = OffensiveContent(max_density=(("en", 0.05),)), OffensiveContent(max_density=(("en", 0.1),))
    assert strict.decide(Document("d", text, {"language": "en"})).reason == "offensive"
    assert lenient.decide(Document("d", text, {"language": "en"})) is None
    assert strict.decide(Document("d", text, {"language": "de"})) is None  # no list, no limit for German


def test_every_shipped_list_parses_and_names_its_source_and_licence():
    assert {language for language, _ in SHIPPED_LISTS} == {"en", "zh"}
    for language, path in SHIPPED_LISTS:
        words = load_word_list(path, language)
        assert len(words.categories) >= 50
        assert set(words.categories.values()) <= {"profanity", "sexual", "sexual_violence", "slur"}
        header = Path(path).read_text(encoding="utf-8")[:1000]
        assert "LDNOOBW" in header and "CC BY 4.0" in header


def test_a_malformed_word_list_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "words.tsv").write_text("profanity\tdarn\nno tab on this line\n", encoding="utf-8")
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "darn"}])
    done = qwen_data("score", "--input", str(inputs), "--output", str(tmp_path / "out"), "--offensive",
                     "--offensive-words", f"en={tmp_path / 'words.tsv'}")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "words.tsv:2" in done.stderr
