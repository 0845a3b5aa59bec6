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
#endif

}  // namespace qwen_kernels
