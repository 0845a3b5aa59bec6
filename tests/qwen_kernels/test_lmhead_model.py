"""The Qwen model's loss on the real vocabulary: padding rows stay out of the softmax on both
paths, and ``model.kernels: fused`` (the fused output layer + loss) gives the loss and gradients
of ``model.kernels: torch`` from the same weights; generation still gets logits."""

from __future__ import annotations

import pytest
import torch

from pretrain.config import ModelConfig, ParallelConfig, fill_from_preset
from pretrain.model.builder import build_model
from tests.pretrain.conftest import single_process_groups  # noqa: F401  (fixture)

SEQ, BATCH, VOCAB, ROWS = 16, 2, 151_851, 151_936


def tiny(kernels: str):
    model = ModelConfig(preset="qwen-tiny", seq_length=SEQ, kernels=kernels)
    fill_from_preset(model)
    return build_model(model, ParallelConfig())


@pytest.mark.usefixtures("ops", "single_process_groups")
def test_fused_loss_equals_torch_loss_without_padding_rows_in_the_softmax():
    torch.manual_seed(0)
    models = {mode: tiny(mode) for mode in ("torch", "fused")}
    models["fused"].load_state_dict(models["torch"].state_dict())
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ))
    tokens[0, 0] = VOCAB - 1
    positions = torch.arange(SEQ).expand(BATCH, SEQ)
    losses, grads = {}, {}
    for mode, model in models.items():
        losses[mode] = model(tokens, positions, None, labels=tokens)
        losses[mode].mean().backward()
        grads[mode] = {name: p.grad for name, p in model.named_parameters()}
    assert losses["fused"].shape == (BATCH, SEQ)
    torch.testing.assert_close(losses["fused"], losses["torch"], rtol=1e-5, atol=1e-5)
    for name, grad in grads["torch"].items():
        torch.testing.assert_close(grads["fused"][name], grad, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
    assert torch.all(grads["torch"]["output_layer.weight"][VOCAB:] == 0)  # padding rows: not in the softmax

    # The loss is that of the real rows' logits (megatron-core's own logits, no labels given).
    with torch.no_grad():
        logits = models["torch"](tokens, positions, None)
    assert logits.shape == (BATCH, SEQ, ROWS)  # generation's path: logits, padding rows included
    expected = torch.nn.functional.cross_entropy(logits[..., :VOCAB].flatten(0, 1).double(), tokens.flatten(),
                                                 reduction="none").view(BATCH, SEQ)
    torch.testing.assert_close(losses["torch"].detach().double(), expected, rtol=1e-5, atol=1e-5)
