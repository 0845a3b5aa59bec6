"""What to do with a document that contains benchmark n-grams (GPT-3, appendix C).

``remove-spans`` (default): cut each matching n-gram plus ``window`` characters either side,
keep the fragments between cuts that are at least ``min_fragment_chars`` long, and drop the
whole document when it was cut more than ``max_splits`` times or nothing is left.
``drop-document``: drop any document with a match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tools.decontaminate.index import NgramMatch
from tools.stage.settings import allowed, check_settings

Mode = Literal["remove-spans", "drop-document"]
MODES = ("remove-spans", "drop-document")
FRAGMENT_SEPARATOR = "\n\n"
REMOVAL_REASONS = ("benchmark_overlap", "split_too_many_times", "no_clean_fragment")


@dataclass(frozen=True)
class RemovalRules:
    mode: Mode = field(default="remove-spans", metadata=allowed(choices=MODES))
    window: int = field(default=200, metadata=allowed(low=0))
    min_fragment_chars: int = field(default=200, metadata=allowed(low=0))
    max_splits: int = field(default=10, metadata=allowed(low=0))

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class Outcome:
    """``text`` is the cleaned text, or None when the document is dropped for ``reason``."""

    text: str | None
    reason: str = ""
    cuts: int = 0
    removed_chars: int = 0


def merged_cuts(matches: list[NgramMatch], length: int, window: int) -> list[tuple[int, int]]:
    cuts: list[tuple[int, int]] = []
    for match in sorted(matches, key=lambda m: m.start):
        start, end = max(0, match.start - window), min(length, match.end + window)
        if cuts and start <= cuts[-1][1]:
            cuts[-1] = (cuts[-1][0], max(cuts[-1][1], end))
        else:
            cuts.append((start, end))
    return cuts


def apply_rules(text: str, matches: list[NgramMatch], rules: RemovalRules) -> Outcome:
    if not matches:
        return Outcome(text)
    if rules.mode == "drop-document":
        return Outcome(None, "benchmark_overlap", removed_chars=len(text))
    cuts = merged_cuts(matches, len(text), rules.window)
    if len(cuts) > rules.max_splits:
        return Outcome(None, "split_too_many_times", len(cuts), len(text))
    bounds = [0] + [edge for cut in cuts for edge in cut] + [len(text)]
    fragments = [text[start:end] for start, end in zip(bounds[::2], bounds[1::2])]
    kept = [fragment for fragment in fragments if len(fragment) >= rules.min_fragment_chars]
    if not kept:
        return Outcome(None, "no_clean_fragment", len(cuts), len(text))
    cleaned = FRAGMENT_SEPARATOR.join(kept)
    return Outcome(cleaned, cuts=len(cuts), removed_chars=len(text) - sum(map(len, kept)))
