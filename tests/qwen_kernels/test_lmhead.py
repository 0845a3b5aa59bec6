"""The fused output layer + cross-entropy equals the materialized float64 reference: loss and both
gradients, on awkward shapes, the real 151,936-row vocabulary, padding rows, ignored labels, bf16,
and across a 2-rank tensor-parallel split of the vocabulary (gloo)."""

from __future__ import annotations

import functools
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from qwen_kernels import reference
from qwen_kernels.lmhead import IGNORE_INDEX, VocabShard, fused_linear_cross_entropy

pytestmark = pytest.mark.usefixtures("ops")

QWEN_ROWS, QWEN_VOCAB = 151_936, 151_851  # megatron's padded rows at TP=1, and the real tokens


def problem(tokens, hidden, rows, vocab_size, dtype=torch.float32, seed=0, ignored=0):
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(tokens, hidden, generator=generator).to(dtype)
    w = (torch.randn(rows, hidden, generator=generator) * 0.5).to(dtype)
    labels = torch.randint(0, vocab_size, (tokens,), generator=generator)
    labels[torch.randperm(tokens, generator=generator)[:ignored]] = IGNORE_INDEX
    return h, w, labels


def loss_and_grads(fn, h, w, labels, vocab_size, grad_seed=1):
    h, w = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    loss = fn(h, w, labels, vocab_size)
    grad = torch.rand(loss.shape, generator=torch.Generator().manual_seed(grad_seed)).to(loss)
    loss.backward(grad)
    return loss.detach(), h.grad, w.grad


def assert_matches_float64(h, w, labels, vocab_size, rtol, atol, fused_op=fused_linear_cross_entropy):
    fused = loss_and_grads(fused_op, h, w, labels, vocab_size)
    exact = loss_and_grads(reference.linear_cross_entropy, h.double(), w.double(), labels, vocab_size)
    for name, got, want in zip(("loss", "d hidden", "d weight"), fused, exact):
        scale = want.abs().max().item()
        torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol * scale, msg=lambda m: f"{name}: {m}")
    return fused


# (tokens, hidden, rows, real vocabulary): sizes off every chunk and vector width; the last
# splits the vocabulary into several chunks with a short last one.
SHAPES = [(1, 8, 5, 5), (7, 33, 301, 290), (130, 64, 1000, 999), (700, 8, 9000, 8990)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fp32_loss_and_gradients_equal_the_float64_reference(shape):
    assert_matches_float64(*problem(*shape), shape[3], rtol=1e-5, atol=1e-5)


def test_the_real_vocabulary_with_padding_rows_left_out():
    h, w, labels = problem(37, 16, QWEN_ROWS, QWEN_VOCAB, ignored=3)
    labels[0], labels[1] = QWEN_VOCAB - 1, 0  # the last real token and the first
    loss, _, dweight = assert_matches_float64(h, w, labels, QWEN_VOCAB, rtol=1e-5, atol=1e-5)
    assert torch.all(dweight[QWEN_VOCAB:] == 0)  # padding rows: no part in the softmax, no gradient
    # Had the 85 padding rows been in the softmax, the loss would differ measurably.
    with_padding = reference.linear_cross_entropy(h.double(), w.double(), labels)
    assert (with_padding - loss.double())[labels != IGNORE_INDEX].min() > 1e-4


def test_ignored_labels_give_zero_loss_and_zero_gradient():
    h, w, labels = problem(40, 24, 500, 500, ignored=40)
    loss, dhidden, dweight = loss_and_grads(fused_linear_cross_entropy, h, w, labels, 500)
    assert torch.all(loss == 0) and torch.all(dhidden == 0) and torch.all(dweight == 0)

    # The training loop's loss mask (masked_mean) zeroes the same tokens' gradient.
    h, w, labels = problem(40, 24, 500, 500)
    mask = torch.ones(40)
    mask[::3] = 0
    h.requires_grad_()
    w.requires_grad_()
    (fused_linear_cross_entropy(h, w, labels, 500) * mask).sum().backward()
    assert torch.all(h.grad[mask == 0] == 0) and torch.all(h.grad[mask == 1].abs().sum(-1) > 0)


def test_gradcheck_in_float64():
    h, w, labels = problem(5, 6, 9, 7, dtype=torch.float64, ignored=1)
    assert torch.autograd.gradcheck(lambda a, b: fused_linear_cross_entropy(a, b, labels, 7),
                                    (h.requires_grad_(), w.requires_grad_()))


@pytest.mark.parametrize("input_dtype_gemm", [True, False], ids=["input-dtype-gemms", "fp32-gemms"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("shape", [(130, 64, 1000, 999), (37, 16, QWEN_ROWS, QWEN_VOCAB)],
                         ids=["awkward", "real-vocabulary"])
def test_bf16_and_fp16_are_within_one_rounding_of_the_float64_reference(shape, dtype, input_dtype_gemm):
    # Both GEMM routes, whichever this CPU defaults to, in bf16 and fp16. The kernels accumulate
    # in fp32; the gradients are returned in the input dtype (bf16: 8 mantissa bits), and with
    # input-dtype GEMMs the logits and the softmax gradient are rounded to it as eager rounds them.
    h, w, labels = problem(*shape, dtype=dtype)
    fused_op = functools.partial(fused_linear_cross_entropy, input_dtype_gemm=input_dtype_gemm)
    loss, *_ = assert_matches_float64(h, w, labels, shape[3], rtol=1e-2, atol=1e-2, fused_op=fused_op)
    assert loss.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA kernels are compile-checked only")
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)], ids=["fp32", "bf16"])
@pytest.mark.parametrize("shape", [(130, 64, 1000, 999), (2049, 128, QWEN_ROWS, QWEN_VOCAB)],
                         ids=["awkward", "real-vocabulary"])
def test_cuda_equals_the_float64_reference(ops, shape, dtype, tolerance):
    assert ops.built_with_cuda()
    h, w, labels = (t.cuda() for t in problem(*shape, dtype=dtype, ignored=5))
    fused = loss_and_grads(fused_linear_cross_entropy, h, w, labels, shape[3])
    exact = loss_and_grads(reference.linear_cross_entropy, h.double(), w.double(), labels, shape[3])
    for got, want in zip(fused, exact):
        torch.testing.assert_close(got.double(), want, rtol=tolerance, atol=tolerance * want.abs().max().item())


def test_hidden_with_leading_dimensions_and_sequence_first_labels():
    h, w, labels = problem(24, 16, 100, 100)
    loss = fused_linear_cross_entropy(h.view(6, 4, 16), w, labels.view(6, 4), 100)
    assert loss.shape == (6, 4)
    torch.testing.assert_close(loss.view(-1), reference.linear_cross_entropy(h, w, labels, 100))


def _tensor_parallel_worker(rank, port, h, w, labels, vocab_size, grad, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        rows = w.shape[0] // 2
        part = w[rank * rows:(rank + 1) * rows].clone().requires_grad_()
        hidden = h.clone().requires_grad_()
        loss = fused_linear_cross_entropy(hidden, part, labels,
                                          shard=VocabShard.of_rank(rows, vocab_size, rank, dist.group.WORLD))
        loss.backward(grad)
        # As numpy arrays: a tensor is passed as a file descriptor that the receiver fetches from
        # this process, which may have exited by then.
        queue.put((rank, *(t.detach().numpy() for t in (loss, hidden.grad, part.grad))))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_tensor_parallel_ranks_give_the_unsharded_loss_and_gradients():
    # 1000 rows split 500 / 500; the real vocabulary ends inside the second shard.
    h, w, labels = problem(50, 32, 1000, 960, ignored=2)
    labels[0], labels[1] = 499, 500  # either side of the shard boundary
    grad = torch.rand(50)
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    port = 29500 + os.getpid() % 1000
    workers = [context.Process(target=_tensor_parallel_worker, args=(rank, port, h, w, labels, 960, grad, queue))
               for rank in range(2)]
    for worker in workers:
        worker.start()
    results = {rank: [torch.from_numpy(a) for a in arrays] for rank, *arrays in (queue.get() for _ in workers)}
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    hidden, weight = h.clone().requires_grad_(), w.clone().requires_grad_()
    loss = fused_linear_cross_entropy(hidden, weight, labels, 960)
    loss.backward(grad)
    for rank in range(2):
        rank_loss, rank_dhidden, rank_dweight = results[rank]
        torch.testing.assert_close(rank_loss, loss.detach(), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(rank_dweight, weight.grad[rank * 500:(rank + 1) * 500], rtol=1e-5, atol=1e-6)
    # Each rank's d(hidden) is its partial sum; the output layer's all-reduce adds them.
    torch.testing.assert_close(results[0][1] + results[1][1], hidden.grad, rtol=1e-5, atol=1e-6)
