"""The pipeline's one summary: per stage documents, bytes, removal reasons, tokens and time,
as JSON and Markdown, and the data section ``qwen-train`` takes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from foundation.atomic_write import write_bytes_atomic, write_json_atomic
from tools.pipeline.config import PipelineConfig

SUMMARY_JSON = "pipeline_summary.json"
SUMMARY_MARKDOWN = "pipeline_summary.md"


def training_data(config: PipelineConfig, records: list[dict[str, Any]]) -> dict[str, Any]:
    """``data.prefixes`` (and ``data.weights`` with several sources) for qwen-train's config; a
    source left without documents has no dataset and is not in it."""
    datasets = {r["source"]: r["dataset"] for r in records if r["stage"] == "tokenize"}
    sources = [s for s in config.sources if datasets[s.name]["prefix"]]
    data: dict[str, Any] = {"prefixes": [datasets[s.name]["prefix"] for s in sources]}
    if len(sources) > 1:
        data["weights"] = [s.weight for s in sources]
    return data


def _row(record: dict[str, Any]) -> str:
    counts = record["counts"]
    name = record["stage"] + (f" ({record['source']})" if "source" in record else "")
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in
                        sorted(counts["removed_by_reason"].items(), key=lambda kv: -kv[1])) or "-"
    if "documents_cut" in record:
        reasons += f"; benchmark text cut from {record['documents_cut']:,} kept"
    kept_bytes = record.get("bytes_kept", record.get("dataset", {}).get("tokens"))
    output = f"{kept_bytes:,} B" if "bytes_kept" in record else f"{kept_bytes:,} tokens"
    time_note = " (earlier run)" if record.get("skipped") else ""
    return (f"| {name} | {counts['in']:,} | {counts['kept']:,} | {counts['removed']:,} | {counts['rejected']:,} | "
            f"{reasons} | {record['bytes_in']:,} B | {output} | {record['seconds']:.1f}{time_note} |")


def markdown(records: list[dict[str, Any]], data: dict[str, Any]) -> str:
    lines = ["| stage | documents in | kept | removed | rejected | removal reasons | input bytes (files) | "
             "output | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [_row(record) for record in records]
    lines += ["", "qwen-train data section:", "", "```yaml", "data:",
              f"  prefixes: {json.dumps(data['prefixes'])}"]
    if "weights" in data:
        lines.append(f"  weights: {json.dumps(data['weights'])}")
    overrides = " ".join(f"'data.{key}={json.dumps(value)}'" for key, value in data.items())
    lines += ["```", "", f"or on the command line: `qwen-train --config CONFIG {overrides}`"]
    return "\n".join(lines)


def write_summary(config: PipelineConfig, records: list[dict[str, Any]]) -> str:
    data = training_data(config, records)
    stages = [{key: value for key, value in record.items() if key != "outputs"} for record in records]
    write_json_atomic(Path(config.output) / SUMMARY_JSON, {"config": config.path, "stages": stages,
                                                          "qwen_train": {"data": data}})
    text = markdown(records, data)
    write_bytes_atomic(Path(config.output) / SUMMARY_MARKDOWN, (text + "\n").encode("utf-8"))
    return text
