"""``qwen-train`` puts torch's large host tensors on huge pages (few page-table entries for a
checkpoint writer's fork to copy), unless the user set otherwise."""

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pretrain.host_pages import VARIABLE

# After qwen-train's start (its config check, which builds no model): the variable torch's
# allocator reads, and how many bytes of a written 1 GiB tensor are on huge pages.
CONFIG = Path(__file__).resolve().parents[2] / "examples" / "configs" / "qwen-tiny.yaml"
PROBE = f"""
import os, torch
from pretrain.cli.train import run
assert run(["--check", "--world-size", "2", "--config", "{CONFIG}"]) == 0
def on_huge_pages():
    rollup = open("/proc/self/smaps_rollup").read()
    return int(rollup.split("AnonHugePages:")[1].split()[0]) * 1024
before = on_huge_pages()
block = torch.ones(2**28)
print(os.environ["{VARIABLE}"], on_huge_pages() - before)
"""
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


@functools.cache
def _probe(user_setting: str | None = None) -> tuple[str, int]:
    env = {name: value for name, value in os.environ.items() if name != VARIABLE}
    if user_setting is not None:
        env[VARIABLE] = user_setting
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    setting, huge_bytes = done.stdout.splitlines()[-1].split()
    return setting, int(huge_bytes)


def _kernel_gives_huge_pages_when_asked() -> bool:
    """The kernel's ``madvise`` mode (this machine's): huge pages where asked for, and only there."""
    return THP_MODE.exists() and "[madvise]" in THP_MODE.read_text()


def test_qwen_train_asks_for_huge_pages_and_keeps_the_users_setting():
    assert _probe()[0] == "1"
    assert _probe("0")[0] == "0"


@pytest.mark.skipif(not _kernel_gives_huge_pages_when_asked(),
                    reason="the kernel's transparent huge pages are not in madvise mode")
def test_a_gibibyte_tensor_lies_on_huge_pages_unless_the_user_says_no():
    assert _probe()[1] >= 0.99 * 2**30
    assert _probe("0")[1] == 0
