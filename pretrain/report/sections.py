"""The report's content as sections of headings, text, tables and charts, shared by both renderers
(report.html and report.md), so the two always say the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation import svg
from pretrain.report.artefacts import Run


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Chart:
    name: str  # file stem next to report.md
    svg: str
    caption: str


@dataclass
class Section:
    title: str
    parts: list[str | Table | Chart] = field(default_factory=list)  # a str is a paragraph


def _stage_name(stage: dict) -> str:
    return stage["stage"] + (f" ({stage['source']})" if "source" in stage else "")


def data_section(run: Run) -> Section:
    stages = run.stages
    rows, balanced = [], True
    for stage in stages:
        counts = stage["counts"]
        balanced &= counts["in"] == counts["kept"] + counts["removed"] + counts["rejected"]
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(counts["removed_by_reason"].items(),
                                                                      key=lambda item: -item[1])) or "-"
        kept_bytes = f"{stage['bytes_kept']:,}" if "bytes_kept" in stage else "-"
        tokens = f"{stage['dataset']['tokens']:,}" if "dataset" in stage else "-"
        rows.append([_stage_name(stage), f"{counts['in']:,}", f"{counts['kept']:,}", f"{counts['removed']:,}",
                     f"{counts['rejected']:,}", reasons, f"{stage['bytes_in']:,}", kept_bytes, tokens])
    documents = svg.stacked_bars("Documents per stage", [(_stage_name(s), {
        "kept": s["counts"]["kept"], "removed": s["counts"]["removed"], "rejected": s["counts"]["rejected"]})
        for s in stages], ["kept", "removed", "rejected"])
    filters = [s for s in stages if "bytes_kept" in s]
    volume = svg.stacked_bars("Bytes per stage (input files: kept + removed or rejected)", [(s["stage"], {
        "kept": s["bytes_kept"], "removed or rejected": max(s["bytes_in"] - s["bytes_kept"], 0)}) for s in filters],
        ["kept", "removed or rejected"], unit=" B")
    reasons: dict[str, int] = {}
    for stage in stages:
        for reason, n in stage["counts"]["removed_by_reason"].items():
            reasons[f"{stage['stage']}: {reason}"] = n
    reason_chart = svg.stacked_bars("Removal reasons (documents)", [(name, {"removed": n}) for name, n in
                                                                    sorted(reasons.items(), key=lambda kv: -kv[1])],
                                    ["removed"])
    first, last = stages[0]["counts"], [s for s in stages if s["stage"] != "tokenize"][-1]["counts"]
    rejected = sum(s["counts"]["rejected"] for s in stages)
    text = (f"{first['in']:,} raw documents in, {last['kept']:,} kept for tokenization. Every stage accounts "
            f"for each document it read (in = kept + removed + rejected): "
            f"{'holds for every stage' if balanced else 'DOES NOT HOLD for some stage'}. "
            f"{rejected} input line(s) were rejected as unreadable (in `rejected/`, with file and line).")
    return Section("Data: documents and bytes per stage", [text, Table(
        ["stage", "documents in", "kept", "removed", "rejected", "removal reasons", "input bytes", "kept bytes",
         "tokens"], rows),
        Chart("documents", documents, "Documents per stage"), Chart("bytes", volume, "Bytes per filter stage"),
        Chart("reasons", reason_chart, "Documents removed, by stage and reason")])


def removed_section(run: Run) -> Section:
    parts: list = ["A few of the real documents each rule removed, with the rule, the value measured on the "
                   "document and the rule's limit."]
    rows = [[doc.stage, doc.reason, doc.id, doc.rule, doc.value, doc.limit, doc.excerpt]
            for reason in sorted(run.removed) for doc in run.removed[reason]]
    parts.append(Table(["stage", "reason", "document", "rule", "measured", "limit", "excerpt"], rows))
    if run.leaked_items:
        leaks = "; ".join(f"{item['item']} ({item['benchmark']}) in {', '.join(item['examples'])}"
                          for item in run.leaked_items)
        parts.append(f"Benchmark leaks found by decontamination: {leaks}.")
    if run.rejected:
        parts.append(f"{len(run.rejected)} input line(s) rejected as unreadable, each kept in the stage's "
                     "`rejected/` with its file, line and reason:")
        parts.append(Table(["stage", "file", "line", "error"],
                           [[r["stage"], r["file"], str(r["line"]), r["error"]] for r in run.rejected]))
    return Section("Removed and rejected documents", parts)


def blend_section(run: Run) -> Section:
    total_tokens = sum(s["tokens"] for s in run.sources) or 1
    total_weight = sum(s["weight"] or 0 for s in run.sources) or 1
    rows = [[s["name"], f"{s['documents']:,}", f"{s['tokens']:,}", f"{100 * s['tokens'] / total_tokens:.1f}%",
             f"{s['weight']}", f"{100 * (s['weight'] or 0) / total_weight:.1f}%"] for s in run.sources]
    chart = svg.stacked_bars("Tokens per source", [(s["name"], {"tokens": s["tokens"]}) for s in run.sources],
                             ["tokens"])
    return Section("Tokens per source and the blend", [
        "qwen-train samples the sources by their blend weights (megatron-core's BlendedDataset), not by size.",
        Table(["source", "documents", "tokens", "share of tokens", "blend weight", "share of samples"], rows),
        Chart("tokens", chart, "Tokens per source")])


def training_section(run: Run) -> Section:
    train = [m for m in run.metrics if "loss" in m]
    valid = [m for m in run.metrics if "valid_loss" in m]
    if not train:
        return Section("Training", ["No training metrics found."])
    lines = {"train loss": [(m["step"], m["loss"]) for m in train]}
    if valid:
        lines["validation loss"] = [(m["step"], m["valid_loss"]) for m in valid]
    loss = svg.line_chart("Loss", lines, "step", "cross-entropy (nats)")
    speed = svg.line_chart("Throughput", {"tokens/s": [(m["step"], m["tokens_per_second"]) for m in train]},
                           "step", "tokens/s (all processes)")
    rows = [[str(m["step"]), f"{m['loss']:.4f}", f"{m['tokens_per_second']:,.0f}", f"{100 * m['mfu']:.2f}%"]
            for m in train]
    text = (f"Loss {train[0]['loss']:.3f} at step {train[0]['step']} -> {train[-1]['loss']:.3f} at step "
            f"{train[-1]['step']}.")
    if valid:
        text += (f" Validation loss {valid[-1]['valid_loss']:.3f} (perplexity {valid[-1]['valid_ppl']:,.1f}) "
                 f"at step {valid[-1]['step']}.")
    text += (f" Last logged: {train[-1]['tokens_per_second']:,.0f} tokens/s, MFU {100 * train[-1]['mfu']:.2f}% "
             "(model FLOPs 6N + 12 L h s per token over the device peak; on a CPU the peak is the measured fp32 "
             "matmul rate).")
    return Section("Training: loss, validation, tokens/s and MFU", [
        text, Chart("loss", loss, "Train and validation loss"), Chart("throughput", speed, "Tokens per second"),
        Table(["step", "loss", "tokens/s", "MFU"], rows)])


def layout_section(run: Run) -> Section:
    model, parallel, training = (run.config.get(key, {}) for key in ("model", "parallel", "training"))
    layout = (f"TP={parallel.get('tp')} x PP={parallel.get('pp')}, ZeRO stage {parallel.get('zero_stage')}; "
              f"model {model.get('preset')} ({model.get('num_layers')} layers, hidden {model.get('hidden_size')}, "
              f"context {model.get('seq_length')}), kernels {model.get('kernels')}, precision "
              f"{training.get('precision')}, global batch {training.get('global_batch_size')}.")
    rows = [[name, f"{size / 2**20:.1f} MiB"] for name, size in run.checkpoints]
    parts: list = [layout, Table(["checkpoint", "size"], rows)]
    if run.state_bytes:
        parts.append(f"Of the last checkpoint, the sharded state (state/: one copy of the fp32 weights and Adam "
                     f"moments, written by every rank, loadable under any layout) is {run.state_bytes / 2**20:.1f} MiB.")
    return Section("Layout and checkpoints", parts)


def export_section(run: Run) -> Section:
    hf = run.directory / "hf"
    parts: list = [f"Hugging Face directory: `{hf}` (loads offline with AutoTokenizer and AutoModelForCausalLM)."]
    parts.append(Table(["file", "size"], [[name, f"{size:,} B"] for name, size in run.export]))
    if run.samples:
        parts.append("qwen-generate, greedy:")
        parts.append(Table(["prompt", "completion"], [[s["prompt"], s["completion"]] for s in run.samples]))
    if run.steps:
        parts.append(Table(["demo step", "seconds"], [[name, f"{step['seconds']:.0f}"] for name, step in
                                                      run.steps.items()]))
    return Section("Exported model and a generated sample", parts)


def build_sections(run: Run) -> list[Section]:
    return [data_section(run), removed_section(run), blend_section(run), training_section(run),
            layout_section(run), export_section(run)]
