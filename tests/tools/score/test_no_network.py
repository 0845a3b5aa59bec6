"""Everything model-based runs offline: with every socket connection refused in the process (and in
the workers it forks), the classifier trains and all three scorers score."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from tests.tools.score.accounting import assert_accounted
from tests.tools.score.corpora import REPO, grammar_document, stage_records, write_jsonl
from tools.score.labelled import labelled_set

BLOCK_SOCKETS = """
import socket, sys

def refuse(*args, **kwargs):
    raise OSError("network blocked by the test")

# Binding a loopback port stays possible (the model's process group asks for a free one); every
# connection, name lookup and datagram send is refused.
socket.socket.connect = socket.socket.connect_ex = socket.socket.sendto = refuse
socket.create_connection = socket.getaddrinfo = socket.gethostbyname = refuse
"""
RUN_QWEN_DATA = BLOCK_SOCKETS + "from tools.cli import main\nmain()\n"


def offline(*argv: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return subprocess.run([sys.executable, "-c", RUN_QWEN_DATA, *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)


def test_the_blocker_refuses_connections():
    attempt = BLOCK_SOCKETS + "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9', timeout=5)\n"
    done = subprocess.run([sys.executable, "-c", attempt], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "network blocked by the test" in done.stderr


@pytest.mark.slow
def test_training_and_scoring_with_every_scorer_need_no_network(grammar_model, tmp_path):
    checkpoint, tokenizer_json = grammar_model
    positive, negative = labelled_set(300)
    write_jsonl(tmp_path / "positive.jsonl", [{"text": t} for t in positive])
    write_jsonl(tmp_path / "negative.jsonl", [{"text": t} for t in negative])
    done = offline("train-classifier", "--positive", str(tmp_path / "positive.jsonl"), "--negative",
                   str(tmp_path / "negative.jsonl"), "--output", str(tmp_path / "quality.bin"), "--dim", "16",
                   "--buckets", "20000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "F1" in done.stdout

    rng = random.Random(7)
    records = [{"id": str(n), "text": grammar_document(rng, 3)} for n in range(20)]
    inputs = write_jsonl(tmp_path / "in" / "part.jsonl", records)
    done = offline("score", "--input", str(inputs), "--output", str(tmp_path / "out"), "--perplexity", str(checkpoint),
                   "--tokenizer-json", str(tokenizer_json), "--classifier", str(tmp_path / "quality.bin"),
                   "--offensive", "--workers", "2", "--split-bytes", "500", "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    assert_accounted(tmp_path / "out", len(records))
    kept = stage_records(tmp_path / "out", "kept")
    assert len(kept) == len(records)
    assert all(set(r["scores"]) == {"perplexity", "quality", "offensive"} for r in kept)
