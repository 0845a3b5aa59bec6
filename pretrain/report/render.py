"""The sections as a self-contained report.html (charts as base64 SVG images, no external file or
network) and as report.md (charts as SVG files in ``report_files/`` beside it)."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from foundation.atomic_write import write_text_atomic
from pretrain.report.sections import Chart, Section, Table

CHART_DIR = "report_files"
STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.excerpt { font-family: monospace; font-size: .85em; min-width: 320px; overflow-wrap: anywhere; }
td.number { text-align: right; white-space: nowrap; } figure { margin: 1em 0; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


def _inline_code(text: str) -> str:
    """`code` spans of the shared text as <code> (everything else escaped)."""
    pieces = escape(text).split("`")
    return "".join(f"<code>{piece}</code>" if index % 2 else piece for index, piece in enumerate(pieces))


def _cell_class(column: str, cell: str) -> str:
    if column == "excerpt":
        return ' class="excerpt"'
    return ' class="number"' if cell.replace(",", "").replace(".", "").replace("%", "").isdigit() else ""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in table.header)
    rows = []
    for row in table.rows:
        cells = "".join(f'<td{_cell_class(table.header[i], cell)}>{escape(cell)}</td>' for i, cell in enumerate(row))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _html_chart(chart: Chart) -> str:
    data = base64.b64encode(chart.svg.encode("utf-8")).decode("ascii")
    return f'<figure><img alt="{escape(chart.caption)}" src="data:image/svg+xml;base64,{data}"></figure>'


def to_html(title: str, sections: list[Section]) -> str:
    body = [f"<h1>{escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{escape(section.title)}</h2>")
        for part in section.parts:
            if isinstance(part, Table):
                body.append(_html_table(part))
            elif isinstance(part, Chart):
                body.append(_html_chart(part))
            else:
                body.append(f"<p>{_inline_code(part)}</p>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def _md_cell(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for part in section.parts:
            if isinstance(part, Table):
                lines.append("| " + " | ".join(part.header) + " |")
                lines.append("|" + "---|" * len(part.header))
                lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in part.rows]
            elif isinstance(part, Chart):
                lines.append(f"![{part.caption}]({CHART_DIR}/{part.name}.svg)")
            else:
                lines.append(part)
            lines.append("")
    return "\n".join(lines)


def write_report(directory: Path, title: str, sections: list[Section]) -> tuple[Path, Path]:
    charts = directory / CHART_DIR
    charts.mkdir(parents=True, exist_ok=True)
    for section in sections:
        for part in section.parts:
            if isinstance(part, Chart):
                write_text_atomic(charts / f"{part.name}.svg", part.svg)
    write_text_atomic(directory / "report.md", to_markdown(title, sections))
    write_text_atomic(directory / "report.html", to_html(title, sections))  # last: the demo's "done" marker
    return directory / "report.html", directory / "report.md"
