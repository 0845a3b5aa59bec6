"""The clean stage built from blocks writes byte for byte what the monolithic clean stage wrote
(``clean_golden.json``, see ``clean_golden.py``) on the shipped samples, the demo corpus, the
adversarial corpus and a corpus that trips each rule, under several sets of flags."""

from __future__ import annotations

import json

import pytest

from tests.tools.blocks.clean_golden import CASES, GOLDEN, corpora, run_case


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    return root, corpora(root)


@pytest.mark.parametrize("name,corpus,flags", CASES, ids=[case[0] for case in CASES])
def test_clean_outputs_are_byte_identical_to_the_monolithic_stage(built, name, corpus, flags):
    root, paths = built
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))[name]
    found = run_case(root, paths[corpus], flags, root / "out" / name)
    counts = found["counts"]
    assert counts["in"] == counts["kept"] + counts["removed"] + counts["rejected"]
    assert found == expected
