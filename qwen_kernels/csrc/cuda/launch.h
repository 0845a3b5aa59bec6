// Launchers of the CUDA kernels on raw device pointers. The .cu files include no torch header,
// so nvcc compiles them in seconds; cuda/ops.cpp does the tensor work (allocation, streams,
// dtype mapping, error checks) with the host compiler.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace qwen_kernels::cuda {

enum class DType { kFloat, kDouble, kBFloat16, kHalf };

// rstd and the dweight workspace hold the accumulate type: double for kDouble, else float.
cudaError_t rmsnorm_forward(DType dtype, const void* x, const void* weight, void* y, void* rstd, int64_t rows,
                            int64_t cols, double eps, cudaStream_t stream);

// Blocks of the backward; its workspace is [blocks, cols] of the accumulate type.
int64_t rmsnorm_backward_blocks(int64_t rows, int multiprocessors);
// Shared memory the backward needs per block, in bytes.
size_t rmsnorm_backward_shared_bytes(DType dtype, int64_t cols);
cudaError_t rmsnorm_backward(DType dtype, const void* dy, const void* x, const void* weight, const void* rstd,
                             void* dx, void* workspace, void* dweight, int64_t rows, int64_t cols,
                             int64_t blocks, cudaStream_t stream);

cudaError_t swiglu_forward(DType dtype, const void* fc1, void* out, int64_t rows, int64_t width,
                           int multiprocessors, cudaStream_t stream);
// dfc1 may equal fc1 (in-place gradient).
cudaError_t swiglu_backward(DType dtype, const void* dout, const void* fc1, void* dfc1, int64_t rows,
                            int64_t width, int multiprocessors, cudaStream_t stream);

// x and out are [seq, rows_per_pos, dim]; freqs [seq, dim] of the accumulate type.
cudaError_t rotary(DType dtype, const void* in, const void* freqs, void* out, int64_t seq, int64_t rows_per_pos,
                   int64_t dim, bool transpose, cudaStream_t stream);

// Fused output layer + cross-entropy, one vocabulary chunk of `width` rows whose global ids start
// at first_id. logits [tokens, width] and the per-token arrays hold the accumulate type of acc_dtype
// (kFloat or kDouble); the running max starts at -inf, the sum and target at 0.
cudaError_t lmhead_log_sum_exp(DType acc_dtype, const void* logits, int64_t tokens, int64_t width,
                               const int64_t* labels, int64_t first_id, void* running_max, void* running_sum,
                               void* target, cudaStream_t stream);
// dlogits [tokens, width] of `dtype` from the accumulate-type logits, lse and grad; may alias logits
// when dtype is the accumulate type.
cudaError_t lmhead_softmax_gradient(DType dtype, const void* logits, void* dlogits, int64_t tokens, int64_t width,
                                    const int64_t* labels, int64_t first_id, const void* lse, const void* grad,
                                    int multiprocessors, cudaStream_t stream);

}  // namespace qwen_kernels::cuda
