"""FineWeb's line rules (Penedo et al. 2024, "The FineWeb Datasets", section 3.5; datatrove's
``FineWebQualityFilter``): the share of lines ending in terminal punctuation, and of short lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Iterator

from tools.blocks.rules import SHARE, Measurement, RuleBlock, nonblank_lines, rule

TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "。", "！", "？", "”", "…", ":", ";")
SHORT_LINE_CHARS = 30


@dataclass(frozen=True)
class FineWeb(RuleBlock):
    min_terminal_lines: float = field(default=0.12,
                                      metadata=rule("FineWeb: share of lines ending in terminal punctuation", SHARE))
    max_short_lines: float = field(default=0.67, metadata=rule("FineWeb: share of lines of <= 30 characters", SHARE))
    language_field: str = "language"
    name: ClassVar[str] = "fineweb"
    libraries: ClassVar[tuple[str, ...]] = ()

    def measurements(self, text: str, language: str | None) -> Iterator[Measurement]:
        lines = nonblank_lines(text)
        count = max(len(lines), 1)
        terminal = sum(line.endswith(TERMINAL_PUNCTUATION) for line in lines) / count
        yield "min_terminal_lines", terminal, self.min_terminal_lines, terminal >= self.min_terminal_lines
        short = sum(len(line) <= SHORT_LINE_CHARS for line in lines) / count
        yield "max_short_lines", short, self.max_short_lines, short <= self.max_short_lines
