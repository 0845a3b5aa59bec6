"""``qwen-data tokenize``: JSONL/Parquet text -> one megatron-core indexed dataset (.bin/.idx).

Each input file (shard) is tokenized into its own dataset under ``.work/shards/`` (resumable:
finished shards are skipped on rerun); the shards are then merged in input order with
megatron-core's ``add_index`` into ``OUTPUT/NAME.bin/.idx``, reopened, and checked against the
counted documents and tokens before ``manifest.json`` declares the run done.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from tools.stage.cli import add_stage_arguments, run_reporting_errors, stage_config
from tools.stage.errors import InputError
from tools.stage.manifest import format_summary, total_counts, write_manifest
from tools.stage.runner import Markers, StageConfig, run_shards
from tools.stage.startup import MARKERS_DIR, prepare_run
from tools.tokenize.indexed import merge_datasets, token_dtype
from tools.tokenize.shard import TokenizerSpec, TokenizeTask, dataset_name_problem, shard_prefix
from tools.tokenizer import ENDOFTEXT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, outputs="NAME.bin/.idx (see --dataset-name), removed/, rejected/, manifest.json")
    group = parser.add_argument_group("tokenization")
    group.add_argument("--dataset-name", default="text_document",
                       help="the dataset is written to OUTPUT/NAME.bin and OUTPUT/NAME.idx; OUTPUT/NAME is the "
                            "prefix qwen-train reads (default: text_document)")
    group.add_argument("--tokenizer-file", default=None,
                       help="qwen.tiktoken vocabulary (default: the copy shipped by the dashscope package)")
    group.add_argument("--tokenizer-json", default=None,
                       help="use this Hugging Face tokenizer.json instead of the Qwen tokenizer")
    group.add_argument("--eod-token", default=ENDOFTEXT,
                       help=f"end-of-document token appended after each document (default {ENDOFTEXT})")


def tokenize(config: StageConfig, tokenizer: TokenizerSpec, dataset_name: str) -> dict[str, Any]:
    """Run the stage; returns the manifest (``dataset`` holds the prefix and its counts)."""
    started = time.perf_counter()
    problem = dataset_name_problem(dataset_name)
    if problem:
        raise InputError(f"--dataset-name {problem}")
    loaded = tokenizer.check()
    params = {"dataset_name": dataset_name, **vars(tokenizer)}
    plan = prepare_run(config, "tokenize", params)
    shards = plan.shards
    phase = run_shards(TokenizeTask(tokenizer, config), shards, Markers(Path(config.output) / MARKERS_DIR, "write"),
                       config.workers, "tokenize", config.progress)
    results = [phase.results[shard.index] for shard in shards]
    counts = total_counts(results)
    prefix = Path(config.output) / dataset_name
    for suffix in (".bin", ".idx"):  # an earlier run's dataset must not outlive a run without one
        Path(f"{prefix}{suffix}").unlink(missing_ok=True)
    dataset = {"prefix": None, "documents": 0, "tokens": 0, "dtype": None, "text_bytes": 0}
    if counts["kept"]:
        dataset = _merge(config, shards, results, str(prefix), loaded)
    wall = time.perf_counter() - started
    manifest = write_manifest(config.output, "tokenize", {**params, **config.resume_key()},
                              [shard.path for shard in shards], counts, wall,
                              ("tiktoken", "megatron-core", "tokenizers"),
                              {"dataset": dataset, "skipped_files": plan.skipped_files})
    print(format_summary("tokenize", counts, wall, phase.skipped, len(shards)))
    if dataset["prefix"]:
        print(f"  dataset {prefix}: {dataset['documents']:,} documents, {dataset['tokens']:,} tokens "
              f"({dataset['dtype']})")
    return manifest


def _merge(config: StageConfig, shards, results: list[dict[str, Any]], prefix: str, loaded) -> dict[str, Any]:
    """Merge the shards that hold documents, in input order, and check the merged counts."""
    holding = [shard for shard, result in zip(shards, results) if result["kept"]]
    summary = merge_datasets([shard_prefix(config.output, shard) for shard in holding], prefix,
                             token_dtype(loaded.vocab_size), loaded.eod)
    documents, tokens = sum(r["kept"] for r in results), sum(r["tokens"] for r in results)
    if (summary.num_documents, summary.num_tokens) != (documents, tokens):
        raise RuntimeError(f"{prefix}: merged {summary.num_documents} documents / {summary.num_tokens} tokens, "
                           f"shards counted {documents} / {tokens}")
    return {"prefix": prefix, "documents": summary.num_documents, "tokens": summary.num_tokens,
            "dtype": summary.dtype, "text_bytes": sum(result["text_bytes"] for result in results),
            "tokenizer": str(loaded.vocab_file), "vocab_size": loaded.vocab_size, "eod": loaded.eod}


def no_documents_error(manifest: dict[str, Any]) -> InputError:
    counts = manifest["counts"]
    return InputError(f"no documents to tokenize: of {counts['in']:,} records, {counts['removed']:,} were removed "
                      f"and {counts['rejected']:,} rejected (see removed/ and rejected/); no dataset written")


def run(args: argparse.Namespace) -> int:
    spec = TokenizerSpec(args.tokenizer_file, args.tokenizer_json, args.eod_token)

    def body() -> None:
        manifest = tokenize(stage_config(args), spec, args.dataset_name)
        if manifest["dataset"]["prefix"] is None:
            raise no_documents_error(manifest)

    return run_reporting_errors("qwen-data tokenize", body)
