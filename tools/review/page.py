"""The review page: the stages' counts, a chart of removals per reason, the sampled documents, and
filters by stage, reason, source and score range that say how many documents are visible.

Nothing in the page depends on the time or the machine, so the same sample renders to the same bytes.
"""

from __future__ import annotations

import json
from collections import Counter
from html import escape
from typing import Any

from foundation.svg import stacked_bars
from tools.review.assets import CSS, JS
from tools.review.sample import KEPT, ReviewSample, Sampled

PREVIEW_CHARS = 600  # shown at once; the rest of the text opens on a click


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _measure(details: dict[str, Any]) -> str:
    """The removal's details, the measured value against its limit first."""
    parts = []
    if "value" in details and "limit" in details:
        parts.append(f'<span class="measure">value {escape(_value(details["value"]))} against limit '
                     f'{escape(_value(details["limit"]))}</span>')
    parts += [f"{escape(k)}: {escape(_value(v))}" for k, v in details.items() if k not in ("value", "limit")]
    return " · ".join(parts)


def _text(doc: Sampled, max_chars: int) -> str:
    if doc.text is None:
        return f'<p class="note">{escape(doc.note)}</p>'
    shown = doc.text[:max_chars]
    html = f"<pre>{escape(shown[:PREVIEW_CHARS])}</pre>"
    if len(shown) > PREVIEW_CHARS:
        html += (f"<details><summary>show the next {len(shown) - PREVIEW_CHARS:,} characters</summary>"
                 f"<pre>{escape(shown[PREVIEW_CHARS:])}</pre></details>")
    if len(doc.text) > max_chars:
        html += f'<p class="note">{len(doc.text) - max_chars:,} more characters not included (--max-chars)</p>'
    return html


def _article(doc: Sampled, stage_name: str, max_chars: int) -> str:
    group = doc.group
    scores = json.dumps(doc.scores, sort_keys=True)
    lines = [f'<div class="meta"><span class="reason">{escape(group.reason)}</span> · {escape(stage_name)} · '
             f"source {escape(group.source)} · id <code>{escape(doc.id)}</code> · {escape(doc.location)}</div>"]
    if doc.details:
        lines.append(f"<div>{_measure(doc.details)}</div>")
    if doc.scores:
        lines.append("<div>scores: " + ", ".join(f"{escape(k)} {v:g}" for k, v in doc.scores.items()) + "</div>")
    if doc.fields:
        lines.append('<div class="meta">' + " · ".join(f"{escape(k)}: {escape(_value(v)[:200])}"
                                                      for k, v in doc.fields.items()) + "</div>")
    return (f'<article class="doc" data-stage="{group.stage}" data-source="{escape(group.source)}" '
            f'data-reason="{escape(group.reason)}" data-scores="{escape(scores)}">'
            + "".join(lines) + _text(doc, max_chars) + "</article>")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{c:,}</td>' if isinstance(c, int) else f"<td>{escape(str(c))}</td>"
                                    for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _select(name: str, label: str, options: list[tuple[str, str]]) -> str:
    choices = "".join(f'<option value="{escape(value)}">{escape(text)}</option>' for value, text in options)
    return f'<label>{escape(label)} <select id="{name}"><option value="">all</option>{choices}</select></label>'


def _chart(sample: ReviewSample) -> str:
    removed = [(g, n) for g, n in sample.counts.items() if g.reason != KEPT]
    if not removed:
        return "<p>No document was removed.</p>"
    several = len(sample.stages) > 1
    rows: dict[str, dict[str, float]] = {}
    for group, count in removed:
        label = f"{sample.stages[group.stage].stage}: {group.reason}" if several else group.reason
        rows.setdefault(label, {})[group.source] = count
    sources = sorted({g.source for g, _ in removed})
    ordered = sorted(rows.items(), key=lambda row: (-sum(row[1].values()), row[0]))
    return stacked_bars("Removed documents per reason and source", ordered, sources)


def render(sample: ReviewSample, per_group: int, seed: int, max_chars: int) -> str:
    stages = sample.stages
    stage_rows = [[s.stage, str(s.path), *(int(s.counts.get(k, 0)) for k in ("in", "kept", "removed", "rejected"))]
                  for s in stages]
    shown = Counter(doc.group for doc in sample.documents)
    group_rows = [[stages[g.stage].stage, g.source, g.reason, n, shown.get(g, 0)] for g, n in sample.counts.items()]
    reasons = sorted({g.reason for g in sample.counts if g.reason != KEPT})
    sources = sorted({g.source for g in sample.counts})
    score_names = sorted({name for doc in sample.documents for name in doc.scores})
    filters = (
        _select("stage", "stage", [(str(i), f"{s.stage} ({s.path})") for i, s in enumerate(stages)])
        + _select("reason", "reason", [(KEPT, "kept")] + [(r, r) for r in reasons])
        + _select("source", "source", [(s, s) for s in sources])
        + _select("score", "score", [(s, s) for s in score_names])
        + '<label>from <input id="score-min" type="number" step="any"></label>'
        + '<label>to <input id="score-max" type="number" step="any"></label>'
        + f'<p>showing <span id="visible-count">{len(sample.documents)}</span> of {len(sample.documents)} '
        "sampled documents</p>")
    articles = "\n".join(_article(doc, stages[doc.group.stage].stage, max_chars) for doc in sample.documents)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>qwen-data review</title><style>{CSS}</style></head>
<body>
<h1>Review of {len(stages)} stage output{"s" if len(stages) > 1 else ""}</h1>
<p>Up to {per_group} documents per stage, source and outcome (kept, or removed for one reason), drawn with
seed {seed}. The text of a removed document is read back from the file and line its record names.</p>
<h2>Stages</h2>
{_table(["stage", "directory", "in", "kept", "removed", "rejected"], stage_rows)}
<h2>Removals</h2>
{_chart(sample)}
<h2>Groups</h2>
{_table(["stage", "source", "outcome", "documents", "sampled"], group_rows)}
<h2>Documents</h2>
<div id="filters">{filters}</div>
{articles}
<script>{JS}</script>
</body></html>
"""
