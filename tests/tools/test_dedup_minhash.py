"""MinHash/LSH dedup: signatures, near copies (also Chinese), short documents, verification,
quality on the labelled set, and resume after a kill (several machines: test_executor.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from tools.dedup.clusters import keep_decisions
from tools.dedup.labelled import build_labelled_set, evaluate
from tools.dedup.labelled_real import build_real_text_set
from tools.dedup.lsh import Banding, candidate_probability
from tools.dedup.minhash import MinHashDedup, MinHashSettings
from tools.dedup.shingles import Signer, shingle_hashes
from tools.stage.output import StageOutput

from tests.tools.test_dedup_exact import run_dedup, write

QWEN_DATA = str(Path(sys.executable).parent / "qwen-data")
REPO = Path(__file__).resolve().parents[2]


def dedup(inputs, out: Path, stage: MinHashDedup = MinHashDedup(), workers: int = 1) -> StageOutput:
    return run_dedup(inputs, out, stage, workers)


def edited(words: list[str], rate: float, rng: random.Random) -> str:
    return " ".join(w if rng.random() >= rate else f"edit{rng.randrange(10**6)}" for w in words)


def test_signatures_equal_datasketch_updated_one_shingle_at_a_time():
    text = "the quick brown fox jumps over the lazy dog " * 40
    signer = Signer(num_perm=64, seed=3)
    reference = MinHash(num_perm=64, seed=3, hashfunc=int, scheme="affine32")
    for value in shingle_hashes(text, 5, 5):
        reference.update(int(value))
    assert np.array_equal(signer.minhash(text).hashvalues, reference.hashvalues)


def test_bands_and_rows_meet_the_target_recall_at_the_threshold():
    banding = Banding.choose(128, threshold=0.8, target_recall=0.95)
    assert banding.bands * banding.rows <= 128
    assert candidate_probability(0.8, banding.bands, banding.rows) >= 0.95
    assert candidate_probability(0.5, banding.bands, banding.rows) < 0.15
    assert "P(candidate)" in banding.curve()


def test_near_copies_are_removed_naming_their_kept_partner_and_similarity(tmp_path):
    rng = random.Random(0)
    base = [" ".join(f"w{rng.randrange(5000)}" for _ in range(400)).split() for _ in range(20)]
    records = [{"id": f"orig{i}", "text": " ".join(words)} for i, words in enumerate(base)]
    records += [{"id": f"copy{i}", "text": edited(words, 0.005, rng)} for i, words in enumerate(base[:10])]
    result = dedup([write(tmp_path / "in.jsonl", records)], tmp_path / "out")
    removed = result.removed_by_id()
    assert sorted(removed) == sorted(f"copy{i}" for i in range(10))
    for i in range(10):
        details = removed[f"copy{i}"]["details"]
        assert details["partner_id"] == f"orig{i}" and details["similarity"] >= 0.8
    assert result.manifest["minhash"]["library"] == "datasketch" and result.manifest["minhash"]["version"]


def test_chinese_near_copies_are_found(tmp_path):
    rng = random.Random(1)
    common = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"  # noqa: E501
    texts = ["".join(rng.choice(common) for _ in range(600)) for _ in range(6)]
    copy = list(texts[0])
    for position in rng.sample(range(len(copy)), 4):
        copy[position] = rng.choice(common)
    records = [{"id": f"zh{i}", "text": t} for i, t in enumerate(texts)] + [{"id": "zh0-copy", "text": "".join(copy)}]
    result = dedup([write(tmp_path / "zh.jsonl", records)], tmp_path / "out")
    assert list(result.removed_by_id()) == ["zh0-copy"]
    assert result.removed_by_id()["zh0-copy"]["details"]["partner_id"] == "zh0"


def test_documents_shorter_than_the_shingle_size_do_not_collide(tmp_path):
    records = [{"id": f"s{i}", "text": text} for i, text in
               enumerate(["hello", "hello world", "good morning", "a b c", "x", "", "   ", "one two three four"])]
    records.append({"id": "again", "text": "Hello world"})  # an exact copy of a short document is a duplicate
    result = dedup([write(tmp_path / "short.jsonl", records)], tmp_path / "out")
    assert list(result.removed_by_id()) == ["again"]
    assert result.removed_by_id()["again"]["details"]["partner_id"] == "s1"


@pytest.mark.slow
def test_a_50_mb_document_is_indexed_and_kept(tmp_path):
    big = "word " * (10 * 1024 * 1024)
    records = [{"id": "big", "text": big}, {"id": "small", "text": "tiny"}, {"id": "small-copy", "text": "Tiny"}]
    result = dedup([write(tmp_path / "big.jsonl", records)], tmp_path / "out")
    assert sorted(r["id"] for r in result.kept) == ["big", "small"]
    assert result.manifest["indexed_documents"] == 3


def test_a_chain_of_verified_pairs_never_removes_a_document_unlike_its_partner():
    # a~b and b~c verified, a and c not similar: b goes (partner a), c stays (its only
    # similar neighbour b was removed), so no removed document lacks a similar kept partner.
    left, right, similarity = np.array([0, 1]), np.array([1, 2]), np.array([0.85, 0.86])
    assert keep_decisions(left, right, similarity, priority=np.array([0, 1, 2])) == {1: (0, 0.85)}


def test_labelled_set_quality_at_threshold_0_8(tmp_path):
    labelled = build_labelled_set(originals=300, seed=7)
    path = tmp_path / "set.jsonl"
    labelled.write(path)
    result = dedup([path], tmp_path / "out", MinHashDedup(MinHashSettings(threshold=0.8)))
    quality = evaluate(labelled, {r["id"]: r["details"]["partner_id"] for r in result.removed}, 0.8)
    assert quality.should_remove > 50
    assert quality.recall >= 0.98 and quality.precision >= 0.99, quality


def test_real_text_set_with_edits_quality_at_threshold_0_8(tmp_path):
    """The harder set: prose with moved paragraphs, boilerplate, partial copies; many pairs near 0.8."""
    labelled = build_real_text_set(originals=140, seed=3)
    near = [j for _, _, j in labelled.pairs if 0.7 <= j < 0.9]
    assert len(near) > 60  # the set is hard where it matters
    path = tmp_path / "set.jsonl"
    labelled.write(path)
    result = dedup([path], tmp_path / "out")
    quality = evaluate(labelled, {r["id"]: r["details"]["partner_id"] for r in result.removed}, 0.8)
    assert quality.should_remove > 50
    assert quality.recall >= 0.98 and quality.precision >= 0.99, quality


def test_candidates_are_verified_by_the_exact_jaccard_of_their_shingle_sets(tmp_path):
    rng = random.Random(4)
    base = [f"w{rng.randrange(10**6)}" for _ in range(400)]
    records = [{"id": "original", "text": " ".join(base)}]
    for rate in (0.02, 0.03, 0.04, 0.05):  # exact Jaccard from about 0.9 down to about 0.75
        records.append({"id": f"copy-{rate}", "text": edited(base, rate, rng)})
    result = dedup([write(tmp_path / "in.jsonl", records)], tmp_path / "out")
    signer = MinHashDedup().signer
    original = set(signer.shingle_set(records[0]["text"]).tolist())
    exact = {r["id"]: len(original & set(signer.shingle_set(r["text"]).tolist())) /
             len(original | set(signer.shingle_set(r["text"]).tolist())) for r in records[1:]}
    removed = result.removed_by_id()
    assert any(j < 0.8 for j in exact.values()) and any(j >= 0.8 for j in exact.values())
    for doc_id, similarity in exact.items():
        if similarity >= 0.8:
            assert removed[doc_id]["details"]["similarity"] == round(similarity, 4)
        else:
            assert doc_id not in removed or removed[doc_id]["details"]["partner_id"] != "original"


def corpus(directory: Path, shards: int, originals_per_shard: int) -> Path:
    labelled = build_labelled_set(originals=shards * originals_per_shard, seed=3)
    for shard in range(shards):
        write(directory / f"part{shard}.jsonl", labelled.documents[shard::shards])
    return directory


def cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([QWEN_DATA, "dedup", "--method", "minhash", "--no-progress", *args], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_a_killed_run_resumes_without_redoing_finished_shards(tmp_path):
    data = corpus(tmp_path / "in", shards=8, originals_per_shard=60)
    reference = dedup([data], tmp_path / "reference", workers=1)
    out = tmp_path / "out"
    markers = out / ".markers" / "index"
    run = cli("--input", str(data), "--output", str(out), "--workers", "1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(markers.glob("*.json")) if markers.exists() else []) < 2:
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in markers.glob("*.json")}
    assert 2 <= len(finished) < 8, "the run must be killed midway"
    assert not (out / "manifest.json").exists()
    rerun = cli("--input", str(data), "--output", str(out), "--workers", "2")
    assert rerun.wait(timeout=120) == 0
    assert f"{len(finished)} of 8 shards finished earlier" in rerun.stderr.read().decode()
    assert {name: (markers / name).stat().st_mtime_ns for name in finished} == finished
    resumed = StageOutput.load(out)
    assert resumed.kept == reference.kept and resumed.removed == reference.removed
    assert resumed.manifest["counts"] == reference.manifest["counts"]
