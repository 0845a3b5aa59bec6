"""qwen-data review: a seeded sample of a stage's kept and removed documents, as one page a
person reads and filters in a browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pydoc_data.topics
import pytest

from tests.support.browser import ensure_chromium, open_page
from tools.blocks.language import Language
from tools.clean.stage import CleanSettings, clean_stage
from tools.review.sample import KEPT, sample_stages
from tools.stage import StageConfig, run_document_stage

QWEN_DATA = str(Path(sys.executable).parent / "qwen-data")
TOPICS = sorted(pydoc_data.topics.topics)
GERMAN = "Der schnelle braune Fuchs springt über den faulen Hund und läuft dann in den Wald zurück. " * 8


def _corpus(name: str, first_topic: int, prose: int, short: int, german: int) -> list[dict]:
    """English prose (mostly kept, with a score a scoring block would have written), short notes
    (min_words) and German (language); ids are unique across files."""
    records = [{"id": f"{name}-prose-{i}", "text": pydoc_data.topics.topics[TOPICS[first_topic + i]],
                "scores": {"quality": round(i / prose, 3)}} for i in range(prose)]
    records += [{"id": f"{name}-short-{i}", "text": f"Note {i}: too short to keep.",
                 "scores": {"quality": 0.05}} for i in range(short)]
    records += [{"id": f"{name}-german-{i}", "text": f"{i}. {GERMAN}"} for i in range(german)]
    return records


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory) -> Path:
    """A real clean run over two sources: web (5 short, 4 German) and books (2 short, 1 German)."""
    root = tmp_path_factory.mktemp("review")
    inputs = []
    for name, corpus in (("web", _corpus("web", 0, 10, 5, 4)), ("books", _corpus("books", 20, 8, 2, 1))):
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in corpus), encoding="utf-8")
        inputs.append(str(path))
    run_document_stage(clean_stage(CleanSettings(language=Language(languages=("en",)))),
                       StageConfig(tuple(inputs), root / "clean", workers=1, progress=False))
    return root / "clean"


def _review(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([QWEN_DATA, "review", *args], capture_output=True, text=True, timeout=120)


def _removed_ids(stage_output: Path) -> dict[tuple[str, str], set[str]]:
    """(source, reason) -> the ids of the removed records themselves."""
    ids: dict[tuple[str, str], set[str]] = {}
    for path in (stage_output / "removed").glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            ids.setdefault((path.stem.split("-")[0], record["reason"]), set()).add(record["id"])
    return ids


def test_each_group_holds_n_documents_or_all_of_its_documents(cleaned):
    manifest = json.loads((cleaned / "manifest.json").read_text())
    sample = sample_stages([cleaned], per_group=3, seed=0)
    assert {g.source for g in sample.counts} == {"web", "books"}
    assert sum(sample.counts.values()) == manifest["counts"]["kept"] + manifest["counts"]["removed"]
    sampled = Counter(doc.group for doc in sample.documents)
    assert sampled == {group: min(3, count) for group, count in sample.counts.items()}
    by_reason = Counter()
    for group, count in sample.counts.items():
        if group.reason != KEPT:
            by_reason[group.reason] += count
    assert by_reason == manifest["counts"]["removed_by_reason"]
    removed_ids = _removed_ids(cleaned)
    for doc in sample.documents:
        if doc.group.reason != KEPT:
            assert doc.id in removed_ids[doc.group.source, doc.group.reason]
    web_short = [g for g in sample.counts if (g.source, g.reason) == ("web", "min_words")]
    assert [sample.counts[g] for g in web_short] == [len(removed_ids["web", "min_words"])]
    assert sampled[web_short[0]] == 3


def test_a_removed_document_shows_its_text_read_back_and_the_value_against_the_limit(cleaned):
    sample = sample_stages([cleaned], per_group=50, seed=0)
    german = [doc for doc in sample.documents if doc.group.reason == "language"]
    assert len(german) == 5 and all(GERMAN in doc.text for doc in german)
    short = next(doc for doc in sample.documents if doc.id == "web-short-2")
    assert short.text == "Note 2: too short to keep." and short.scores == {"quality": 0.05}
    assert short.details["limit"] == 50 and short.details["value"] == 6
    assert short.location.endswith("web.jsonl:13")


def test_the_same_seed_gives_the_same_page_byte_for_byte_and_another_seed_another_sample(cleaned, tmp_path):
    pages = []
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        result = _review(str(cleaned), "--output", str(tmp_path / f"{name}.html"), "--per-group", "2", "--seed", seed)
        assert result.returncode == 0, result.stderr
        pages.append((tmp_path / f"{name}.html").read_bytes())
    assert pages[0] == pages[1]
    ids = [set(re.findall(rb'id <code>([^<]+)</code>', page)) for page in pages]
    assert len(ids[0]) == len(ids[2]) and ids[0] != ids[2]
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary name


def test_a_moved_input_leaves_a_note_instead_of_the_text(cleaned, tmp_path):
    stage = tmp_path / "clean"
    stage.mkdir()
    for name in ("manifest.json", "kept", "removed"):
        (shutil.copytree if (cleaned / name).is_dir() else shutil.copy)(cleaned / name, stage / name)
    for path in (stage / "removed").glob("*.jsonl"):
        path.write_text(path.read_text().replace(str(cleaned.parent), str(tmp_path / "gone")))
    result = _review(str(stage), "--output", str(tmp_path / "page.html"))
    assert result.returncode == 0 and "No such file or directory" in result.stderr
    assert f"text not available: {tmp_path / 'gone' / 'web.jsonl'}: unreadable: No such file or directory" \
        in (tmp_path / "page.html").read_text()


def test_in_a_pipeline_the_source_is_the_pipeline_source_of_the_shard(cleaned, tmp_path):
    stage = tmp_path / "run" / "clean"
    shutil.copytree(cleaned, stage)
    [web_shard] = [p for p in (stage / "kept").glob("web-*.jsonl")]
    (tmp_path / "run" / ".pipeline").mkdir()
    (tmp_path / "run" / ".pipeline" / "clean.json").write_text(json.dumps(
        {"outputs": [{"path": str(web_shard), "source": "crawl"}]}))
    sample = sample_stages([stage], per_group=1, seed=0)
    assert {g.source for g in sample.counts} == {"crawl", "books"}
    assert sum(n for g, n in sample.counts.items() if g.source == "crawl") == 19  # all of web.jsonl
    both = sample_stages([cleaned, stage], per_group=100, seed=0)  # the same input lines removed twice
    assert len(both.documents) == 60 and all(doc.text for doc in both.documents)


@pytest.mark.parametrize("problem", ["not a stage output", "malformed manifest", "malformed record"])
def test_bad_input_is_one_line_naming_the_path_and_exit_2(cleaned, tmp_path, problem):
    stage = tmp_path / "stage"
    (stage / "removed").mkdir(parents=True)
    if problem == "malformed manifest":
        (stage / "manifest.json").write_text('{"stage": "clean", "counts": ')
    elif problem == "malformed record":
        (stage / "manifest.json").write_text((cleaned / "manifest.json").read_text())
        (stage / "removed" / "web-00000000.jsonl").write_text('{"id": "x", "reason": "min_words"}\n')
    result = _review(str(stage), "--output", str(tmp_path / "page.html"))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    named = {"not a stage output": str(stage), "malformed manifest": str(stage / "manifest.json"),
             "malformed record": f"{stage / 'removed' / 'web-00000000.jsonl'}:1"}[problem]
    assert named in result.stderr and problem in result.stderr
    assert not (tmp_path / "page.html").exists()


def _select(name: str, value: str) -> str:
    return (f"(() => {{ const s = document.getElementById('{name}'); s.value = '{value}'; "
            "s.dispatchEvent(new Event('change')); "
            "return Number(document.getElementById('visible-count').textContent); })()")


VISIBLE = "[...document.querySelectorAll('article.doc')].filter(d => !d.hidden).length"


def test_filtering_the_page_in_chromium_shows_the_counts_of_the_manifest(cleaned, tmp_path):
    chromium = ensure_chromium()
    if chromium is None:
        pytest.skip("no Chromium: install Debian's chromium package (.ci/run does)")
    manifest = json.loads((cleaned / "manifest.json").read_text())
    removed_ids = _removed_ids(cleaned)
    for per_group in (100, 3):
        page = tmp_path / f"review-{per_group}.html"
        assert _review(str(cleaned), "--output", str(page), "--per-group", str(per_group)).returncode == 0
        scripts = []
        for reason in manifest["counts"]["removed_by_reason"]:
            scripts += [_select("reason", reason), VISIBLE]
        scripts += [_select("reason", ""), _select("source", "books"), _select("source", ""),
                    _select("score", "quality"),
                    "(() => { const s = document.getElementById('score-min'); s.value = '0.5'; "
                    "s.dispatchEvent(new Event('input')); "
                    "return Number(document.getElementById('visible-count').textContent); })()", VISIBLE]
        result = open_page(chromium, page, tmp_path / f"profile-{per_group}", scripts)
        assert result.errors == []
        assert [image for image in result.images if not image["decoded"]] == []
        values = iter(result.values)
        for reason, count in manifest["counts"]["removed_by_reason"].items():
            expected = count if per_group == 100 else sum(min(per_group, len(ids))
                                                                  for (_, r), ids in removed_ids.items() if r == reason)
            shown, visible = next(values), next(values)
            assert shown == visible == expected, reason
        everything, books, _, _ = (next(values) for _ in range(4))
        sample = sample_stages([cleaned], per_group, seed=0)
        assert everything == len(sample.documents)
        assert books == sum(1 for doc in sample.documents if doc.group.source == "books")
        high_quality = sum(1 for doc in sample.documents if doc.scores.get("quality", -1) >= 0.5)
        assert next(values) == next(values) == high_quality > 0
