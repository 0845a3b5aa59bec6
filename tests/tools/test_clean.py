"""qwen-data clean: HTML extraction, normalization, language id, labelled quality removals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydoc_data.topics

from tools.blocks.language import Language
from tools.clean.stage import CleanSettings, clean_stage
from tools.clean.text import normalize
from tools.stage import StageConfig, run_document_stage
from tools.stage.output import StageOutput

QWEN_DATA = str(Path(sys.executable).parent / "qwen-data")
ENGLISH = pydoc_data.topics.topics["if"] + "\nThat is the whole story of the statement, and it is to be read with care."
CHINESE = ("北京是一座历史悠久的城市，有很多名胜古迹，每年吸引大量的游客前来参观。长城是中国古代的伟大建筑之一，"
           "全长超过两万公里。故宫位于北京市中心，是明清两代的皇家宫殿，现在是一座博物馆。\n"
           "上海是中国最大的经济中心，黄浦江穿过市区，外滩的建筑群展示了这座城市的历史和现代的风貌。")
HTML = ("<html><head><title>t</title><script>var tracking = 1;</script></head><body>"
        "<nav>Home | About | Contact</nav><article><p>" + ENGLISH.replace("\n", " ") + "</p></article>"
        "<footer>Copyright footer text</footer></body></html>")


def clean(records: list[dict], tmp_path: Path, settings: CleanSettings = CleanSettings()) -> StageOutput:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    run_document_stage(clean_stage(settings), StageConfig((str(path),), tmp_path / "out", workers=1, progress=False))
    result = StageOutput.load(tmp_path / "out")
    counts = result.manifest["counts"]
    assert counts["in"] == counts["kept"] + counts["removed"] + counts["rejected"] == len(records)
    return result


def test_html_is_reduced_to_its_main_text_and_the_language_is_recorded(tmp_path):
    result = clean([{"id": "page", "text": HTML, "url": "http://example.com"}], tmp_path)
    [page] = result.kept
    assert 'The "if" statement is used for conditional execution' in page["text"]
    assert "tracking" not in page["text"] and "<p>" not in page["text"] and "Home | About" not in page["text"]
    assert page["language"] == "en" and page["language_score"] > 0.9 and page["url"] == "http://example.com"
    assert result.manifest["versions"]["resiliparse"] != "not installed"


def test_unicode_is_normalized_and_control_characters_dropped():
    assert normalize("cafe\u0301\x07  \r\nnext\n\n\n\nend", "NFC") == "caf\u00e9\nnext\n\nend"
    assert normalize("\uff21\uff22", "NFKC") == "AB"


def test_languages_outside_the_allowed_list_are_removed_with_the_detected_language(tmp_path):
    german = "Der schnelle braune Fuchs springt über den faulen Hund und läuft dann in den Wald zurück. " * 8
    result = clean([{"id": "en", "text": ENGLISH}, {"id": "de", "text": german}, {"id": "zh", "text": CHINESE}],
                   tmp_path, CleanSettings(language=Language(languages=("en", "zh"))))
    assert sorted(r["id"] for r in result.kept) == ["en", "zh"]
    removal = result.removed_by_id()["de"]
    assert removal["reason"] == "language" and removal["details"]["language"] == "de"


def test_every_quality_removal_names_the_rule_that_fired(tmp_path):
    records = [
        {"id": "short", "text": "Too short to be a document, and that is all."},
        {"id": "lorem", "text": "Lorem ipsum dolor sit amet. " + ENGLISH},
        {"id": "lines", "text": "\n".join(["This line is repeated over and over, and that is the problem."] * 8 + [ENGLISH])},
        {"id": "symbols", "text": ENGLISH + " #tag" * 120},
        {"id": "good", "text": ENGLISH},
    ]
    removed = clean(records, tmp_path).removed_by_id()
    assert {doc: r["reason"] for doc, r in removed.items()} == {
        "short": "min_words", "lorem": "lorem_ipsum", "lines": "max_duplicate_lines", "symbols": "max_symbol_ratio"}
    assert removed["short"]["details"] == {"value": 10.0, "limit": 50, "language": "en"}


def test_chinese_text_is_not_judged_by_word_rules(tmp_path):
    assert [r["id"] for r in clean([{"id": "zh", "text": CHINESE}], tmp_path).kept] == ["zh"]


def test_thresholds_are_command_line_flags(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": "short", "text": "Too short to be a document, and that is all."}) + "\n")
    for flags, kept in (([], 0), (["--min-words", "5"], 1)):
        out = tmp_path / f"out{len(flags)}"
        subprocess.run([QWEN_DATA, "clean", "--input", str(path), "--output", str(out), "--no-progress", *flags],
                       check=True, capture_output=True)
        assert json.loads((out / "manifest.json").read_text())["counts"]["kept"] == kept
