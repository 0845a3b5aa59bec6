"""The floors of the house: imports point down, never up.

    foundation/   imports none of tools/, pretrain/, qwen_kernels/
    qwen_kernels/ imports none of foundation/, tools/, pretrain/ (torch and the standard library)
    tools/        imports nothing of pretrain/ or qwen_kernels/ (the data tools never load the trainer),
                  except the language-model scorer and its benchmark (tools/score/, tools/bench/),
                  which load this project's model
    pretrain/     imports nothing of tools/ (qwen-bench names the data benchmarks as strings)

Every ``import`` and ``from ... import`` statement is read from the source (also those inside
functions, which run later but are dependencies all the same); a failure lists each offending
import as ``file:line``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("foundation", "pretrain", "qwen_kernels", "tools")
FORBIDDEN = {
    "foundation": {"tools", "pretrain", "qwen_kernels"},
    "qwen_kernels": {"foundation", "tools", "pretrain"},
    "tools": {"pretrain", "qwen_kernels"},
    "pretrain": {"tools"},
}
# Folders allowed one upward import each: the perplexity scorer runs the trained model.
EXCEPTIONS = {("tools", "pretrain"): ("tools/score/", "tools/bench/")}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def upward_imports(package: str) -> list[str]:
    def excepted(path: Path, imported: str) -> bool:
        return str(path.relative_to(REPO)).startswith(EXCEPTIONS.get((package, imported), ()))

    return [f"{path.relative_to(REPO)}:{line}: imports {imported}"
            for path in sorted((REPO / package).rglob("*.py"))
            for line, imported in imported_packages(path)
            if imported in FORBIDDEN[package] and not excepted(path, imported)]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_up_from(package):
    offending = upward_imports(package)
    assert not offending, f"{package}/ may not import {sorted(FORBIDDEN[package])}:\n" + "\n".join(offending)


def test_the_check_sees_an_upward_import(tmp_path):
    """The reader of imports finds both statement forms, nested ones included."""
    module = tmp_path / "module.py"
    module.write_text("import os\nfrom tools.stage import Document\n\ndef late():\n    import pretrain.config\n")
    assert imported_packages(module) == [(1, "os"), (2, "tools"), (5, "pretrain")]


def test_every_package_is_checked():
    assert {path.parent.name for path in REPO.glob("*/__init__.py")} - {"tests"} == set(PACKAGES)
    assert set(FORBIDDEN) == set(PACKAGES)
