"""The outputs of ``qwen-data clean`` as digests, for the corpora and flags below, to prove that
the clean stage built from blocks writes byte-for-byte what the monolithic clean stage wrote.

``clean_golden.json`` was written by the monolithic stage (before the blocks existed) with
``python -m tests.tools.blocks.clean_golden``; ``test_clean_outputs_unchanged.py`` compares.
Each digest covers kept/, removed/ and rejected/ of every shard in input order (the corpus
directory replaced by ``ROOT``, as removed records name their source file) and the manifest counts.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from foundation.dispatch import run_subcommand
from tests.tools.adversarial import write_corpus
from tools.cli import COMMANDS
from tools.stage.runner import Shard

REPO = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).with_name("clean_golden.json")
PARAGRAPH = ("The river runs past the old mill, and the children of the village watch it from the bridge "
             "every evening. Their parents talk about the harvest that is to come, and about the weather that "
             "will have to hold for another week. The miller, who has lived by the water for most of his life, "
             "says that the river will be high this year. Nobody believes him, because he says the same thing "
             "with the same certainty every spring. Still, the farmers move their carts to higher ground, and "
             "the schoolteacher writes the date of the first flood on the blackboard, just in case he is right.")
WORDS = PARAGRAPH.replace(",", "").replace(".", "").lower().split()


def _prose(seed: int, words: int = 80) -> str:
    return " ".join(WORDS[(seed * 5 + i) % len(WORDS)] + ("." if i % 9 == 8 else "") for i in range(words))


def rule_records() -> list[dict]:
    """Documents that trip each rule on its own and several rules at once (the first rule in
    today's order names the removal)."""
    good = PARAGRAPH
    lines = [_prose(seed, 12) for seed in range(12)]
    return [
        {"id": "good", "text": good, "meta": {"k": 1}},
        {"id": "short", "text": "Too short to be a document, and that is all."},
        {"id": "lorem", "text": "Lorem ipsum dolor sit amet. " + good},
        {"id": "lorem-short", "text": "Lorem ipsum dolor sit amet."},
        {"id": "bullets", "text": "\n".join("- " + line for line in lines)},
        {"id": "ellipsis", "text": "\n".join(line + "..." for line in lines)},
        {"id": "no-terminal", "text": "\n".join(line.rstrip(".") + " and so" for line in lines)},
        {"id": "short-lines", "text": "\n".join(w + " " + w + "." for w in WORDS * 3)},
        {"id": "dup-lines", "text": "\n".join([lines[0]] * 6 + lines)},
        {"id": "symbols", "text": good + " #tag" * 40},
        {"id": "long-words", "text": " ".join(["incomprehensibilities"] * 60) + "."},
        {"id": "short-words", "text": " ".join(["a b c de"] * 30) + "."},
        {"id": "numbers", "text": " ".join(str(n) for n in range(80)) + " the end of the list and of it."},
        {"id": "no-stop", "text": " ".join(w for w in good.split() if w not in ("the", "and", "of")) + "."},
        {"id": "ngram", "text": ("quick fox " * 40) + good},
        {"id": "repeat5", "text": " ".join([_prose(2, 20)] * 4)},
        {"id": "html", "text": "<html><body><nav>Home | About</nav><article><p>" + good + "</p></article></body></html>"},
        {"id": "html-empty", "text": "<html><body><script>var x = 1;</script></body></html>"},
        {"id": "blank", "text": " \n\t \r\n "},
        {"id": "control", "text": "\x07\x08"},
        {"id": "nfkc", "text": "\uff21\uff22\uff23 " + good},
        {"id": "german", "text": "Der schnelle braune Fuchs springt über den faulen Hund und läuft in den Wald. " * 8},
        {"id": "chinese", "text": "北京是一座历史悠久的城市，有很多名胜古迹，每年吸引大量的游客前来参观。" * 4},
        {"id": "chinese-short", "text": "北京是一座城市。"},
        {"id": "good", "text": "a repeated id " + good},
        {"id": "fields", "text": good + " Again.", "language": "xx", "scores": {"old": 1}},
    ]


def corpora(root: Path) -> dict[str, Path]:
    """name -> an input directory or file (built under ``root``)."""
    rules = root / "rules" / "rules.jsonl"
    rules.parent.mkdir(parents=True)
    rules.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rule_records()), encoding="utf-8")
    sample, demo = root / "sample", root / "demo"
    shutil.copytree(REPO / "examples" / "data" / "sample", sample)
    shutil.copytree(REPO / "examples" / "demo" / "corpus", demo, ignore=shutil.ignore_patterns("*.md"))
    return {"rules": rules.parent, "sample": sample, "demo": demo, "adversarial": write_corpus(root / "adversarial")}


# (case name, corpus, flags of qwen-data clean)
CASES = [
    ("rules-defaults", "rules", []),
    ("rules-en-zh-nfkc", "rules", ["--languages", "en", "zh", "--unicode-form", "NFKC"]),
    ("rules-html-always-score", "rules", ["--html", "always", "--min-language-score", "0.9"]),
    ("rules-html-never-loose", "rules", ["--html", "never", "--no-lorem-ipsum", "--min-words", "5",
                                         "--max-bullet-lines", "1", "--language-field", "lang"]),
    ("rules-no-quality", "rules", ["--no-quality-filters"]),
    ("sample-pipeline", "sample", ["--languages", "en", "--min-words", "50"]),
    ("sample-defaults", "sample", []),
    ("demo-pipeline", "demo", ["--languages", "en", "zh", "--min-words", "50"]),
    ("adversarial-no-quality", "adversarial", ["--no-quality-filters"]),
    ("adversarial-defaults", "adversarial", []),
]


def output_digest(output: Path, root: Path) -> dict:
    plan = json.loads((output / ".work" / "plan.json").read_text(encoding="utf-8"))
    manifest = json.loads((output / "manifest.json").read_text(encoding="utf-8"))
    digests = {}
    for kind in ("kept", "removed", "rejected"):
        hashed = hashlib.sha256()
        for shard in map(Shard.from_json, plan["shards"]):
            path = output / kind / f"{shard.name}.jsonl"
            hashed.update(path.read_bytes().replace(str(root).encode(), b"ROOT"))
        digests[kind] = hashed.hexdigest()
    return {"counts": manifest["counts"], **digests}


def run_case(root: Path, inputs: Path, flags: list[str], output: Path) -> dict:
    code = run_subcommand("qwen-data", "", COMMANDS, ["clean", "--input", str(inputs), "--output", str(output),
                                                      "--workers", "1", "--no-progress", *flags])
    assert code == 0, f"qwen-data clean {flags} exited {code}"
    return output_digest(output, root)


def digests(root: Path) -> dict[str, dict]:
    paths = corpora(root)
    return {name: run_case(root, paths[corpus], flags, root / "out" / name) for name, corpus, flags in CASES}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        GOLDEN.write_text(json.dumps(digests(Path(directory)), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}", file=sys.stderr)
