"""Build megatron-core's ``GPTModel`` with the Qwen layer spec from a :class:`ModelConfig`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core import parallel_state
from megatron.core.transformer.transformer_block import get_num_layers_to_build
from megatron.core.transformer.transformer_config import TransformerConfig

from qwen_kernels.selection import use_fused_kernels
from pretrain.config import ModelConfig, ParallelConfig
from pretrain.model.gpt import QwenGPTModel
from pretrain.model.layer_spec import qwen_block_spec
from pretrain.model.vocab import padded_vocab_size

_RECOMPUTE = {"none": {}, "selective": {"recompute_granularity": "selective"},
              "full": {"recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 1}}


def transformer_config(model: ModelConfig, parallel: ParallelConfig, precision: str = "fp32") -> TransformerConfig:
    bf16 = precision == "bf16"
    return TransformerConfig(
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        num_attention_heads=model.num_attention_heads,
        ffn_hidden_size=model.ffn_hidden_size,
        kv_channels=model.hidden_size // model.num_attention_heads,
        normalization="RMSNorm",
        layernorm_epsilon=model.norm_epsilon,
        add_bias_linear=False,
        add_qkv_bias=True,
        gated_linear_unit=True,
        activation_func=F.silu,
        hidden_dropout=model.hidden_dropout,
        attention_dropout=model.attention_dropout,
        init_method_std=model.init_method_std,  # output projections get std / sqrt(2 * layers)
        tensor_model_parallel_size=parallel.tp,
        pipeline_model_parallel_size=parallel.pp,
        sequence_parallel=parallel.sequence_parallel,
        bf16=bf16,
        params_dtype=torch.bfloat16 if bf16 else torch.float32,
        pipeline_dtype=torch.bfloat16 if bf16 else torch.float32,
        # The fused paths below need apex/TE/CUDA; our own kernels enter through the layer spec.
        use_cpu_initialization=True,
        bias_activation_fusion=False,
        bias_dropout_fusion=False,
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
        **_RECOMPUTE[parallel.recompute],
    )


def build_model(model: ModelConfig, parallel: ParallelConfig, precision: str = "fp32") -> QwenGPTModel:
    """This rank's part of the model (its pipeline stage, its tensor-parallel shard); with fused
    kernels its output layer and loss are one fused op (pretrain/model/gpt.py)."""
    config = transformer_config(model, parallel, precision)
    pp_rank = parallel_state.get_pipeline_model_parallel_rank()
    stage_layers = get_num_layers_to_build(config, pp_rank=pp_rank)
    return QwenGPTModel(
        real_vocab_size=model.vocab_size,
        fused_loss=use_fused_kernels(model.kernels),
        config=config,
        transformer_layer_spec=qwen_block_spec(stage_layers, model.attention_backend, model.kernels),
        vocab_size=padded_vocab_size(model, parallel.tp),
        max_sequence_length=model.seq_length,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        share_embeddings_and_output_weights=False,
        position_embedding_type="rope",
        rotary_percent=1.0,
        rotary_base=int(model.rotary_base),
    )


def count_parameters(model: ModelConfig) -> dict[str, int]:
    """Analytic parameter count of the full (unsharded) Qwen model, by part."""
    hidden, ffn, layers = model.hidden_size, model.ffn_hidden_size, model.num_layers
    vocab = padded_vocab_size(model, 1)
    per_layer = (hidden * 3 * hidden + 3 * hidden  # QKV with bias
                 + hidden * hidden  # attention output projection
                 + 3 * hidden * ffn  # gate, up, down
                 + 2 * hidden)  # two RMSNorms
    parts = {"input_embedding": vocab * hidden, "layers": per_layer * layers, "final_norm": hidden,
             "output_layer": vocab * hidden}
    parts["total"] = sum(parts.values())
    return parts
