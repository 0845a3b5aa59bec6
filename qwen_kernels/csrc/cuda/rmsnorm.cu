// RMSNorm forward and backward on CUDA: one block per row, block reductions in fp32 (fp64 for
// double), dweight reduced through one shared-memory row per block, then summed across blocks.
#include "common.cuh"

namespace qwen_kernels::cuda {
namespace {

template <typename T, int VEC>
__global__ void rmsnorm_forward_kernel(const T* __restrict__ x, const T* __restrict__ weight, T* __restrict__ y,
                                       acc_type<T>* __restrict__ rstd, int64_t cols, acc_type<T> eps) {
  using acc_t = acc_type<T>;
  const T* xr = x + blockIdx.x * cols;
  T* yr = y + blockIdx.x * cols;
  acc_t sum_sq = 0;
  for (int64_t c = threadIdx.x * VEC; c < cols; c += blockDim.x * VEC) {
    const auto xv = load_pack<T, VEC>(xr + c);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const acc_t v = to_acc(xv.v[k]);
      sum_sq += v * v;
    }
  }
  const acc_t inv = device_rsqrt(block_sum(sum_sq) / static_cast<acc_t>(cols) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = inv;
  for (int64_t c = threadIdx.x * VEC; c < cols; c += blockDim.x * VEC) {
    const auto xv = load_pack<T, VEC>(xr + c);
    const auto wv = load_pack<T, VEC>(weight + c);
    Pack<T, VEC> out;
#pragma unroll
    for (int k = 0; k < VEC; ++k) out.v[k] = from_acc<T>(to_acc(xv.v[k]) * inv * to_acc(wv.v[k]));
    store_pack(yr + c, out);
  }
}

// dx = rstd * (w dy - x * rstd^2 * mean(w dy x)). Each thread owns the same columns in every row,
// so its slots of the shared dweight row are touched by no other thread until the block writes
// them to its workspace row.
template <typename T, int VEC>
__global__ void rmsnorm_backward_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                        const T* __restrict__ weight, const acc_type<T>* __restrict__ rstd,
                                        T* __restrict__ dx, acc_type<T>* __restrict__ workspace, int64_t rows,
                                        int64_t cols) {
  using acc_t = acc_type<T>;
  extern __shared__ unsigned char shared_bytes[];
  acc_t* dweight_row = reinterpret_cast<acc_t*>(shared_bytes);
  for (int64_t c = threadIdx.x * VEC; c < cols; c += blockDim.x * VEC) {
#pragma unroll
    for (int k = 0; k < VEC; ++k) dweight_row[c + k] = 0;
  }
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * cols;
    const T* dyr = dy + row * cols;
    const acc_t inv = rstd[row];
    acc_t dot = 0;
    for (int64_t c = threadIdx.x * VEC; c < cols; c += blockDim.x * VEC) {
      const auto xv = load_pack<T, VEC>(xr + c);
      const auto gv = load_pack<T, VEC>(dyr + c);
      const auto wv = load_pack<T, VEC>(weight + c);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const acc_t xk = to_acc(xv.v[k]);
        const acc_t gk = to_acc(gv.v[k]);
        dot += gk * to_acc(wv.v[k]) * xk;
        dweight_row[c + k] += gk * xk * inv;
      }
    }
    const acc_t coef = block_sum(dot) * inv * inv * inv / static_cast<acc_t>(cols);
    for (int64_t c = threadIdx.x * VEC; c < cols; c += blockDim.x * VEC) {
      const auto xv = load_pack<T, VEC>(xr + c);
      const auto gv = load_pack<T, VEC>(dyr + c);
      const auto wv = load_pack<T, VEC>(weight + c);
      Pack<T, VEC> out;
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        out.v[k] = from_acc<T>(to_acc(wv.v[k]) * to_acc(gv.v[k]) * inv - to_acc(xv.v[k]) * coef);
      }
      store_pack(dx + row * cols + c, out);
    }
  }
  for (int64_t c = threadIdx.x * VEC; c < cols; c += blockDim.x * VEC) {
#pragma unroll
    for (int k = 0; k < VEC; ++k) workspace[blockIdx.x * cols + c + k] = dweight_row[c + k];
  }
}

template <typename T>
__global__ void column_sum_kernel(const acc_type<T>* __restrict__ workspace, T* __restrict__ out, int64_t parts,
                                  int64_t cols) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  acc_type<T> total = 0;
  for (int64_t p = 0; p < parts; ++p) total += workspace[p * cols + c];
  out[c] = from_acc<T>(total);
}

template <typename T, int VEC>
cudaError_t launch_backward(const T* dy, const T* x, const T* weight, const acc_type<T>* rstd, T* dx,
                            acc_type<T>* workspace, T* dweight, int64_t rows, int64_t cols, int64_t blocks,
                            cudaStream_t stream) {
  const size_t shared = static_cast<size_t>(cols) * sizeof(acc_type<T>);
  auto kernel = rmsnorm_backward_kernel<T, VEC>;
  cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(shared));
  if (status != cudaSuccess) return status;
  kernel<<<blocks, threads_for(cols / VEC), shared, stream>>>(dy, x, weight, rstd, dx, workspace, rows, cols);
  status = cudaGetLastError();
  if (status != cudaSuccess) return status;
  column_sum_kernel<T><<<(cols + 255) / 256, 256, 0, stream>>>(workspace, dweight, blocks, cols);
  return cudaGetLastError();
}

}  // namespace

cudaError_t rmsnorm_forward(DType dtype, const void* x, const void* weight, void* y, void* rstd, int64_t rows,
                            int64_t cols, double eps, cudaStream_t stream) {
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    using acc_t = acc_type<T>;
    constexpr int vec = kVecWidth<T>;
    const auto* xp = static_cast<const T*>(x);
    const auto* wp = static_cast<const T*>(weight);
    auto* yp = static_cast<T*>(y);
    auto* rp = static_cast<acc_t*>(rstd);
    if (can_vectorize(cols, vec, {xp, wp, yp})) {
      rmsnorm_forward_kernel<T, vec><<<rows, threads_for(cols / vec), 0, stream>>>(xp, wp, yp, rp, cols,
                                                                                    static_cast<acc_t>(eps));
    } else {
      rmsnorm_forward_kernel<T, 1><<<rows, threads_for(cols), 0, stream>>>(xp, wp, yp, rp, cols,
                                                                           static_cast<acc_t>(eps));
    }
    return cudaGetLastError();
  });
}

int64_t rmsnorm_backward_blocks(int64_t rows, int multiprocessors) {
  const int64_t wanted = 2 * static_cast<int64_t>(multiprocessors);
  return rows < wanted ? (rows < 1 ? 1 : rows) : wanted;
}

size_t rmsnorm_backward_shared_bytes(DType dtype, int64_t cols) {
  return static_cast<size_t>(cols) * (dtype == DType::kDouble ? sizeof(double) : sizeof(float));
}

cudaError_t rmsnorm_backward(DType dtype, const void* dy, const void* x, const void* weight, const void* rstd,
                             void* dx, void* workspace, void* dweight, int64_t rows, int64_t cols,
                             int64_t blocks, cudaStream_t stream) {
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    using acc_t = acc_type<T>;
    constexpr int vec = kVecWidth<T>;
    const auto* d = static_cast<const T*>(dy);
    const auto* xp = static_cast<const T*>(x);
    const auto* wp = static_cast<const T*>(weight);
    const auto* rp = static_cast<const acc_t*>(rstd);
    auto* dxp = static_cast<T*>(dx);
    auto* ws = static_cast<acc_t*>(workspace);
    auto* dwp = static_cast<T*>(dweight);
    if (can_vectorize(cols, vec, {d, xp, wp, dxp})) {
      return launch_backward<T, vec>(d, xp, wp, rp, dxp, ws, dwp, rows, cols, blocks, stream);
    }
    return launch_backward<T, 1>(d, xp, wp, rp, dxp, ws, dwp, rows, cols, blocks, stream);
  });
}

}  // namespace qwen_kernels::cuda
