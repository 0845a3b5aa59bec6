// Device helpers shared by the CUDA kernels: dtype dispatch, conversions, 16-byte vector
// accesses, block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "launch.h"

namespace qwen_kernels::cuda {

template <typename T>
struct Accumulate {
  using type = float;
};
template <>
struct Accumulate<double> {
  using type = double;
};
template <typename T>
using acc_type = typename Accumulate<T>::type;

// Calls fn(T{}) with T the element type for dtype.
template <typename Fn>
cudaError_t dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat: return fn(float{});
    case DType::kDouble: return fn(double{});
    case DType::kBFloat16: return fn(__nv_bfloat16{});
    case DType::kHalf: return fn(__half{});
  }
  return cudaErrorInvalidValue;
}

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_acc(acc_type<T> v);
template <>
__device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <>
__device__ __forceinline__ double from_acc<double>(double v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half(v); }

// Elements of T in one 16-byte access.
template <typename T>
constexpr int kVecWidth = 16 / sizeof(T);

// N consecutive elements moved as one aligned access (N = 1 is the scalar fallback).
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <typename T, int N>
__device__ __forceinline__ Pack<T, N> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, N>*>(p);
}

template <typename T, int N>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, N>& pack) {
  *reinterpret_cast<Pack<T, N>*>(p) = pack;
}

// 16-byte accesses need every pointer 16-byte aligned and rows that are whole vectors.
inline bool can_vectorize(int64_t row_len, int vec, std::initializer_list<const void*> pointers) {
  if (row_len % vec != 0) return false;
  for (const void* p : pointers) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  }
  return true;
}

__device__ __forceinline__ float device_exp(float x) { return __expf(x); }
__device__ __forceinline__ double device_exp(double x) { return exp(x); }
__device__ __forceinline__ float device_rsqrt(float x) { return rsqrtf(x); }
__device__ __forceinline__ double device_rsqrt(double x) { return rsqrt(x); }

// Reduction over a warp with `combine` (sum, max), returned to every lane.
template <typename acc_t, typename Combine>
__device__ __forceinline__ acc_t warp_reduce(acc_t value, Combine combine) {
  for (int offset = 16; offset > 0; offset >>= 1) value = combine(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// Reduction over the block, returned to every thread; `identity` fills the missing warps.
// blockDim.x must be a multiple of 32.
template <typename acc_t, typename Combine>
__device__ acc_t block_reduce(acc_t value, Combine combine, acc_t identity) {
  __shared__ acc_t warp_totals[32];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  value = warp_reduce(value, combine);
  if (lane == 0) warp_totals[warp] = value;
  __syncthreads();
  const int warps = blockDim.x / 32;
  value = lane < warps ? warp_totals[lane] : identity;
  value = warp_reduce(value, combine);
  __syncthreads();  // warp_totals may be reused by the next call
  return value;
}

struct Add {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

struct Max {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return fmax(a, b); }
};

template <typename acc_t>
__device__ acc_t block_sum(acc_t value) {
  return block_reduce(value, Add{}, acc_t(0));
}

template <typename acc_t>
__device__ acc_t block_max(acc_t value) {
  return block_reduce(value, Max{}, static_cast<acc_t>(-INFINITY));
}

// Calls body(row, col) for every VEC-wide vector of a [rows, width] array, grid-stride.
template <int VEC, typename Body>
__device__ __forceinline__ void for_each_vector(int64_t rows, int64_t width, Body body) {
  const int64_t vectors_per_row = width / VEC;
  const int64_t total = rows * vectors_per_row;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    body(i / vectors_per_row, (i % vectors_per_row) * VEC);
  }
}

// Threads per block for a row of `vectors` vector accesses: whole warps, 32..1024.
inline int threads_for(int64_t vectors) {
  int64_t warps = (vectors + 31) / 32;
  warps = warps < 1 ? 1 : (warps > 32 ? 32 : warps);
  return static_cast<int>(warps * 32);
}

}  // namespace qwen_kernels::cuda
