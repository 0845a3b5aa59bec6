"""A labelled quality set built from what every Python ships, for the classifier's test and benchmark.

Positive: prose (docstrings) and code from the standard library's sources. Negative, in turn:
navigation and footer boilerplate, keyword spam, standard-library text with its words shuffled,
and machine-garbled text (words replaced by letter noise). Seeded: the same seed gives the same set.
"""

from __future__ import annotations

import ast
import random
import string
import sysconfig
from pathlib import Path
from typing import Iterator

BOILERPLATE = ["Home", "About us", "Contact", "Privacy Policy", "Terms of Service", "Cookie settings",
               "Subscribe to our newsletter", "All rights reserved", "Log in", "Sign up", "Share on Facebook",
               "Follow us on Twitter", "Skip to main content", "Back to top", "Related posts", "Read more",
               "Accept all cookies", "Copyright", "Sitemap", "Careers", "Help center", "Download the app",
               "Previous page", "Next page", "Add to cart", "Wishlist", "Leave a comment", "Powered by WordPress"]
SPAM = ["cheap", "best", "buy", "online", "discount", "free", "casino", "loans", "deal", "sale", "replica",
        "watches", "shoes", "outlet", "pills", "bonus", "win", "click", "now", "offer", "lowest", "price",
        "guaranteed", "fast", "shipping", "viagra", "crypto", "earn", "money", "today"]
CODE_LINES = 40  # lines per code document
MIN_PROSE_WORDS = 25


def stdlib_sources() -> Iterator[str]:
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "test" in path.parts or "idlelib" in path.parts:
            continue
        try:
            yield path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue


def docstrings(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    texts = [ast.get_docstring(node) for node in nodes]
    return [text for text in texts if text and len(text.split()) >= MIN_PROSE_WORDS]


def code_blocks(source: str) -> list[str]:
    lines = source.splitlines()
    blocks = ["\n".join(lines[start:start + CODE_LINES]) for start in range(0, len(lines), CODE_LINES)]
    return [block for block in blocks if len(block.split()) >= MIN_PROSE_WORDS]


def boilerplate(rng: random.Random) -> str:
    return " | ".join(rng.choice(BOILERPLATE) for _ in range(rng.randint(15, 60)))


def keyword_spam(rng: random.Random) -> str:
    return " ".join(rng.choice(SPAM) for _ in range(rng.randint(30, 150)))


def shuffled(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def garbled(text: str, rng: random.Random) -> str:
    noise = string.ascii_letters + string.digits + "#$%&@~^"
    return " ".join("".join(rng.choice(noise) for _ in range(len(word))) if rng.random() < 0.6 else word
                    for word in text.split())


def labelled_set(per_class: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(positive texts, negative texts), ``per_class`` of each."""
    rng = random.Random(seed)
    prose, code = [], []
    for source in stdlib_sources():
        prose += docstrings(source)
        code += code_blocks(source)
        if len(prose) >= per_class + 2 and len(code) >= per_class + 2:
            break  # each list then holds a half for the positives and a half for the negatives
    rng.shuffle(prose)
    rng.shuffle(code)
    half = per_class // 2
    positive = [(prose if i % 2 else code)[i // 2] for i in range(per_class)]
    # The negatives that reuse real text take texts that are not positives, each once.
    donors = iter(prose[half + 1:] + code[half + 1:])
    makers = [lambda: boilerplate(rng), lambda: keyword_spam(rng), lambda: shuffled(next(donors), rng),
              lambda: garbled(next(donors), rng)]
    negative = [makers[i % len(makers)]() for i in range(per_class)]
    return positive, negative
