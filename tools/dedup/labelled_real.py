"""A harder labelled near-duplicate set: real prose, with the edits real near duplicates carry.

Originals are runs of consecutive paragraphs (120 to 500 words, never sharing a paragraph) of the
English prose every Python ships: the language reference topics (``pydoc_data.topics``), then the
standard library's docstrings (read with ``ast``; nothing is imported). Half the originals get 1-3
copies, each with a random mix of edits at controlled rates:

- word edits (substitute, delete, insert) at 0 to 3% of the words;
- one paragraph moved elsewhere;
- a boilerplate header and/or footer (navigation, copyright, cookie notices: 10-60 words) of the
  kind a page picks up when it is re-hosted; the same few boilerplates recur across the set;
- a partial copy: a contiguous 75-98% of the text;
- a paragraph of other text added.

The truth is exact Jaccard of word 5-gram sets (``labelled.truth_shingles``), computed for every
pair in a group and for every other pair of Jaccard >= 0.7 (an exact similarity join,
``labelled.other_similar_pairs``), independently of the dedup code; many pairs fall near 0.8,
where MinHash's estimate errs most. Documents are written in keep-priority order (an original
before its copies).
"""

from __future__ import annotations

import ast
import random
import re
import sysconfig
from itertools import combinations
from pathlib import Path
from typing import Iterator

from tools.dedup.labelled import LabelledSet, jaccard, other_similar_pairs

WORD_EDIT_RATES = (0.0, 0.005, 0.01, 0.02, 0.03)
BOILERPLATE = (
    "Skip to main content Home Docs Tutorials Community Blog Search Sign in",
    "Navigation index modules next previous Python documentation Quick search Go",
    "We use cookies to improve your experience on our site. By continuing to browse you agree to our use of "
    "cookies. Learn more Accept",
    "Copyright 2001-2024 Python Software Foundation. All rights reserved. This page is licensed under the Python "
    "Software Foundation License Version 2. Last updated on Jan 01, 2024. Found a bug? Show source",
    "Share this article Facebook Twitter LinkedIn Email Print Related posts You may also like Subscribe to our "
    "newsletter to get the latest updates delivered to your inbox every week. Privacy policy Terms of service",
    "Advertisement Continue reading below",
    "This mirror is updated hourly from the upstream documentation. Report a problem with this page or suggest "
    "an edit on the project's issue tracker; contributions are welcome under the contributor agreement.",
    "Previous topic Next topic This page Report a bug Show source Table of contents",
)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
MIN_PARAGRAPH_WORDS = 20


def _prose_paragraphs() -> Iterator[tuple[str, str]]:
    """(where, paragraph) of the language reference topics, then of stdlib docstrings."""
    import pydoc_data.topics

    for name, text in sorted(pydoc_data.topics.topics.items()):
        for paragraph in _PARAGRAPH_BREAK.split(text):
            yield f"topic:{name}", paragraph.strip()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if {"site-packages", "test", "tests", "idlelib"} & set(path.relative_to(stdlib).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                for paragraph in _PARAGRAPH_BREAK.split(ast.get_docstring(node) or ""):
                    yield str(path.relative_to(stdlib)), paragraph.strip()


def prose_documents(count: int, rng: random.Random, min_words: int = 120,
                    max_words: int = 500) -> tuple[list[list[str]], list[str]]:
    """(``count`` originals as lists of paragraphs, spare paragraphs for insertions)."""
    documents, current, spare = [], [], []
    where, target = None, rng.randint(min_words, max_words)
    for source, paragraph in _prose_paragraphs():
        if len(paragraph.split()) < MIN_PARAGRAPH_WORDS:
            continue
        if source != where and current:  # a document stays within one topic or file
            spare.extend(current)
            current = []
        where = source
        if len(documents) >= count:
            spare.append(paragraph)
            if len(spare) >= count:
                break
            continue
        current.append(paragraph)
        if sum(len(p.split()) for p in current) >= target:
            documents.append(current)
            current, target = [], rng.randint(min_words, max_words)
    return documents, spare


def _word_edits(text: str, rate: float, vocabulary: list[str], rng: random.Random) -> str:
    out = []
    for word in text.split(" "):
        if rng.random() >= rate:
            out.append(word)
            continue
        action = rng.randrange(3)
        if action == 0:
            out.append(rng.choice(vocabulary))
        elif action == 2:
            out.extend([word, rng.choice(vocabulary)])
    return " ".join(out)


def edited_copy(paragraphs: list[str], spare: list[str], vocabulary: list[str], rng: random.Random) -> str:
    """One near copy with a random mix of the edits listed in the module docstring."""
    parts = list(paragraphs)
    if len(parts) > 2 and rng.random() < 0.3:  # a paragraph moved
        moved = parts.pop(rng.randrange(len(parts)))
        parts.insert(rng.randrange(len(parts) + 1), moved)
    if rng.random() < 0.2:  # other text added
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(spare))
    text = "\n\n".join(parts)
    if rng.random() < 0.3:  # a partial copy
        words = text.split(" ")
        keep = int(len(words) * rng.uniform(0.75, 0.98))
        start = 0 if rng.random() < 0.5 else len(words) - keep
        text = " ".join(words[start:start + keep])
    text = _word_edits(text, rng.choice(WORD_EDIT_RATES), vocabulary, rng)
    if rng.random() < 0.3:
        text = rng.choice(BOILERPLATE) + "\n\n" + text
    if rng.random() < 0.3:
        text = text + "\n\n" + rng.choice(BOILERPLATE)
    return text


def build_real_text_set(originals: int = 1000, copy_share: float = 0.5, max_copies: int = 3,
                        seed: int = 0) -> LabelledSet:
    rng = random.Random(seed)
    documents_paragraphs, spare = prose_documents(originals, rng)
    vocabulary = sorted({w for paragraphs in documents_paragraphs[:50] for p in paragraphs for w in p.split()})
    documents, pairs = [], []
    for number, paragraphs in enumerate(documents_paragraphs):
        group = [{"id": f"r{number}-0", "text": "\n\n".join(paragraphs), "group": number}]
        if rng.random() < copy_share:
            for copy in range(1, rng.randint(1, max_copies) + 1):
                group.append({"id": f"r{number}-{copy}", "group": number,
                              "text": edited_copy(paragraphs, spare, vocabulary, rng)})
        documents.extend(group)
        pairs.extend((a["id"], b["id"], jaccard(a["text"], b["text"])) for a, b in combinations(group, 2))
    return LabelledSet(documents, pairs + other_similar_pairs(documents))
