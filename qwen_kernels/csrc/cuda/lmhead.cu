// Row kernels of the fused output layer + cross-entropy on CUDA. The logits of one vocabulary
// chunk come from cuBLAS (cuda/ops.cpp) in the accumulate dtype; these kernels fold them into
// each token's running log-sum-exp (forward) or turn them into d loss / d logits (backward).
#include <cmath>

#include "common.cuh"

namespace qwen_kernels::cuda {
namespace {

// One block per token: the chunk's max, then its sum of exp(logit - new max), folded into the
// running pair; the label's logit is taken when the label is in the chunk.
template <typename acc_t>
__global__ void log_sum_exp_kernel(const acc_t* __restrict__ logits, int64_t width, const int64_t* __restrict__ labels,
                                   int64_t first_id, acc_t* __restrict__ running_max, acc_t* __restrict__ running_sum,
                                   acc_t* __restrict__ target) {
  const int64_t token = blockIdx.x;
  const acc_t* row = logits + token * width;
  acc_t chunk_max = static_cast<acc_t>(-INFINITY);
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) chunk_max = fmax(chunk_max, row[c]);
  const acc_t old_max = running_max[token];
  const acc_t new_max = fmax(old_max, block_max(chunk_max));
  acc_t sum = 0;
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) sum += device_exp(row[c] - new_max);
  sum = block_sum(sum);
  if (threadIdx.x == 0) {
    running_sum[token] = running_sum[token] * device_exp(old_max - new_max) + sum;  // exp(-inf) = 0
    running_max[token] = new_max;
    const int64_t local = labels[token] - first_id;
    if (local >= 0 && local < width) target[token] = row[local];
  }
}

// d logits = grad * (exp(logit - lse) - onehot(label)), written in the GEMM input dtype T
// (in place when T is the accumulate dtype).
template <typename T>
__global__ void softmax_gradient_kernel(const acc_type<T>* logits, T* dlogits, int64_t tokens, int64_t width,
                                        const int64_t* __restrict__ labels, int64_t first_id,
                                        const acc_type<T>* __restrict__ lse, const acc_type<T>* __restrict__ grad) {
  using acc_t = acc_type<T>;
  const int64_t total = tokens * width;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t token = i / width;
    const acc_t g = grad[token];
    acc_t value = g * device_exp(logits[i] - lse[token]);
    if (labels[token] - first_id == i % width) value -= g;
    dlogits[i] = from_acc<T>(value);
  }
}

}  // namespace

cudaError_t lmhead_log_sum_exp(DType acc_dtype, const void* logits, int64_t tokens, int64_t width,
                               const int64_t* labels, int64_t first_id, void* running_max, void* running_sum,
                               void* target, cudaStream_t stream) {
  const int threads = threads_for(width);
  if (acc_dtype == DType::kDouble) {
    log_sum_exp_kernel<double><<<tokens, threads, 0, stream>>>(
        static_cast<const double*>(logits), width, labels, first_id, static_cast<double*>(running_max),
        static_cast<double*>(running_sum), static_cast<double*>(target));
  } else {
    log_sum_exp_kernel<float><<<tokens, threads, 0, stream>>>(
        static_cast<const float*>(logits), width, labels, first_id, static_cast<float*>(running_max),
        static_cast<float*>(running_sum), static_cast<float*>(target));
  }
  return cudaGetLastError();
}

cudaError_t lmhead_softmax_gradient(DType dtype, const void* logits, void* dlogits, int64_t tokens, int64_t width,
                                    const int64_t* labels, int64_t first_id, const void* lse, const void* grad,
                                    int multiprocessors, cudaStream_t stream) {
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    using acc_t = acc_type<T>;
    softmax_gradient_kernel<T><<<4 * multiprocessors, 256, 0, stream>>>(
        static_cast<const acc_t*>(logits), static_cast<T*>(dlogits), tokens, width, labels, first_id,
        static_cast<const acc_t*>(lse), static_cast<const acc_t*>(grad));
    return cudaGetLastError();
  });
}

}  // namespace qwen_kernels::cuda
