"""Reading a run's artefacts from its files: the data pipeline's summary, manifests and removed/
records, the training metrics, checkpoints, the exported model and the generated sample.

Only files are read (JSON, JSONL, YAML), never the data tools' or trainer's modules, so the report
describes what the run wrote. The layout is the demo's (``python -m pretrain.demo``)::

    RUN/data/            qwen-data pipeline output (pipeline_summary.json, <stage>/removed/, ...)
    RUN/train/           metrics.jsonl
    RUN/checkpoints/     step_XXXXXXXX/ (config.yaml, state/, ...), latest
    RUN/hf/              qwen-convert to-hf output
    RUN/sample.jsonl     qwen-generate --prompt-file output
    RUN/demo.json        the demo's step commands and seconds
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXAMPLES_PER_REASON = 2
EXCERPT_CHARS = 240
_TAG = re.compile(r"<(style|script)\b.*?</\1>|<[^>]+>", re.DOTALL | re.IGNORECASE)
_SPACE = re.compile(r"\s+")


@dataclass
class RemovedDocument:
    stage: str
    reason: str
    id: str
    origin: str  # file:line of the stage's input
    rule: str
    value: str
    limit: str
    excerpt: str


@dataclass
class Run:
    directory: Path
    stages: list[dict[str, Any]]  # pipeline_summary.json "stages", in order
    sources: list[dict[str, Any]]  # name, weight, documents, tokens
    removed: dict[str, list[RemovedDocument]]  # reason -> a few examples
    rejected: list[dict[str, Any]]  # every rejected line: file, line, error, stage
    leaked_items: list[dict[str, Any]]  # decontamination report items that matched a document
    metrics: list[dict[str, Any]]
    config: dict[str, Any]  # the last checkpoint's config.yaml
    checkpoints: list[tuple[str, int]]  # step directory name, bytes
    state_bytes: int  # the last checkpoint's sharded state (state/)
    export: list[tuple[str, int]]  # file name, bytes
    samples: list[dict[str, Any]]  # prompt, completion
    steps: dict[str, Any] = field(default_factory=dict)


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _document_text(origin: str, text_field: str) -> str:
    """The text of the input line a removed record names (``file:line``); '' when unreadable."""
    path, _, line = origin.rpartition(":")
    try:
        with open(path, encoding="utf-8") as handle:
            for number, content in enumerate(handle, 1):
                if number == int(line):
                    return str(json.loads(content).get(text_field, ""))
    except (OSError, ValueError):
        pass
    return ""


def _excerpt(text: str, anchor: str | None = None) -> str:
    plain = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()
    start = max(plain.find(anchor) - 80, 0) if anchor and anchor in plain else 0
    excerpt = plain[start:start + EXCERPT_CHARS]
    return ("..." if start else "") + excerpt + ("..." if start + EXCERPT_CHARS < len(plain) else "")


def _rule(stage: str, reason: str, details: dict[str, Any], parameters: dict[str, Any]) -> tuple[str, str, str]:
    """(rule, measured value, limit) of one removal, from its details and the stage's parameters."""
    if reason == "exact_duplicate":
        return ("identical text (hash of the normalized text)", f"same hash as {details.get('partner_id')}",
                f"keep {parameters.get('keep', 'first-seen')} copy")
    if reason == "near_duplicate":
        return (f"MinHash/LSH Jaccard over {parameters.get('word_ngram', 5)}-word shingles "
                f"({parameters.get('char_ngram', 5)}-character for CJK text)",
                f"{details.get('similarity')} with {details.get('partner_id')}", f">= {parameters.get('threshold')}")
    if reason in ("benchmark_overlap", "split_too_many_times", "no_clean_fragment"):
        return (f"{parameters.get('n', 13)}-gram overlap with a benchmark ({parameters.get('mode')})",
                ", ".join(details.get("items", [])), "no shared 13-gram")
    if reason == "language":
        return ("language identification (py3langid)", f"{details.get('language')} (p={details.get('score')})",
                f"one of {details.get('allowed')}")
    value = {key: val for key, val in details.items() if key not in ("limit", "language")}
    shown = value.get("value", ", ".join(f"{k}={v}" for k, v in value.items()))
    return (f"{stage}: {reason}", str(shown), str(details.get("limit", "-")))


def _removed_examples(data: Path, stage: str, text_field: str) -> tuple[dict[str, list[RemovedDocument]], list[dict]]:
    directory = data / stage
    parameters = _json(directory / "manifest.json").get("parameters", {})
    examples: dict[str, list[RemovedDocument]] = {}
    for path in sorted((directory / "removed").glob("*.jsonl")):
        for removal in _jsonl(path):
            reason = removal["reason"]
            if len(examples.setdefault(reason, [])) >= EXAMPLES_PER_REASON:
                continue
            rule, value, limit = _rule(stage, reason, removal.get("details", {}), parameters)
            text = _document_text(removal.get("source", ""), text_field)
            anchor = "def " if reason == "benchmark_overlap" else None
            examples[reason].append(RemovedDocument(stage, reason, removal["id"], removal.get("source", ""),
                                                    rule, value, limit, _excerpt(text, anchor)))
    rejected = [{**line, "stage": stage} for path in sorted((directory / "rejected").glob("*.jsonl"))
                for line in _jsonl(path)]
    return examples, rejected


def _checkpoints(directory: Path) -> tuple[list[tuple[str, int]], int, dict[str, Any]]:
    steps = sorted(p for p in directory.glob("step_*") if (p / "COMPLETE").exists())
    config = yaml.safe_load((steps[-1] / "config.yaml").read_text(encoding="utf-8")) if steps else {}
    state = _tree_bytes(steps[-1] / "state") if steps and (steps[-1] / "state").is_dir() else 0
    return [(p.name, _tree_bytes(p)) for p in steps], state, config


def read_run(directory: Path) -> Run:
    data = directory / "data"
    summary = _json(data / "pipeline_summary.json")
    config_file = Path(summary["config"])
    pipeline = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    text_field = pipeline.get("text_field", "text")
    stages = summary["stages"]
    removed: dict[str, list[RemovedDocument]] = {}
    rejected: list[dict] = []
    for stage in (s["stage"] for s in stages if s["stage"] != "tokenize"):
        examples, stage_rejected = _removed_examples(data, stage, text_field)
        for reason, documents in examples.items():
            removed.setdefault(reason, []).extend(documents)
        rejected += stage_rejected
    weights = {source["name"]: source.get("weight", 1.0) for source in pipeline.get("sources", [])}
    sources = [{"name": s["source"], "weight": weights.get(s["source"]), "documents": s["dataset"]["documents"],
                "tokens": s["dataset"]["tokens"]} for s in stages if s["stage"] == "tokenize"]
    report = data / "decontaminate" / "decontamination_report.json"
    leaked = [item for item in _json(report)["items"] if item["documents"]] if report.is_file() else []
    metrics_file = directory / "train" / "metrics.jsonl"
    checkpoints, state_bytes, config = _checkpoints(directory / "checkpoints")
    hf = directory / "hf"
    export = sorted((p.name, p.stat().st_size) for p in hf.iterdir() if p.is_file()) if hf.is_dir() else []
    sample_file = directory / "sample.jsonl"
    demo = directory / "demo.json"
    return Run(directory=directory, stages=stages, sources=sources, removed=removed, rejected=rejected,
               leaked_items=leaked, metrics=_jsonl(metrics_file) if metrics_file.is_file() else [], config=config,
               checkpoints=checkpoints, state_bytes=state_bytes, export=export,
               samples=_jsonl(sample_file) if sample_file.is_file() else [],
               steps=_json(demo)["steps"] if demo.is_file() else {})
