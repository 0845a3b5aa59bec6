"""The fused modules inside megatron-core: a Qwen layer built from the spec with ``kernels=fused``
computes what the ``kernels=torch`` layer computes, from the same checkpoint."""

from __future__ import annotations

import pytest
import torch
from megatron.core.transformer.spec_utils import build_module

from qwen_kernels import reference, selection
from qwen_kernels.build import KernelBuildError
from qwen_kernels.selection import use_fused_kernels
from pretrain.config import ModelConfig, ParallelConfig, fill_from_preset
from pretrain.model.builder import transformer_config
from pretrain.model.fused_modules import FusedRMSNorm, FusedRotarySelfAttention, FusedSwiGLUMLP
from pretrain.model.layer_spec import layer_modules, qwen_layer_spec
from tests.pretrain.conftest import single_process_groups  # noqa: F401  (fixture)

SEQ, BATCH = 12, 2


def qwen_config(precision: str = "fp32"):
    model = ModelConfig(preset="qwen-tiny")
    fill_from_preset(model)
    return transformer_config(model, ParallelConfig(), precision)


@pytest.mark.usefixtures("ops", "single_process_groups")
def test_fused_layer_matches_torch_layer_forward_and_backward():
    config = qwen_config()
    torch.manual_seed(0)
    torch_layer = build_module(qwen_layer_spec("sdpa", "torch"), config=config, layer_number=1)
    fused_layer = build_module(qwen_layer_spec("sdpa", "fused"), config=config, layer_number=1)
    fused_layer.load_state_dict(torch_layer.state_dict())  # same parameter names: checkpoints carry over
    assert isinstance(fused_layer.self_attention, FusedRotarySelfAttention)
    assert isinstance(fused_layer.mlp, FusedSwiGLUMLP)
    assert isinstance(fused_layer.input_layernorm, FusedRMSNorm)

    hidden = torch.randn(SEQ, BATCH, config.hidden_size)
    freqs = reference.rotary_angles(SEQ, config.kv_channels)
    grad = torch.randn(SEQ, BATCH, config.hidden_size)
    results = []
    for layer in (torch_layer, fused_layer):
        x = hidden.clone().requires_grad_()
        out, _ = layer(x, attention_mask=None, rotary_pos_emb=freqs)
        out.backward(grad)
        results.append((out.detach(), x.grad, {name: p.grad for name, p in layer.named_parameters()}))

    (out_t, dx_t, grads_t), (out_f, dx_f, grads_f) = results
    torch.testing.assert_close(out_f, out_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx_f, dx_t, rtol=1e-5, atol=1e-5)
    assert grads_f.keys() == grads_t.keys()
    for name in grads_t:
        torch.testing.assert_close(grads_f[name], grads_t[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.usefixtures("ops", "single_process_groups")
def test_fused_rmsnorm_module_matches_qwen_rmsnorm_in_bf16():
    from pretrain.model.norm import QwenRMSNorm

    config = qwen_config("bf16")
    x = torch.randn(SEQ, BATCH, config.hidden_size, dtype=torch.bfloat16)
    fused, plain = FusedRMSNorm(config, config.hidden_size, 1e-6), QwenRMSNorm(config, config.hidden_size, 1e-6)
    assert fused.weight.dtype == torch.bfloat16
    # QwenRMSNorm rounds before the weight multiply, the kernel after: one bf16 rounding apart.
    torch.testing.assert_close(fused(x), plain(x), rtol=1.6e-2, atol=1e-2)


@pytest.mark.usefixtures("single_process_groups")
def test_fused_mlp_rejects_a_non_swiglu_config():
    import dataclasses

    import torch.nn.functional as F
    from megatron.core.transformer.mlp import MLPSubmodules
    from megatron.core.tensor_parallel.layers import ColumnParallelLinear, RowParallelLinear

    config = dataclasses.replace(qwen_config(), activation_func=F.gelu)
    with pytest.raises(ValueError, match="gated_linear_unit=True and activation_func=F.silu"):
        FusedSwiGLUMLP(config, MLPSubmodules(linear_fc1=ColumnParallelLinear, linear_fc2=RowParallelLinear),
                       ffn_hidden_size=config.ffn_hidden_size)


@pytest.mark.usefixtures("ops")
def test_kernel_modes_pick_modules_and_say_which_once(capsys, monkeypatch):
    from megatron.core.transformer.attention import SelfAttention

    monkeypatch.setattr(selection, "_announced", set())
    assert layer_modules("torch")[1] is SelfAttention
    assert layer_modules("fused")[1] is FusedRotarySelfAttention
    # The session fixture built the extension, so auto finds it built for the CPU.
    assert use_fused_kernels("auto", torch.device("cpu")) is True
    assert use_fused_kernels("auto", torch.device("cpu")) is True
    said = capsys.readouterr().err.splitlines()
    assert said == ["kernels: torch (model.kernels=torch)",
                    "kernels: fused C++/CUDA kernels on cpu (model.kernels=fused)",
                    "kernels: fused on cpu (model.kernels=auto: fused kernels built for this device)"]


def test_kernel_modes_reject_unknown_names_and_unsupported_devices(ops):
    with pytest.raises(ValueError, match="model.kernels must be one of auto, fused, torch"):
        use_fused_kernels("fast")
    if not ops.built_with_cuda():
        with pytest.raises(KernelBuildError, match="built without cuda support"):
            use_fused_kernels("fused", torch.device("cuda"))
        assert use_fused_kernels("auto", torch.device("cuda")) is False
