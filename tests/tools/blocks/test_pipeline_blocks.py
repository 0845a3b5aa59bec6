"""Blocks in the pipeline YAML: ``clean`` and ``filter`` take a list of blocks, each named or
given as ``module:Class`` (a user's own block) with its settings; a bad name, import path or
setting is one line naming the file and the key, exit status 2."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.tools.blocks.custom import LengthScore
from tests.tools.blocks.helpers import ENGLISH
from tools.blocks.c4 import C4
from tools.blocks.gopher_quality import GopherQuality
from tools.blocks.language import Language
from tools.blocks.score_threshold import ScoreThreshold
from tools.blocks.text import Text
from tools.clean.stage import CleanSettings, clean_stage
from tools.pipeline.config import PipelineConfigError, load_pipeline_config
from tools.stage import StageConfig, run_document_stage
from tools.stage.output import StageOutput

ROOT = Path(__file__).resolve().parents[3]

CUSTOM = "tests.tools.blocks.custom:LengthScore"
EXAMPLES = ROOT / "examples" / "data"


def config_file(tmp_path: Path, stages: dict) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"output": str(tmp_path / "run"), "sources": [{"name": "a", "inputs": ["a.jsonl"]}],
                                    "stages": {**stages, "tokenize": {}}}))
    return path


def test_a_list_of_blocks_with_settings_becomes_the_stage_in_that_order(tmp_path):
    config = load_pipeline_config(config_file(tmp_path, {"clean": {"blocks": [
        {"block": "text", "html": "never"}, {"block": "language", "languages": ["en"]},
        {"block": "gopher_quality", "min_words": 5}, {"block": "c4"}, {"block": CUSTOM, "min_chars": 10}]}}))
    stage = config.stages["clean"]
    assert stage.name == "clean"
    assert stage.blocks == (Text(html="never"), Language(languages=("en",)), GopherQuality(min_words=5), C4(),
                            LengthScore(min_chars=10))


def test_the_clean_options_and_the_example_block_list_make_the_blocks_of_the_command_line():
    settings = CleanSettings(language=Language(languages=("en",)))
    for example in ("pipeline.yaml", "pipeline-blocks.yaml"):
        config = load_pipeline_config(EXAMPLES / example)
        assert config.stages["clean"] == clean_stage(settings)
    assert [block.name for block in config.stages["clean"].blocks] == [
        "text", "language", "gopher_quality", "c4", "fineweb", "gopher_repetition"]


def test_a_user_block_scores_and_a_filter_stage_rethresholds(tmp_path):
    config = load_pipeline_config(config_file(tmp_path, {
        "clean": {"blocks": [{"block": CUSTOM}]},
        "filter": {"blocks": [{"block": "score_threshold", "score": "length", "min": 100}]}}))
    assert list(config.stages) == ["clean", "filter"]
    assert config.stages["filter"].blocks == (ScoreThreshold("length", min=100),)
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "long", "text": ENGLISH}) + "\n" + json.dumps({"id": "short", "text": "hi"}) + "\n")
    for name, inputs in (("clean", source), ("filter", tmp_path / "clean" / "kept")):
        run_document_stage(config.stages[name], StageConfig((str(inputs),), tmp_path / name, workers=1, progress=False))
    scored, filtered = StageOutput.load(tmp_path / "clean"), StageOutput.load(tmp_path / "filter")
    assert [(r["id"], r["scores"]) for r in scored.kept] == [("long", {"length": len(ENGLISH)}), ("short", {"length": 2})]
    assert [r["id"] for r in filtered.kept] == ["long"] and filtered.removed[0]["reason"] == "score_below_min"
    for counts in (scored.manifest["counts"], filtered.manifest["counts"]):
        assert counts["in"] == counts["kept"] + counts["removed"] + counts["rejected"] == 2


@pytest.mark.parametrize("blocks,message", [
    ([{"block": "gopher"}], r"stages\.clean\.blocks\[0\]\.block: unknown block 'gopher' \(known: text, language"),
    ([{"block": "no_such_module:Block"}], r"blocks\[0\]\.block: block 'no_such_module:Block': cannot import no_such_module"),
    ([{"block": "tests.tools.blocks.custom:Missing"}], r"tests\.tools\.blocks\.custom has no class Missing"),
    ([{"block": "tests.tools.blocks.custom:NotABlock"}], r"NotABlock is not a block: a dataclass of its settings"),
    ([{"block": "c4"}, {"block": CUSTOM, "min_char": 3}], r"blocks\[1\]\.min_char: unknown option \(known: min_chars\)"),
    ([{"block": CUSTOM, "min_chars": "ten"}], r"blocks\[0\]\.min_chars: expected int, got 'ten'"),
    ([{"block": CUSTOM, "min_chars": -1}], r"blocks\[0\]: min_chars must be >= 0, got -1"),
    ([{"block": "fineweb", "max_short_lines": 3}], r"blocks\[0\]\.max_short_lines: must be in \[0, 1\], got 3"),
    ([{"block": "score_threshold", "score": "q"}], r"blocks\[0\]: score_threshold on 'q' needs min, max or both"),
    (["c4"], r"blocks\[0\]: expected \{block: NAME or module:Class"),
    ([], r"stages\.clean\.blocks: expected a non-empty list of blocks"),
])
def test_a_bad_block_names_the_file_and_the_key(tmp_path, blocks, message):
    with pytest.raises(PipelineConfigError, match=rf"p\.yaml: .*{message}"):
        load_pipeline_config(config_file(tmp_path, {"clean": {"blocks": blocks}}))


def test_blocks_and_the_clean_options_do_not_mix(tmp_path):
    with pytest.raises(PipelineConfigError, match=r"stages\.clean: blocks: list every block's settings there"):
        load_pipeline_config(config_file(tmp_path, {"clean": {"blocks": [{"block": "c4"}], "languages": ["en"]}}))
    with pytest.raises(PipelineConfigError, match=r"stages\.clean\.quality\.min_word: unknown rule"):
        load_pipeline_config(config_file(tmp_path, {"clean": {"quality": {"min_word": 3}}}))


def test_the_command_says_what_is_wrong_in_one_line_and_exits_2(tmp_path):
    import subprocess

    path = config_file(tmp_path, {"clean": {"blocks": [{"block": "mypkg.filters:MyBlock"}]}})
    done = subprocess.run([str(Path(sys.executable).parent / "qwen-data"), "pipeline", "--config", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"qwen-data pipeline: error: {path}: stages.clean.blocks[0].block: block 'mypkg.filters:MyBlock': "
        "cannot import mypkg.filters (No module named 'mypkg')"]


def test_the_pipeline_runs_a_user_block_and_a_filter_stage_before_tokenize(tmp_path):
    import subprocess

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": str(n), "text": ENGLISH[:40 * n]}) + "\n" for n in range(1, 6)))
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({
        "output": str(tmp_path / "run"), "workers": 2, "sources": [{"name": "prose", "inputs": [str(source)]}],
        "stages": {"clean": {"blocks": [{"block": CUSTOM, "min_chars": 50}]},
                   "filter": {"blocks": [{"block": "score_threshold", "score": "length", "max": 150}]},
                   "tokenize": {}}}))
    # The user's block module must be importable, as a user's package would be (PYTHONPATH here).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([str(Path(sys.executable).parent / "qwen-data"), "pipeline", "--config", str(path),
                           "--no-progress"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    stages = json.loads((tmp_path / "run" / "pipeline_summary.json").read_text())["stages"]
    counts = {stage["stage"]: stage["counts"] for stage in stages}
    assert (counts["clean"]["kept"], counts["clean"]["removed_by_reason"]) == (4, {"too_short": 1})
    assert (counts["filter"]["in"], counts["filter"]["kept"]) == (4, 2)  # lengths 80, 120 kept; 160, 200 not
    assert counts["filter"]["removed_by_reason"] == {"score_above_max": 2}
    assert counts["tokenize"]["in"] == counts["tokenize"]["kept"] == 2
    for stage_counts in counts.values():
        assert stage_counts["in"] == stage_counts["kept"] + stage_counts["removed"] + stage_counts["rejected"]
    kept = StageOutput.load(tmp_path / "run" / "filter")
    assert [(r["id"], r["scores"]) for r in kept.kept] == [("2", {"length": 80}), ("3", {"length": 120})]
