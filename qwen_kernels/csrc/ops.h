// Declarations of the fused Qwen kernels. bindings.cpp checks the inputs and picks the device;
// the functions below assume contiguous, same-device, same-dtype tensors of matching shapes.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace qwen_kernels {

// RMSNorm over the last dimension: y = x * rstd * weight, rstd = rsqrt(mean(x^2) + eps) per row,
// computed in fp32 (fp64 for double inputs). Returns (y, rstd); rstd is kept for the backward.
std::tuple<at::Tensor, at::Tensor> rmsnorm_forward_cpu(const at::Tensor& x, const at::Tensor& weight,
                                                       double eps);
// Returns (dx, dweight).
std::tuple<at::Tensor, at::Tensor> rmsnorm_backward_cpu(const at::Tensor& dy, const at::Tensor& x,
                                                        const at::Tensor& weight,
                                                        const at::Tensor& rstd);

// SwiGLU on a gated fc1 output [..., 2F] = [gate | up]: out [..., F] = silu(gate) * up.
at::Tensor swiglu_forward_cpu(const at::Tensor& fc1);
// Returns d(fc1) [..., 2F] from d(out) [..., F]; written over fc1 itself when in_place.
at::Tensor swiglu_backward_cpu(const at::Tensor& dout, const at::Tensor& fc1, bool in_place);

// Rotate-half rotary embedding of x [seq, batch, heads, dim] by angles freqs [seq, 1, 1, dim]:
// out = x * cos(freqs) + rotate_half(x) * sin(freqs). The backward applies the transpose.
at::Tensor rotary_forward_cpu(const at::Tensor& x, const at::Tensor& freqs);
at::Tensor rotary_backward_cpu(const at::Tensor& dout, const at::Tensor& freqs);

// Output layer + cross-entropy over one shard of the vocabulary without the [tokens x vocab]
// logits. hidden [tokens, hidden], weight [rows, hidden] (this rank's rows; global ids start at
// vocab_start; only the first valid_rows are real tokens, the rest padding left out of the
// softmax), labels [tokens] int64 global ids. The forward returns per token, in the accumulate
// dtype, this shard's (max logit, sum of exp(logit - max), logit of the label or 0 when the label
// is not in the shard). The backward takes d loss [tokens] and the global log-sum-exp [tokens]
// (both in the accumulate dtype) and returns (d hidden, d weight); padding rows get zero.
std::tuple<at::Tensor, at::Tensor, at::Tensor> lmhead_forward_cpu(const at::Tensor& hidden, const at::Tensor& weight,
                                                                  const at::Tensor& labels, int64_t vocab_start,
                                                                  int64_t valid_rows, bool input_dtype_gemm);
std::tuple<at::Tensor, at::Tensor> lmhead_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& hidden,
                                                       const at::Tensor& weight, const at::Tensor& labels,
                                                       const at::Tensor& lse, int64_t vocab_start,
                                                       int64_t valid_rows, bool input_dtype_gemm);

#ifdef QWEN_KERNELS_WITH_CUDA
std::tuple<at::Tensor, at::Tensor> rmsnorm_forward_cuda(const at::Tensor& x, const at::Tensor& weight,
                                                        double eps);
std::tuple<at::Tensor, at::Tensor> rmsnorm_backward_cuda(const at::Tensor& dy, const at::Tensor& x,
                                                         const at::Tensor& weight,
                                                         const at::Tensor& rstd);
at::Tensor swiglu_forward_cuda(const at::Tensor& fc1);
at::Tensor swiglu_backward_cuda(const at::Tensor& dout, const at::Tensor& fc1, bool in_place);
at::Tensor rotary_forward_cuda(const at::Tensor& x, const at::Tensor& freqs);
at::Tensor rotary_backward_cuda(const at::Tensor& dout, const at::Tensor& freqs);
std::tuple<at::Tensor, at::Tensor, at::Tensor> lmhead_forward_cuda(const at::Tensor& hidden, const at::Tensor& weight,
                                                                   const at::Tensor& labels, int64_t vocab_start,
                                                                   int64_t valid_rows);
std::tuple<at::Tensor, at::Tensor> lmhead_backward_cuda(const at::Tensor& grad_loss, const at::Tensor& hidden,
                                                        const at::Tensor& weight, const at::Tensor& labels,
                                                        const at::Tensor& lse, int64_t vocab_start,
                                                        int64_t valid_rows);
#endif

}  // namespace qwen_kernels
