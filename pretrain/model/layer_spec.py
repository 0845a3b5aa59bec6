"""The Qwen (v1) transformer layer as a megatron-core ``ModuleSpec``.

Pre-norm RMSNorm -> self-attention (QKV with bias, RoPE applied by megatron-core's SelfAttention,
no bias on the output projection) -> residual -> RMSNorm -> SwiGLU MLP (gated fc1 = [gate; up],
no bias) -> residual. Biases are governed by the TransformerConfig (``add_bias_linear=False``,
``add_qkv_bias=True``); the modules chosen here are where fused kernels and the attention backend
enter, so swapping them is a spec change, never a fork.
"""

from __future__ import annotations

from megatron.core.models.gpt.gpt_layer_specs import get_bias_dropout_add
from megatron.core.tensor_parallel.layers import ColumnParallelLinear, RowParallelLinear
from megatron.core.transformer.attention import SelfAttention, SelfAttentionSubmodules
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.identity_op import IdentityOp
from megatron.core.transformer.mlp import MLP, MLPSubmodules
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.transformer_block import TransformerBlockSubmodules
from megatron.core.transformer.transformer_layer import TransformerLayer, TransformerLayerSubmodules

from qwen_kernels.selection import use_fused_kernels
from pretrain.model.attention import core_attention_class
from pretrain.model.norm import QwenRMSNorm


def layer_modules(kernels: str = "auto") -> tuple[type, type, type]:
    """(norm, self-attention, MLP) classes for ``model.kernels`` (auto | fused | torch)."""
    if use_fused_kernels(kernels):
        from pretrain.model.fused_modules import FusedRMSNorm, FusedRotarySelfAttention, FusedSwiGLUMLP

        return FusedRMSNorm, FusedRotarySelfAttention, FusedSwiGLUMLP
    return QwenRMSNorm, SelfAttention, MLP


def qwen_layer_spec(attention_backend: str = "auto", kernels: str = "auto") -> ModuleSpec:
    norm, self_attention, mlp = layer_modules(kernels)
    return ModuleSpec(
        module=TransformerLayer,
        submodules=TransformerLayerSubmodules(
            input_layernorm=norm,
            self_attention=ModuleSpec(
                module=self_attention,
                params={"attn_mask_type": AttnMaskType.causal},
                submodules=SelfAttentionSubmodules(
                    linear_qkv=ColumnParallelLinear,
                    core_attention=core_attention_class(attention_backend),
                    linear_proj=RowParallelLinear,
                    q_layernorm=IdentityOp,
                    k_layernorm=IdentityOp,
                ),
            ),
            self_attn_bda=get_bias_dropout_add,
            pre_mlp_layernorm=norm,
            mlp=ModuleSpec(module=mlp, submodules=MLPSubmodules(linear_fc1=ColumnParallelLinear,
                                                                linear_fc2=RowParallelLinear)),
            mlp_bda=get_bias_dropout_add,
        ),
    )


def qwen_block_spec(num_layers: int, attention_backend: str = "auto",
                    kernels: str = "auto") -> TransformerBlockSubmodules:
    """This pipeline stage's ``num_layers`` layers plus the final RMSNorm (built on the last stage
    only; megatron would otherwise pick its own norm class)."""
    layer = qwen_layer_spec(attention_backend, kernels)
    return TransformerBlockSubmodules(layer_specs=[layer] * num_layers, layer_norm=layer_modules(kernels)[0])
