"""``qwen-bench kernels`` runs end to end at toy sizes and prints one row per op, pass and
implementation (figures themselves go to docs/benchmarks.md, never into tests)."""

from __future__ import annotations

import re

import pytest
import torch

from foundation.dispatch import run_subcommand
from pretrain.cli.bench import COMMANDS


@pytest.mark.usefixtures("ops")
def test_qwen_bench_kernels_prints_every_op_pass_and_implementation(capsys):
    argv = ["kernels", "--tokens", "8", "--hidden", "64", "--ffn", "96", "--heads", "2", "--head-dim", "16",
            "--repeats", "1", "--no-compile", "--model-preset", "none", "--dtype", "fp32"]
    assert run_subcommand("qwen-bench", "", COMMANDS, argv) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (RMSNorm|SwiGLU|RoPE) \| (forward\+backward|forward) \| ([^|]+) \| ([\d.]+) \|", out, re.M)
    found = {(op, phase, impl.strip()) for op, phase, impl, _ in rows}
    for op in ("RMSNorm", "SwiGLU", "RoPE"):
        for phase in ("forward", "forward+backward"):
            assert {(op, phase, "fused"), (op, phase, "eager")} <= found
    assert ("SwiGLU", "forward+backward", "fused, d(fc1) into fc1 (as in the MLP)") in found
    # PyTorch's own RMSNorm is an alternative every user has, so it is always compared.
    assert {("RMSNorm", "forward", "torch F.rms_norm"), ("RMSNorm", "forward+backward", "torch F.rms_norm")} <= found
    assert all(float(ms) > 0 for *_, ms in rows)
    assert "copy bandwidth" in out


def test_qwen_bench_kernels_rejects_an_unknown_op():
    with pytest.raises(SystemExit, match="unknown op"):
        run_subcommand("qwen-bench", "", COMMANDS, ["kernels", "--ops", "gelu", "--no-compile"])


@pytest.mark.usefixtures("ops")
def test_qwen_bench_kernels_lmhead_compares_time_and_memory_with_eager_and_megatron(capsys, monkeypatch):
    import os

    monkeypatch.setattr(os, "environ", dict(os.environ))  # the benchmark joins a one-process group
    argv = ["kernels", "--ops", "lmhead", "--tokens", "16", "--hidden", "32", "--vocab", "300", "--repeats", "1",
            "--no-compile", "--model-preset", "none", "--dtype", "fp32"]
    assert run_subcommand("qwen-bench", "", COMMANDS, argv) == 0
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([\d,]+) \| [\d.]+x \| [\d,]+ \| (?:\d+%|n/a) \|", out, re.M))
    assert {"fused", "eager", "megatron-core vocab_parallel_cross_entropy"} <= rows.keys()
    assert "16 tokens x hidden 32 x 300 rows" in out


@pytest.mark.usefixtures("ops")
def test_qwen_bench_kernels_lmhead_in_bf16_on_cpu_times_both_gemm_dtypes_and_names_the_default(capsys, monkeypatch):
    import os

    from qwen_kernels.lmhead import cpu_multiplies_natively

    monkeypatch.setattr(os, "environ", dict(os.environ))
    argv = ["kernels", "--ops", "lmhead", "--tokens", "16", "--hidden", "32", "--vocab", "300", "--repeats", "1",
            "--no-compile", "--model-preset", "none", "--dtype", "bf16", "--device", "cpu"]
    assert run_subcommand("qwen-bench", "", COMMANDS, argv) == 0
    fused = re.findall(r"^\| (fused[^|]*?) \| [\d,]+ \|", capsys.readouterr().out, re.M)
    default = "bf16" if cpu_multiplies_natively(torch.bfloat16) else "fp32"
    assert fused[0] == f"fused, GEMMs in {default} (default here)"
    assert sorted(fused[1:] + [fused[0].removesuffix(" (default here)")]) == \
        ["fused, GEMMs in bf16", "fused, GEMMs in fp32"]
