// Tensor side of the CUDA kernels: device guard, stream, output allocation, dtype mapping and
// error reporting around the raw launchers of launch.h. Compiled only into CUDA builds.
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/full.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "../ops.h"
#include "launch.h"

namespace qwen_kernels {
namespace {

cuda::DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return cuda::DType::kFloat;
    case at::kDouble: return cuda::DType::kDouble;
    case at::kBFloat16: return cuda::DType::kBFloat16;
    case at::kHalf: return cuda::DType::kHalf;
    default: TORCH_CHECK(false, "qwen kernels: unsupported dtype ", t.scalar_type());
  }
}

at::ScalarType accumulate_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

int multiprocessors(const at::Tensor& t) {
  int count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, t.get_device()));
  return count;
}

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace

std::tuple<at::Tensor, at::Tensor> rmsnorm_forward_cuda(const at::Tensor& x, const at::Tensor& weight,
                                                        double eps) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t cols = x.size(-1);
  const int64_t rows = x.numel() / cols;
  at::Tensor y = at::empty_like(x);
  at::Tensor rstd = at::empty({rows}, x.options().dtype(accumulate_dtype(x)));
  if (rows > 0) {
    C10_CUDA_CHECK(cuda::rmsnorm_forward(dtype_of(x), x.const_data_ptr(), weight.const_data_ptr(),
                                         y.mutable_data_ptr(), rstd.mutable_data_ptr(), rows, cols, eps,
                                         current_stream()));
  }
  return {y, rstd};
}

std::tuple<at::Tensor, at::Tensor> rmsnorm_backward_cuda(const at::Tensor& dy, const at::Tensor& x,
                                                         const at::Tensor& weight, const at::Tensor& rstd) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t cols = x.size(-1);
  const int64_t rows = x.numel() / cols;
  at::Tensor dx = at::empty_like(x);
  at::Tensor dweight = at::empty_like(weight);
  if (rows == 0) return {dx, dweight.zero_()};
  int shared_limit = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&shared_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, x.get_device()));
  const size_t shared = cuda::rmsnorm_backward_shared_bytes(dtype_of(x), cols);
  // 256 bytes stay free for the block reduction's own shared buffer.
  TORCH_CHECK(shared + 256 <= static_cast<size_t>(shared_limit), "rmsnorm backward on CUDA: hidden size ", cols,
              " needs ", shared, " bytes of shared memory per block, the device allows ", shared_limit);
  const int64_t blocks = cuda::rmsnorm_backward_blocks(rows, multiprocessors(x));
  at::Tensor workspace = at::empty({blocks, cols}, rstd.options());
  C10_CUDA_CHECK(cuda::rmsnorm_backward(dtype_of(x), dy.const_data_ptr(), x.const_data_ptr(),
                                        weight.const_data_ptr(), rstd.const_data_ptr(), dx.mutable_data_ptr(),
                                        workspace.mutable_data_ptr(), dweight.mutable_data_ptr(), rows, cols,
                                        blocks, current_stream()));
  return {dx, dweight};
}

at::Tensor swiglu_forward_cuda(const at::Tensor& fc1) {
  const c10::cuda::CUDAGuard guard(fc1.device());
  const int64_t width = fc1.size(-1) / 2;
  const int64_t rows = fc1.numel() / (2 * width);
  std::vector<int64_t> shape = fc1.sizes().vec();
  shape.back() = width;
  at::Tensor out = at::empty(shape, fc1.options());
  if (rows > 0) {
    C10_CUDA_CHECK(cuda::swiglu_forward(dtype_of(fc1), fc1.const_data_ptr(), out.mutable_data_ptr(), rows, width,
                                        multiprocessors(fc1), current_stream()));
  }
  return out;
}

at::Tensor swiglu_backward_cuda(const at::Tensor& dout, const at::Tensor& fc1, bool in_place) {
  const c10::cuda::CUDAGuard guard(fc1.device());
  const int64_t width = fc1.size(-1) / 2;
  const int64_t rows = fc1.numel() / (2 * width);
  at::Tensor dfc1 = in_place ? fc1 : at::empty_like(fc1);
  if (rows > 0) {
    C10_CUDA_CHECK(cuda::swiglu_backward(dtype_of(fc1), dout.const_data_ptr(), fc1.const_data_ptr(),
                                         dfc1.mutable_data_ptr(), rows, width, multiprocessors(fc1),
                                         current_stream()));
  }
  return dfc1;
}

namespace {

at::Tensor rotary_cuda(const at::Tensor& in, const at::Tensor& freqs, bool transpose) {
  const c10::cuda::CUDAGuard guard(in.device());
  at::Tensor out = at::empty_like(in);
  if (in.numel() > 0) {
    C10_CUDA_CHECK(cuda::rotary(dtype_of(in), in.const_data_ptr(), freqs.const_data_ptr(), out.mutable_data_ptr(),
                                in.size(0), in.size(1) * in.size(2), in.size(3), transpose, current_stream()));
  }
  return out;
}

}  // namespace

at::Tensor rotary_forward_cuda(const at::Tensor& x, const at::Tensor& freqs) {
  return rotary_cuda(x, freqs, /*transpose=*/false);
}

at::Tensor rotary_backward_cuda(const at::Tensor& dout, const at::Tensor& freqs) {
  return rotary_cuda(dout, freqs, /*transpose=*/true);
}

// Fused output layer + cross-entropy: each vocabulary chunk's logits come from one ATen GEMM
// (cuBLAS) in the accumulate dtype (bf16/fp16 inputs: fp32 output and accumulation, mm's
// out_dtype), lmhead.cu reduces them.
namespace {

// Vocabulary rows per chunk: [tokens x chunk] logits of ~32M elements, multiples of 256 rows.
int64_t vocab_chunk_rows(int64_t tokens) {
  const int64_t rows = (int64_t{32} << 20) / std::max<int64_t>(tokens, 1);
  return std::clamp<int64_t>(rows / 256 * 256, 256, 65536);
}

cuda::DType accumulate_kind(const at::Tensor& t) {
  return accumulate_dtype(t) == at::kDouble ? cuda::DType::kDouble : cuda::DType::kFloat;
}

// out [tokens, rows] (accumulate dtype) = hidden W_rows^T.
void chunk_logits(at::Tensor& out, const at::Tensor& hidden, const at::Tensor& weight_rows) {
  if (out.scalar_type() == hidden.scalar_type()) {
    at::mm_out(out, hidden, weight_rows.t());
  } else {
    at::mm_out(out, hidden, weight_rows.t(), out.scalar_type());
  }
}

at::Tensor flat_view(const at::Tensor& buffer, int64_t rows, int64_t cols) {
  return buffer.narrow(0, 0, rows * cols).view({rows, cols});
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> lmhead_forward_cuda(const at::Tensor& hidden, const at::Tensor& weight,
                                                                   const at::Tensor& labels, int64_t vocab_start,
                                                                   int64_t valid_rows) {
  const c10::cuda::CUDAGuard guard(hidden.device());
  const int64_t tokens = hidden.size(0);
  const auto options = hidden.options().dtype(accumulate_dtype(hidden));
  at::Tensor running_max = at::full({tokens}, -std::numeric_limits<double>::infinity(), options);
  at::Tensor running_sum = at::zeros({tokens}, options);
  at::Tensor target = at::zeros({tokens}, options);
  if (tokens == 0 || valid_rows == 0) return {running_max, running_sum, target};
  const int64_t chunk = std::min(vocab_chunk_rows(tokens), valid_rows);
  at::Tensor buffer = at::empty({tokens * chunk}, options);
  for (int64_t first = 0; first < valid_rows; first += chunk) {
    const int64_t rows = std::min(chunk, valid_rows - first);
    at::Tensor logits = flat_view(buffer, tokens, rows);
    chunk_logits(logits, hidden, weight.narrow(0, first, rows));
    C10_CUDA_CHECK(cuda::lmhead_log_sum_exp(accumulate_kind(hidden), logits.const_data_ptr(), tokens, rows,
                                            labels.const_data_ptr<int64_t>(), vocab_start + first,
                                            running_max.mutable_data_ptr(), running_sum.mutable_data_ptr(),
                                            target.mutable_data_ptr(), current_stream()));
  }
  return {running_max, running_sum, target};
}

std::tuple<at::Tensor, at::Tensor> lmhead_backward_cuda(const at::Tensor& grad_loss, const at::Tensor& hidden,
                                                        const at::Tensor& weight, const at::Tensor& labels,
                                                        const at::Tensor& lse, int64_t vocab_start,
                                                        int64_t valid_rows) {
  const c10::cuda::CUDAGuard guard(hidden.device());
  const int64_t tokens = hidden.size(0);
  at::Tensor dweight = at::zeros_like(weight);  // padding rows keep a zero gradient
  at::Tensor dhidden = at::zeros(hidden.sizes(), lse.options());  // accumulated over chunks in fp32/fp64
  if (tokens == 0 || valid_rows == 0) return {dhidden.to(hidden.scalar_type()), dweight};
  const int64_t chunk = std::min(vocab_chunk_rows(tokens), valid_rows);
  at::Tensor buffer = at::empty({tokens * chunk}, lse.options());
  const bool widened = hidden.scalar_type() != lse.scalar_type();
  // d logits in the GEMM input dtype: over the logits themselves when that is the accumulate dtype.
  at::Tensor dbuffer = widened ? at::empty({tokens * chunk}, hidden.options()) : buffer;
  const int sms = multiprocessors(hidden);
  for (int64_t first = 0; first < valid_rows; first += chunk) {
    const int64_t rows = std::min(chunk, valid_rows - first);
    const at::Tensor weight_rows = weight.narrow(0, first, rows);
    at::Tensor logits = flat_view(buffer, tokens, rows);
    at::Tensor dlogits = flat_view(dbuffer, tokens, rows);
    chunk_logits(logits, hidden, weight_rows);
    C10_CUDA_CHECK(cuda::lmhead_softmax_gradient(dtype_of(hidden), logits.const_data_ptr(), dlogits.mutable_data_ptr(),
                                                 tokens, rows, labels.const_data_ptr<int64_t>(), vocab_start + first,
                                                 lse.const_data_ptr(), grad_loss.const_data_ptr(), sms,
                                                 current_stream()));
    // d W rows = dlogits^T hidden (rounded once into W's dtype); d hidden += dlogits W rows.
    at::Tensor dweight_rows = dweight.narrow(0, first, rows);
    at::mm_out(dweight_rows, dlogits.t(), hidden);
    if (widened) {
      dhidden.add_(at::mm(dlogits, weight_rows, dhidden.scalar_type()));
    } else {
      dhidden.addmm_(dlogits, weight_rows);
    }
  }
  return {widened ? dhidden.to(hidden.scalar_type()) : dhidden, dweight};
}

}  // namespace qwen_kernels
