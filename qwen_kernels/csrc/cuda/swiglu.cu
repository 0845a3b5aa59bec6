// SwiGLU on CUDA: elementwise over the [rows, width] output, 16-byte accesses where the width and
// pointers allow, grid-stride loops.
#include "common.cuh"

namespace qwen_kernels::cuda {
namespace {

template <typename acc_t>
__device__ __forceinline__ acc_t sigmoid(acc_t x) {
  return acc_t(1) / (acc_t(1) + device_exp(-x));
}

template <typename T, int VEC>
__global__ void swiglu_forward_kernel(const T* __restrict__ fc1, T* __restrict__ out, int64_t rows, int64_t width) {
  using acc_t = acc_type<T>;
  for_each_vector<VEC>(rows, width, [&](int64_t row, int64_t col) {
    const auto gate = load_pack<T, VEC>(fc1 + row * 2 * width + col);
    const auto up = load_pack<T, VEC>(fc1 + row * 2 * width + width + col);
    Pack<T, VEC> o;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const acc_t g = to_acc(gate.v[k]);
      o.v[k] = from_acc<T>(g * sigmoid(g) * to_acc(up.v[k]));
    }
    store_pack(out + row * width + col, o);
  });
}

// d gate = dout * up * sigmoid(g) * (1 + g * (1 - sigmoid(g))), d up = dout * silu(g).
// dfc1 may be fc1 itself (each element is read before the same element is written): no __restrict__.
template <typename T, int VEC>
__global__ void swiglu_backward_kernel(const T* __restrict__ dout, const T* fc1, T* dfc1,
                                       int64_t rows, int64_t width) {
  using acc_t = acc_type<T>;
  for_each_vector<VEC>(rows, width, [&](int64_t row, int64_t col) {
    const int64_t gate_at = row * 2 * width + col;
    const auto gate = load_pack<T, VEC>(fc1 + gate_at);
    const auto up = load_pack<T, VEC>(fc1 + gate_at + width);
    const auto d = load_pack<T, VEC>(dout + row * width + col);
    Pack<T, VEC> dgate;
    Pack<T, VEC> dup;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const acc_t g = to_acc(gate.v[k]);
      const acc_t u = to_acc(up.v[k]);
      const acc_t dv = to_acc(d.v[k]);
      const acc_t s = sigmoid(g);
      dgate.v[k] = from_acc<T>(dv * u * s * (acc_t(1) + g * (acc_t(1) - s)));
      dup.v[k] = from_acc<T>(dv * g * s);
    }
    store_pack(dfc1 + gate_at, dgate);
    store_pack(dfc1 + gate_at + width, dup);
  });
}

constexpr int kThreads = 256;

// Enough blocks to fill the device a few times over; the loops stride over the rest.
int64_t grid_for(int64_t work_items, int multiprocessors) {
  const int64_t wanted = (work_items + kThreads - 1) / kThreads;
  const int64_t cap = 8 * static_cast<int64_t>(multiprocessors);
  return wanted < 1 ? 1 : (wanted > cap ? cap : wanted);
}

}  // namespace

cudaError_t swiglu_forward(DType dtype, const void* fc1, void* out, int64_t rows, int64_t width,
                           int multiprocessors, cudaStream_t stream) {
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int vec = kVecWidth<T>;
    const auto* in = static_cast<const T*>(fc1);
    auto* o = static_cast<T*>(out);
    if (can_vectorize(width, vec, {in, o})) {
      swiglu_forward_kernel<T, vec>
          <<<grid_for(rows * width / vec, multiprocessors), kThreads, 0, stream>>>(in, o, rows, width);
    } else {
      swiglu_forward_kernel<T, 1><<<grid_for(rows * width, multiprocessors), kThreads, 0, stream>>>(in, o, rows, width);
    }
    return cudaGetLastError();
  });
}

cudaError_t swiglu_backward(DType dtype, const void* dout, const void* fc1, void* dfc1, int64_t rows,
                            int64_t width, int multiprocessors, cudaStream_t stream) {
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int vec = kVecWidth<T>;
    const auto* d = static_cast<const T*>(dout);
    const auto* in = static_cast<const T*>(fc1);
    auto* g = static_cast<T*>(dfc1);
    if (can_vectorize(width, vec, {d, in, g})) {
      swiglu_backward_kernel<T, vec>
          <<<grid_for(rows * width / vec, multiprocessors), kThreads, 0, stream>>>(d, in, g, rows, width);
    } else {
      swiglu_backward_kernel<T, 1>
          <<<grid_for(rows * width, multiprocessors), kThreads, 0, stream>>>(d, in, g, rows, width);
    }
    return cudaGetLastError();
  });
}

}  // namespace qwen_kernels::cuda
