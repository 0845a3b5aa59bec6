"""A labelled near-duplicate set built offline from the Python standard library's sources.

Originals are word windows cut from stdlib ``.py`` files (code, comments and docstrings: real,
varied text that every machine has). Some originals get copies with random word edits
(substitute / delete / insert) at known rates, so the exact Jaccard of their word 5-gram sets spans
0.5 to 1. The truth is exact Jaccard, computed here independently of the MinHash code. Documents
are written in the keep priority order (an original before its copies).
"""

from __future__ import annotations

import json
import math
import random
import re
import sysconfig
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

EDIT_RATES = (0.0, 0.003, 0.006, 0.01, 0.015, 0.02, 0.03, 0.05, 0.08, 0.15)
_TRUTH_SEPARATORS = re.compile(r"[\s!-/:-@\[-`{-~]+")  # ASCII whitespace and punctuation


def truth_shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = [w for w in _TRUTH_SEPARATORS.split(text.lower()) if w]
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = truth_shingles(a), truth_shingles(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


@dataclass(frozen=True)
class LabelledSet:
    documents: list[dict]  # {"id", "text", "group"} in keep-priority order
    # every within-group pair, and any other pair of Jaccard >= SIMILAR_FLOOR: (earlier id, later id, Jaccard)
    pairs: list[tuple[str, str, float]]

    def write(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            for doc in self.documents:
                handle.write(json.dumps(doc) + "\n")


SIMILAR_FLOOR = 0.7


def other_similar_pairs(documents: list[dict], floor: float = SIMILAR_FLOOR) -> list[tuple[str, str, float]]:
    """Every pair from different groups with exact Jaccard >= ``floor`` (real text repeats itself,
    the standard library's codec tables most of all), never through MinHash: an exact similarity
    join with prefix filtering (AllPairs, Bayardo et al. 2007). With shingles ordered rarest first,
    two sets of Jaccard >= t share one of the first ``|A| - ceil(t |A|) + 1`` of each; only pairs
    that do are measured."""
    shingles = [truth_shingles(doc["text"]) for doc in documents]
    frequency: dict[tuple[str, ...], int] = {}
    for found in shingles:
        for shingle in found:
            frequency[shingle] = frequency.get(shingle, 0) + 1
    holders: dict[tuple[str, ...], list[int]] = {}
    pairs = []
    for number, found in enumerate(shingles):
        ordered = sorted(found, key=lambda shingle: (frequency[shingle], shingle))
        prefix = ordered[:len(ordered) - math.ceil(floor * len(ordered)) + 1]
        candidates = {other for shingle in prefix for other in holders.get(shingle, ())}
        for other in candidates:
            if documents[other]["group"] == documents[number]["group"]:
                continue
            similarity = len(found & shingles[other]) / len(found | shingles[other])
            if similarity >= floor:
                pairs.append((documents[other]["id"], documents[number]["id"], similarity))
        for shingle in prefix:
            holders.setdefault(shingle, []).append(number)
    return pairs


def _stdlib_windows(count: int, words_per_doc: int, rng: random.Random) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.relative_to(stdlib).parts)
    rng.shuffle(files)
    windows: list[str] = []
    for path in files:
        words = path.read_text(encoding="utf-8", errors="replace").split()
        # Non-overlapping windows, so originals do not share text by construction.
        for start in range(0, len(words) - words_per_doc + 1, words_per_doc * 3):
            windows.append(" ".join(words[start:start + words_per_doc]))
            if len(windows) == count:
                return windows
    return windows


def _edit(text: str, rate: float, vocabulary: list[str], rng: random.Random) -> str:
    words = text.split()
    out: list[str] = []
    for word in words:
        if rng.random() >= rate:
            out.append(word)
            continue
        action = rng.randrange(3)
        if action == 0:
            out.append(rng.choice(vocabulary))
        elif action == 2:
            out.extend([word, rng.choice(vocabulary)])
    return " ".join(out)


def build_labelled_set(originals: int = 1000, copy_share: float = 0.5, max_copies: int = 3,
                       words_per_doc: int = 300, seed: int = 0) -> LabelledSet:
    rng = random.Random(seed)
    texts = _stdlib_windows(originals, words_per_doc, rng)
    vocabulary = sorted({w for text in texts[:50] for w in text.split()})
    documents, pairs = [], []
    for number, text in enumerate(texts):
        group = [{"id": f"g{number}-0", "text": text, "group": number}]
        if rng.random() < copy_share:
            for copy in range(1, rng.randint(1, max_copies) + 1):
                group.append({"id": f"g{number}-{copy}", "group": number,
                              "text": _edit(text, rng.choice(EDIT_RATES), vocabulary, rng)})
        documents.extend(group)
        pairs.extend((a["id"], b["id"], jaccard(a["text"], b["text"])) for a, b in combinations(group, 2))
    return LabelledSet(documents, pairs + other_similar_pairs(documents))


@dataclass(frozen=True)
class Quality:
    threshold: float
    recall: float  # share of the documents a perfect detector removes (same keep rule) that were removed
    precision: float  # share of removed documents whose named kept partner has exact Jaccard >= threshold
    removed: int
    should_remove: int


def ideal_removals(labelled: LabelledSet, threshold: float) -> set[str]:
    """What dedup should remove with exact Jaccard and the keep rule of ``clusters``: in document
    order (the keep priority), a document goes when a similar document was kept before it."""
    similar: dict[str, set[str]] = {}
    for a, b, similarity in labelled.pairs:
        if similarity >= threshold:
            similar.setdefault(a, set()).add(b)
            similar.setdefault(b, set()).add(a)
    kept: set[str] = set()
    removed: set[str] = set()
    for doc in labelled.documents:
        (removed if similar.get(doc["id"], set()) & kept else kept).add(doc["id"])
    return removed


def evaluate(labelled: LabelledSet, removed: dict[str, str], threshold: float) -> Quality:
    """``removed``: removed id -> the kept partner id the dedup run named; the truth is exact
    Jaccard at ``threshold`` (the run's own threshold)."""
    text_of = {doc["id"]: doc["text"] for doc in labelled.documents}
    should = ideal_removals(labelled, threshold)
    correct = sum(1 for doc, partner in removed.items() if jaccard(text_of[doc], text_of[partner]) >= threshold)
    return Quality(threshold, recall=len(should & set(removed)) / len(should) if should else 1.0,
                   precision=correct / len(removed) if removed else 1.0, removed=len(removed),
                   should_remove=len(should))
