"""``qwen-bench score``: documents per second per core of each scorer of ``qwen-data score``, side by
side in one run, over the same documents.

Documents: the standard-library labelled set (``tools.score.labelled``: prose, code, boilerplate,
spam, shuffled and garbled text), so lengths and vocabulary are those of a mixed web shard.
Columns, each a scoring block's ``measure_batch`` over texts in memory on one core (torch is held
to one thread), after a warm-up that loads its model:
- word lists: the shipped English and Chinese offensive-term lists (``--offensive``);
- classifier: a fastText model trained here on a disjoint labelled set (``--classifier``);
- perplexity with qwen-tiny and qwen-small: random-init Qwen2 models written with transformers and
  imported with ``qwen-convert from-hf`` (speed does not depend on the weights), the real Qwen
  vocabulary (151,936 rows), scored in token-length buckets;
- ``qwen-data score`` with all three (qwen-tiny) and ``--workers``: JSONL to kept/removed, per core
  over the CPU seconds of this process and its workers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from foundation.records.document import Document
from tools.bench.tokenize import best_of, stage_column, write_shards
from tools.score.block import ScoringBlock
from tools.score.classifier import QualityClassifier
from tools.score.labelled import labelled_set
from tools.score.language_model import LanguageModelSpec
from tools.score.offensive import OffensiveContent
from tools.score.perplexity import PerplexityFilter
from tools.score.stage import ScoreStage, run_score_stage
from tools.score.training import Example, TrainingSettings, train_classifier

PRESETS = ("qwen-tiny", "qwen-small")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--documents", type=int, default=4000,
                        help="documents for the word lists and the classifier (default 4000)")
    parser.add_argument("--perplexity-documents", type=int, default=200,
                        help="documents for the perplexity columns and the stage row (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per column; the best is reported (default 3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="workers of the qwen-data score row (default: all cores)")


def random_checkpoint(preset: str, directory: Path) -> Path:
    """A random-init model of ``preset``'s sizes as a checkpoint of this project, by way of a
    Hugging Face Qwen2 directory and ``qwen-convert from-hf``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from pretrain.config import ModelConfig, fill_from_preset
    from pretrain.convert.from_hf import import_checkpoint
    from foundation.tokenizer import PADDED_VOCAB_SIZE

    sizes = ModelConfig(preset=preset)
    fill_from_preset(sizes)
    config = Qwen2Config(vocab_size=PADDED_VOCAB_SIZE, hidden_size=sizes.hidden_size,
                         intermediate_size=sizes.ffn_hidden_size, num_hidden_layers=sizes.num_layers,
                         num_attention_heads=sizes.num_attention_heads, num_key_value_heads=sizes.num_attention_heads,
                         max_position_embeddings=sizes.seq_length, rms_norm_eps=1e-6, tie_word_embeddings=False)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(directory / f"{preset}-hf")
    with contextlib.redirect_stdout(io.StringIO()):
        import_checkpoint(directory / f"{preset}-hf", directory / preset, seq_length=sizes.seq_length)
    return directory / preset


def trained_classifier(directory: Path) -> Path:
    positive, negative = labelled_set(500, seed=1)
    model = directory / "quality.bin"
    train_classifier([Example(str(i), t, True) for i, t in enumerate(positive)],
                     [Example(str(i), t, False) for i, t in enumerate(negative)], model,
                     TrainingSettings(dim=32, buckets=100_000))
    return model


def scorer_column(block: ScoringBlock, docs: list[Document]) -> Callable[[], object]:
    block.measure_batch(docs[:2])  # warm-up: the model loads outside the timed runs
    return lambda: block.measure_batch(docs)


def print_table(results: dict[str, tuple[float, float]], counts: dict[str, tuple[int, float]]) -> None:
    print("\n| scorer | documents | MB | wall s | CPU s | docs/s (wall) | docs/s per core (CPU) | MB/s per core |\n"
          "|---|---|---|---|---|---|---|---|")
    for name, (wall, cpu) in results.items():
        documents, megabytes = counts[name]
        print(f"| {name} | {documents:,} | {megabytes:.2f} | {wall:.2f} | {cpu:.2f} | {documents / wall:,.1f} | "
              f"{documents / cpu:,.1f} | {megabytes / cpu:.3f} |")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    positive, negative = labelled_set(args.documents // 2)
    texts = [text for pair in zip(positive, negative) for text in pair]
    some = texts[:args.perplexity_documents]
    docs = [Document(str(i), text) for i, text in enumerate(texts)]
    some_docs = docs[:args.perplexity_documents]
    megabytes = lambda chosen: sum(len(t.encode("utf-8")) for t in chosen) / 1e6
    with tempfile.TemporaryDirectory(prefix="qwen-bench-score-") as tmp:
        root = Path(tmp)
        print("qwen-bench score: training the classifier and writing random-init checkpoints ...", file=sys.stderr)
        classifier = QualityClassifier(str(trained_classifier(root)))
        checkpoints = {preset: random_checkpoint(preset, root) for preset in PRESETS}
        offensive = OffensiveContent()
        columns = {"word lists (en, zh)": scorer_column(offensive, docs),
                   "fastText classifier": scorer_column(classifier, docs)}
        counts = {name: (len(docs), megabytes(texts)) for name in columns}
        for preset, checkpoint in checkpoints.items():
            name = f"perplexity, {preset} (random init)"
            columns[name] = scorer_column(PerplexityFilter(LanguageModelSpec(str(checkpoint))), some_docs)
            counts[name] = (len(some_docs), megabytes(some))
        stage = ScoreStage((PerplexityFilter(LanguageModelSpec(str(checkpoints["qwen-tiny"]), threads=1)),
                            classifier, offensive))
        inputs = write_shards(some, root / "in", max(args.workers, 1) * 2)
        name = f"qwen-data score, all three (qwen-tiny), --workers {args.workers}"
        columns[name] = stage_column(inputs, root, args.workers, lambda config: run_score_stage(stage, config))
        counts[name] = (len(some), megabytes(some))
        results = best_of(columns, args.repeat)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {torch.__version__} (1 thread per process); {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
          f"documents: the standard-library labelled set (prose, code, boilerplate, spam, shuffled, garbled); "
          f"best of {args.repeat}")
    print_table(results, counts)
    return 0
