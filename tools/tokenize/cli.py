"""``qwen-data tokenize``: JSONL/Parquet text -> one megatron-core indexed dataset (.bin/.idx).

Steps: plan; write: each shard (an input file or a byte range of one) is tokenized into its own
dataset under ``.work/shards/`` (resumable: finished shards are skipped on rerun); merge: the
shards are merged in input order with megatron-core's ``add_index`` into ``OUTPUT/NAME.bin/.idx``,
reopened, and checked against the counted documents and tokens before ``manifest.json`` declares
the run done.
"""

from __future__ import annotations

import argparse
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

from foundation.records.document import Document, Removal
from foundation.tokenizer import ENDOFTEXT
from tools.executor.job import Job, OneItem, Step
from tools.executor.local import LocalExecutor
from tools.executor.markers import Markers
from tools.executor.options import run_job
from tools.stage.cli import add_stage_arguments, run_reporting_errors, stage_config, stage_executor
from tools.stage.errors import InputError
from tools.stage.manifest import format_summary, total_counts, write_manifest
from tools.stage.plan import StageRun
from tools.stage.runner import StageConfig
from tools.stage.stages import DocumentDecisions, plan_step, read_manifest, stage_report, stage_run, write_step
from tools.tokenize.shard import TokenizedDataset, TokenizerSpec, dataset_name_problem, empty_text, shard_prefix


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


@dataclass(frozen=True)
class MergeWork(OneItem):
    """Merges the shards that hold documents, in input order, checks the counts, writes the manifest."""

    stage_run: StageRun
    tokenizer: TokenizerSpec
    dataset_name: str
    write_markers: Path
    unit: ClassVar[str] = "merge"

    def run(self, item: str) -> dict[str, Any]:
        run, plan = self.stage_run, self.stage_run.plan()
        markers = Markers(self.write_markers)
        results = [markers.read(shard.name)["result"] for shard in plan.shards]
        counts = total_counts(results)
        prefix = run.output / self.dataset_name
        for suffix in (".bin", ".idx"):  # an earlier run's dataset must not outlive a run without one
            Path(f"{prefix}{suffix}").unlink(missing_ok=True)
        dataset = {"prefix": None, "documents": 0, "tokens": 0, "dtype": None, "text_bytes": 0}
        if counts["kept"]:
            dataset = _merge(run.config, plan.shards, results, str(prefix), self.tokenizer.load())
        wall = time.time() - plan.planned_at
        write_manifest(run.output, run.stage, {**run.params, **run.config.resume_key()},
                       [shard.label for shard in plan.shards], counts, wall, run.libraries,
                       {"dataset": dataset, "skipped_files": plan.skipped_files, "shards": len(plan.shards)})
        skipped = sum(1 for shard in plan.shards if markers.read(shard.name)["started"] < plan.planned_at)
        print(format_summary("tokenize", counts, wall, skipped, len(plan.shards)))
        if dataset["prefix"]:
            print(f"  dataset {prefix}: {dataset['documents']:,} documents, {dataset['tokens']:,} tokens "
                  f"({dataset['dtype']})", flush=True)
        return {"documents": dataset["documents"]}


@dataclass(frozen=True)
class TokenizeStage:
    """A document stage whose kept documents go into a dataset (per shard, merged at the end)."""

    tokenizer: TokenizerSpec = TokenizerSpec()
    dataset_name: str = "text_document"
    name: ClassVar[str] = "tokenize"
    libraries: ClassVar[tuple[str, ...]] = ("tiktoken", "megatron-core", "tokenizers")

    def params(self) -> dict[str, Any]:
        return {"dataset_name": self.dataset_name, **vars(self.tokenizer)}

    def decide_batch(self, docs: Sequence[Document]) -> list[Removal | None]:
        return [empty_text(doc) for doc in docs]

    def job(self, config: StageConfig, partitions: int) -> Job:
        return tokenize_job(config, self.tokenizer, self.dataset_name)

    def depends(self) -> None:
        return None


def tokenize_job(config: StageConfig, tokenizer: TokenizerSpec, dataset_name: str) -> Job:
    """Checks the dataset name and loads the tokenizer first (one line naming the flag if bad)."""
    problem = dataset_name_problem(dataset_name)
    if problem:
        raise InputError(f"--dataset-name {problem}")
    tokenizer.check()
    stage = TokenizeStage(tokenizer, dataset_name)
    run = stage_run(stage, config)
    write = write_step(run, DocumentDecisions(stage), TokenizedDataset(tokenizer))
    merge = Step("tokenize.merge", "tokenize merge", MergeWork(run, tokenizer, dataset_name, write.markers),
                 run.step_markers("merge"), single=True)
    return Job("qwen-data tokenize", run.output, (plan_step(run),), (write, merge),
               functools.partial(stage_report, run.output))


def tokenize(config: StageConfig, tokenizer: TokenizerSpec, dataset_name: str) -> dict[str, Any]:
    """Run the stage on this machine; returns the manifest (``dataset`` holds the prefix and counts)."""
    LocalExecutor(config.workers, config.progress).run(tokenize_job(config, tokenizer, dataset_name))
    return read_manifest(config.output)


def _merge(config: StageConfig, shards, results: list[dict[str, Any]], prefix: str, loaded) -> dict[str, Any]:
    """Merge the shards that hold documents, in input order, and check the merged counts."""
    from foundation.indexed_writer import merge_datasets, token_dtype  # megatron-core: only where datasets are built

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
        config = stage_config(args)
        if run_job(tokenize_job(config, spec, args.dataset_name), stage_executor(args)):
            manifest = read_manifest(config.output)
            if manifest["dataset"]["prefix"] is None:
                raise no_documents_error(manifest)

    return run_reporting_errors("qwen-data tokenize", body)
