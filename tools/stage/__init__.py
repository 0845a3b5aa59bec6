"""The stage framework every ``qwen-data`` tool is built on.

The records it reads and writes live in ``foundation.records`` (``document``: ``Document`` (id,
text, pass-through ``fields``, ``source`` file, ``line``), ``Removal(reason, details)``,
``Rejection(source, line, error)``; ``streams``, ``reader`` (JSON Lines, JSON arrays, Parquet;
strict JSON; bad records become ``Rejection``), ``split`` (large JSON Lines files cut into byte
ranges on line ends)); outputs are written through ``foundation.atomic_write``.

Pieces here (one file each):

- ``inputs``: ``expand_inputs`` (files, directories, globs; unknown suffixes refused or skipped).
- ``runner``: ``StageConfig`` (the shared options), ``Shard`` (one input file or a byte range of
  one, named after its identity, with the fingerprint its completion markers check).
- ``startup``: the checks before a run (output directory, inputs, text field), the claim on the
  output directory, and removal of stale files.
- ``plan``: ``StageRun`` (one stage's run over one output directory) and its plan step, which
  does the start-up, splits the inputs into shards and writes ``.work/plan.json`` for every
  later step.
- ``pool``: forked workers with one pipe each, so a signal can stop them at any moment (used by
  ``tools.executor``, which runs a stage's steps here or as SLURM job arrays).
- ``signals``, ``errors``: ``InputError`` (one line, exit 2) and ``StopSignal`` (SIGINT/SIGTERM).
- ``filter``: the write phase: documents decided in batches; kept/ (or a stage's own kept output,
  tokenize's dataset) removed/ rejected/ shards, written atomically.
- ``manifest``: ``manifest.json`` (parameters, versions, counts with in == kept + removed +
  rejected, wall time) and the summary table.
- ``stages``: the ``DocumentStage`` and ``CorpusStage`` protocols and the jobs that run them
  (plan, [index, merge steps,] write, finish); ``PipelineStage``: a stage that makes its own job
  (what ``qwen-data pipeline`` runs, with no case per stage).
- ``cli``: argparse helpers shared by every stage.

Output directory of every stage::

    kept/<shard>.jsonl       documents kept: {id_field, text_field, every other input field}
    removed/<shard>.jsonl    {"id", "stage", "reason", "details", "source": "FILE:LINE"}
    rejected/<shard>.jsonl   {"file", "line", "error"[, "byte"]}  (unreadable input)
    manifest.json
    .run.json, .markers/, .work/   resume state (a rerun with the same arguments resumes)

A per-document stage is a picklable dataclass that decides about batches of documents (the write
phase reads a shard and asks about up to ``filter.BATCH_DOCUMENTS`` at a time)::

    @dataclass(frozen=True)
    class DropOverlaps:
        ngrams: frozenset[str]
        name: str = "drop-overlaps"
        libraries: tuple[str, ...] = ()          # PyPI names recorded in the manifest

        def params(self) -> dict:                # recorded in the manifest; a rerun must match
            return {"ngram_count": len(self.ngrams)}

        def decide_batch(self, docs: Sequence[Document]) -> list[Removal | None]:
            hits = [first_overlap(doc.text, self.ngrams) for doc in docs]
            return [Removal("ngram_overlap", {"ngram": hit}) if hit else None for hit in hits]
            # or rewrite doc.text and answer None to keep the edited document

    manifest = run_document_stage(DropOverlaps(...), config)   # config: StageConfig; on this machine
    run_job(document_stage_job(DropOverlaps(...), config), executor)   # or where ``executor`` says

Most per-document stages are a list of filter blocks (``tools.blocks``: ``BlockStage(name,
blocks)``, like clean). Expensive state (a model) should be loaded lazily inside the decision (it
runs in forked worker processes and is pickled to them), not built in the parent.

A whole-corpus stage (like dedup) implements ``CorpusStage``: ``index_shard(shard, documents,
work_dir)`` runs per shard and writes index files under ``work_dir`` (valid, unique-id documents
only); ``merge_steps(run)`` are the steps that decide, each split into partitions so that no item
holds the whole corpus; ``shard_removals(run, shard)`` (with ``removals_digest``) gives one
shard's decisions to its write task, ``summary(run)`` the manifest extras.
``corpus_stage_job(stage, config, partitions)`` makes the job (plan, index, merge steps, write,
finish); any executor runs it, on this machine or as SLURM job arrays.

A sub-command's cli.py::

    from tools.executor.options import run_job
    from tools.stage.cli import add_stage_arguments, run_reporting_errors, stage_config, stage_executor

    def add_arguments(parser):
        add_stage_arguments(parser)            # --input --output ... --workers, --executor --tasks ...
        parser.add_argument("--ngram", type=int, default=13)

    def run(args) -> int:
        job = document_stage_job(make_stage(args), stage_config(args))
        return run_reporting_errors("qwen-data decontaminate", lambda: run_job(job, stage_executor(args)))

``InputError`` (bad arguments, missing inputs, a resume with other parameters) becomes one line on
stderr and exit code 2; bad records never stop a run. SIGINT/SIGTERM stop the workers and end the
run with one line and exit code 130/143.
"""

from foundation.records.document import Document, Rejection, Removal
from foundation.records.reader import RecordParser, read_documents
from tools.stage.errors import InputError
from tools.stage.inputs import expand_inputs
from tools.stage.runner import Shard, StageConfig

_STAGES = ("CorpusStage", "DocumentStage", "run_corpus_stage", "run_document_stage")


def __getattr__(name: str):
    # tools.stage.stages builds on tools.executor, which builds on this package's lower modules
    # (writer, pool, signals): imported on first use, so either package can be imported first.
    if name in _STAGES:
        from tools.stage import stages

        return getattr(stages, name)
    raise AttributeError(f"module 'tools.stage' has no attribute {name!r}")

__all__ = [
    "CorpusStage", "Document", "DocumentStage", "InputError", "RecordParser", "Rejection", "Removal",
    "Shard", "StageConfig", "expand_inputs", "read_documents", "run_corpus_stage", "run_document_stage",
]
