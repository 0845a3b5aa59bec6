"""Each top-level package of this project is installed by this project alone.

A second distribution that ships a module of the same name shadows ours or is shadowed by it,
depending on ``sys.path`` order, that is on the directory a command starts in. This happened:
transformers 5.25 requires Hugging Face's ``kernels`` package, which is why the fused kernels
are ``qwen_kernels``.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from tests.test_layers import PACKAGES, REPO


def test_no_installed_distribution_shares_a_top_level_name_with_ours():
    providers = importlib.metadata.packages_distributions()
    shared = {name: providers[name] for name in PACKAGES if set(providers.get(name, [])) - {"qwen-pretrain"}}
    assert not shared, f"top-level names also installed by other distributions: {shared}"


def test_transformers_hub_kernels_import_from_the_repository_root():
    """transformers imports Hugging Face's ``kernels`` when installed; run from the repository
    root (where ``python -m`` and pytest put it on ``sys.path``) it must find that one."""
    code = ("import transformers.integrations.hub_kernels, importlib.util; "
            "print(importlib.util.find_spec('qwen_kernels').origin)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("qwen_kernels/__init__.py")
