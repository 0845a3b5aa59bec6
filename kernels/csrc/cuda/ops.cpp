// Tensor side of the CUDA kernels: device guard, stream, output allocation, dtype mapping and
// error reporting around the raw launchers of launch.h. Compiled only into CUDA builds.
#include <ATen/cuda/CUDABlas.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <limits>
#include <type_traits>
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

// Fused output layer + cross-entropy: cuBLAS computes each vocabulary chunk's logits in the
// accumulate dtype (bf16/fp16 inputs, fp32 output and accumulation), lmhead.cu reduces them.
namespace {

// Row-major C [m, n] = op(A) op(B) + beta C, for cuBLAS's column-major GEMM: C^T = op(B)^T op(A)^T.
template <typename T, typename C>
void gemm_rows(bool a_transposed, bool b_transposed, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
               const T* b, int64_t ldb, at::opmath_type<T> beta, C* c, int64_t ldc) {
  const char transa = b_transposed ? 't' : 'n';
  const char transb = a_transposed ? 't' : 'n';
  if constexpr (std::is_same_v<T, C>) {
    at::cuda::blas::gemm<T>(transa, transb, n, m, k, at::opmath_type<T>(1), b, ldb, a, lda, beta, c, ldc);
  } else {
    at::cuda::blas::gemm<T, C>(transa, transb, n, m, k, at::opmath_type<T>(1), b, ldb, a, lda, beta, c, ldc);
  }
}

// Vocabulary rows per chunk: [tokens x chunk] logits of ~32M elements, multiples of 256 rows.
int64_t vocab_chunk_rows(int64_t tokens) {
  const int64_t rows = (int64_t{32} << 20) / std::max<int64_t>(tokens, 1);
  return std::clamp<int64_t>(rows / 256 * 256, 256, 65536);
}

// Calls fn(T{}) with T the ATen element type of t.
template <typename Fn>
void dispatch_lmhead(const at::Tensor& t, Fn&& fn) {
  switch (t.scalar_type()) {
    case at::kFloat: return fn(float{});
    case at::kDouble: return fn(double{});
    case at::kBFloat16: return fn(at::BFloat16{});
    case at::kHalf: return fn(at::Half{});
    default: TORCH_CHECK(false, "qwen kernels: unsupported dtype ", t.scalar_type());
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> lmhead_forward_cuda(const at::Tensor& hidden, const at::Tensor& weight,
                                                                   const at::Tensor& labels, int64_t vocab_start,
                                                                   int64_t valid_rows) {
  const c10::cuda::CUDAGuard guard(hidden.device());
  const int64_t tokens = hidden.size(0), width = hidden.size(1);
  const auto options = hidden.options().dtype(accumulate_dtype(hidden));
  at::Tensor running_max = at::full({tokens}, -std::numeric_limits<double>::infinity(), options);
  at::Tensor running_sum = at::zeros({tokens}, options);
  at::Tensor target = at::zeros({tokens}, options);
  if (tokens == 0) return {running_max, running_sum, target};
  const int64_t chunk = vocab_chunk_rows(tokens);
  at::Tensor logits = at::empty({tokens * std::min(chunk, std::max<int64_t>(valid_rows, 1))}, options);
  const auto acc = accumulate_dtype(hidden) == at::kDouble ? cuda::DType::kDouble : cuda::DType::kFloat;
  dispatch_lmhead(hidden, [&](auto tag) {
    using T = decltype(tag);
    using acc_t = at::opmath_type<T>;
    for (int64_t first = 0; first < valid_rows; first += chunk) {
      const int64_t rows = std::min(chunk, valid_rows - first);
      gemm_rows<T, acc_t>(false, true, tokens, rows, width, hidden.const_data_ptr<T>(), width,
                          weight.const_data_ptr<T>() + first * width, width, acc_t(0),
                          logits.mutable_data_ptr<acc_t>(), rows);
      C10_CUDA_CHECK(cuda::lmhead_log_sum_exp(acc, logits.const_data_ptr(), tokens, rows,
                                              labels.const_data_ptr<int64_t>(), vocab_start + first,
                                              running_max.mutable_data_ptr(), running_sum.mutable_data_ptr(),
                                              target.mutable_data_ptr(), current_stream()));
    }
  });
  return {running_max, running_sum, target};
}

std::tuple<at::Tensor, at::Tensor> lmhead_backward_cuda(const at::Tensor& grad_loss, const at::Tensor& hidden,
                                                        const at::Tensor& weight, const at::Tensor& labels,
                                                        const at::Tensor& lse, int64_t vocab_start,
                                                        int64_t valid_rows) {
  const c10::cuda::CUDAGuard guard(hidden.device());
  const int64_t tokens = hidden.size(0), width = hidden.size(1);
  at::Tensor dweight = at::zeros_like(weight);  // padding rows keep a zero gradient
  at::Tensor dhidden = at::zeros({tokens, width}, lse.options());  // accumulated over chunks in fp32/fp64
  if (tokens == 0 || valid_rows == 0) return {dhidden.to(hidden.scalar_type()), dweight};
  const int64_t chunk = std::min(vocab_chunk_rows(tokens), valid_rows);
  at::Tensor logits = at::empty({tokens * chunk}, lse.options());
  const bool widened = hidden.scalar_type() != lse.scalar_type();
  at::Tensor dlogits = widened ? at::empty({tokens * chunk}, hidden.options()) : logits;
  const int sms = multiprocessors(hidden);
  dispatch_lmhead(hidden, [&](auto tag) {
    using T = decltype(tag);
    using acc_t = at::opmath_type<T>;
    const T* h = hidden.const_data_ptr<T>();
    for (int64_t first = 0; first < valid_rows; first += chunk) {
      const int64_t rows = std::min(chunk, valid_rows - first);
      const T* w = weight.const_data_ptr<T>() + first * width;
      gemm_rows<T, acc_t>(false, true, tokens, rows, width, h, width, w, width, acc_t(0),
                          logits.mutable_data_ptr<acc_t>(), rows);
      C10_CUDA_CHECK(cuda::lmhead_softmax_gradient(dtype_of(hidden), logits.const_data_ptr(),
                                                   dlogits.mutable_data_ptr(), tokens, rows,
                                                   labels.const_data_ptr<int64_t>(), vocab_start + first,
                                                   lse.const_data_ptr(), grad_loss.const_data_ptr(), sms,
                                                   current_stream()));
      const T* d = dlogits.const_data_ptr<T>();
      // d W rows = dlogits^T hidden (rounded once into W's dtype); d hidden += dlogits W rows.
      gemm_rows<T, T>(true, false, rows, width, tokens, d, rows, h, width, acc_t(0),
                      dweight.mutable_data_ptr<T>() + first * width, width);
      gemm_rows<T, acc_t>(false, false, tokens, width, rows, d, rows, w, width, acc_t(1),
                          dhidden.mutable_data_ptr<acc_t>(), width);
    }
  });
  return {widened ? dhidden.to(hidden.scalar_type()) : dhidden, dweight};
}

}  // namespace qwen_kernels
