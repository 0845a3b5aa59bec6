"""Known-harmless library messages are silenced by their exact text; anything else still shows."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import logging, warnings
import pretrain  # installs the filters
import deepspeed.comm.torch, sys
sys.modules["deepspeed.comm.torch"].print("DeepSpeed deepspeed.ops.comm.deepspeed_shm_comm_op built successfully")
sys.modules["deepspeed.comm.torch"].print("a DeepSpeed line that is not a banner")
warnings.warn("full scope is deprecated. Use empty cuda_graph_scope to capture the whole layer.")
warnings.warn("a real warning")
logging.basicConfig()
logging.getLogger("megatron.core.datasets.megatron_tokenizer").warning("You're using the legacy tokenizer system, ...")
logging.getLogger("megatron.core.datasets.megatron_tokenizer").warning("a real megatron warning")
"""


def test_known_noise_is_silenced_and_real_warnings_show():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    for noise in ("built successfully", "cuda_graph_scope", "legacy tokenizer"):
        assert noise not in output
    for real in ("a DeepSpeed line that is not a banner", "a real warning", "a real megatron warning"):
        assert real in output
