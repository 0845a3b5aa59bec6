"""A labelled near-duplicate set built offline from the Python standard library's sources.

Originals are word windows cut from stdlib ``.py`` files (code, comments and docstrings: real,
varied text that every machine has). Some originals get copies with random word edits
(substitute / delete / insert) at known rates, so the exact Jaccard of their word 5-gram sets spans
0.5 to 1. The truth is exact Jaccard, computed here independently of the MinHash code. Documents
are written in the keep priority order (an original before its copies).
"""

from __future__ import annotations

import json
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
    pairs: list[tuple[str, str, float]]  # every within-group pair: (earlier id, later id, exact Jaccard)

    def write(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            for doc in self.documents:
                handle.write(json.dumps(doc) + "\n")


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
    return LabelledSet(documents, pairs)


@dataclass(frozen=True)
class Quality:
    precision: float  # removed documents whose named kept partner has exact Jaccard >= 0.7
    recall: float  # documents with an earlier partner of Jaccard >= 0.85 that were removed
    removed: int
    should_remove: int


def score(labelled: LabelledSet, removed: dict[str, str], recall_at: float = 0.85,
          precision_at: float = 0.7) -> Quality:
    """``removed``: removed id -> the kept partner id the dedup run named."""
    text_of = {doc["id"]: doc["text"] for doc in labelled.documents}
    should = {later for _, later, similarity in labelled.pairs if similarity >= recall_at}
    correct = sum(1 for doc, partner in removed.items() if jaccard(text_of[doc], text_of[partner]) >= precision_at)
    return Quality(precision=correct / len(removed) if removed else 1.0,
                   recall=len(should & set(removed)) / len(should) if should else 1.0,
                   removed=len(removed), should_remove=len(should))
