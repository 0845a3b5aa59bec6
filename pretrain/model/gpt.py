"""megatron-core's ``GPTModel`` with Qwen's loss: padding rows of the vocabulary stay out of the
softmax, and with fused kernels the output layer and the loss are one op.

The output layer has padding rows beyond the real tokens (pretrain/model/vocab.py: 151,936 rows for
Qwen's 151,851 tokens); left in the softmax, they would change the loss, and with a padding that
depends on the tensor-parallel size, make it depend on TP. Both paths here leave them out:
- ``torch``: the logits of padding rows are set to -inf before megatron-core's
  ``vocab_parallel_cross_entropy``;
- ``fused`` (:func:`qwen_kernels.lmhead.fused_linear_cross_entropy`): the kernels never compute them.
The fused path replaces the output layer's projection and the loss only where labels are given
(training and evaluation). Generation (no labels) still gets megatron-core's logits, for the
positions it asks for, padding rows included; its sampler never picks them
(pretrain/generation/sampling.py).
"""

from __future__ import annotations

import torch
from megatron.core import parallel_state
from megatron.core.models.gpt import GPTModel
from megatron.core.tensor_parallel.mappings import (
    copy_to_tensor_model_parallel_region,
    gather_from_sequence_parallel_region,
)

from qwen_kernels.lmhead import VocabShard, fused_linear_cross_entropy


class QwenGPTModel(GPTModel):
    def __init__(self, *args, real_vocab_size: int, fused_loss: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.real_vocab_size = real_vocab_size
        self.fused_loss = fused_loss

    def _vocab_shard(self) -> VocabShard:
        """This rank's rows of the output layer (megatron-core's split: rank r holds rows r * rows on)."""
        return VocabShard.of_rank(self.output_layer.weight.shape[0], self.real_vocab_size,
                                  parallel_state.get_tensor_model_parallel_rank(),
                                  parallel_state.get_tensor_model_parallel_group())

    def compute_language_model_loss(self, labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        real_rows = self._vocab_shard().valid_rows
        if real_rows < logits.shape[-1]:
            # In place: the output layer's backward does not need its output, and a copy of the
            # logits would cost as much memory as the logits themselves.
            logits[..., real_rows:] = float("-inf")
        return super().compute_language_model_loss(labels, logits)

    def _fuses_loss(self, labels, kwargs) -> bool:
        return (self.fused_loss and labels is not None and self.post_process and not kwargs.get("mtp_in_postprocess")
                and self.config.mtp_num_layers is None and kwargs.get("inference_context") is None
                and not self.share_embeddings_and_output_weights)

    def _postprocess(self, hidden_states, input_ids, position_ids, labels, **kwargs):
        if not self._fuses_loss(labels, kwargs):
            return super()._postprocess(hidden_states, input_ids, position_ids, labels, **kwargs)
        # The output layer's input handling (ColumnParallelLinear): the sequence-parallel gather, or
        # an identity whose backward all-reduces d(hidden) over the tensor-parallel group.
        group = parallel_state.get_tensor_model_parallel_group()
        if self.output_layer.sequence_parallel:
            hidden_states = gather_from_sequence_parallel_region(hidden_states, tensor_parallel_output_grad=True,
                                                                 group=group)
        else:
            hidden_states = copy_to_tensor_model_parallel_region(hidden_states, group=group)
        labels_sb = labels.transpose(0, 1).contiguous()  # [b, s] -> [s, b], the hidden states' order
        loss = fused_linear_cross_entropy(hidden_states.contiguous(), self.output_layer.weight, labels_sb,
                                          shard=self._vocab_shard())
        return loss.transpose(0, 1).contiguous()  # [b, s], as megatron-core returns it
