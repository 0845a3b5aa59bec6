// Rotate-half rotary embedding on CUDA. A block takes one sequence position and a slice of its
// batch*heads rows; cos/sin of the position's angles are computed once into shared memory, with
// the accurate cos/sin (this file must never be built with --use_fast_math: __cosf/__sinf's error
// grows with the angle, which reaches tens of thousands of radians at long positions).
#include "common.cuh"

namespace qwen_kernels::cuda {
namespace {

constexpr int kRowsPerBlock = 16;
constexpr int kThreads = 256;

// Forward: out1 = x1 c1 - x2 s1, out2 = x2 c2 + x1 s2. The backward (transpose) is the same loop
// with the sine halves swapped and negated (see cpu/rotary.cpp).
template <typename T, int VEC>
__global__ void rotary_kernel(const T* __restrict__ in, const acc_type<T>* __restrict__ freqs, T* __restrict__ out,
                              int64_t rows_per_pos, int64_t dim, bool transpose) {
  using acc_t = acc_type<T>;
  extern __shared__ unsigned char shared_bytes[];
  acc_t* cos_v = reinterpret_cast<acc_t*>(shared_bytes);
  acc_t* sin_v = cos_v + dim;
  const int64_t half = dim / 2;
  const int64_t pos = blockIdx.x;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    cos_v[i] = cos(freqs[pos * dim + i]);
    const int64_t partner = i < half ? i + half : i - half;
    sin_v[i] = transpose ? -sin(freqs[pos * dim + partner]) : sin(freqs[pos * dim + i]);
  }
  __syncthreads();
  const int64_t row_begin = blockIdx.y * static_cast<int64_t>(kRowsPerBlock);
  const int64_t rows_left = rows_per_pos - row_begin;
  const int64_t row_count = rows_left < kRowsPerBlock ? rows_left : kRowsPerBlock;
  const int64_t vectors_per_half = half / VEC;
  for (int64_t item = threadIdx.x; item < row_count * vectors_per_half; item += blockDim.x) {
    const int64_t row = (pos * rows_per_pos + row_begin + item / vectors_per_half) * dim;
    const int64_t i = (item % vectors_per_half) * VEC;
    const auto x1 = load_pack<T, VEC>(in + row + i);
    const auto x2 = load_pack<T, VEC>(in + row + i + half);
    Pack<T, VEC> o1;
    Pack<T, VEC> o2;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const acc_t a = to_acc(x1.v[k]);
      const acc_t b = to_acc(x2.v[k]);
      o1.v[k] = from_acc<T>(a * cos_v[i + k] - b * sin_v[i + k]);
      o2.v[k] = from_acc<T>(b * cos_v[i + k + half] + a * sin_v[i + k + half]);
    }
    store_pack(out + row + i, o1);
    store_pack(out + row + i + half, o2);
  }
}

}  // namespace

cudaError_t rotary(DType dtype, const void* in, const void* freqs, void* out, int64_t seq, int64_t rows_per_pos,
                   int64_t dim, bool transpose, cudaStream_t stream) {
  const int64_t row_blocks = (rows_per_pos + kRowsPerBlock - 1) / kRowsPerBlock;
  if (row_blocks > 65535) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned>(seq), static_cast<unsigned>(row_blocks));
  return dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    using acc_t = acc_type<T>;
    constexpr int vec = kVecWidth<T>;
    const size_t shared = 2 * static_cast<size_t>(dim) * sizeof(acc_t);
    const auto* x = static_cast<const T*>(in);
    const auto* f = static_cast<const acc_t*>(freqs);
    auto* o = static_cast<T*>(out);
    if (can_vectorize(dim / 2, vec, {x, o})) {
      rotary_kernel<T, vec><<<grid, kThreads, shared, stream>>>(x, f, o, rows_per_pos, dim, transpose);
    } else {
      rotary_kernel<T, 1><<<grid, kThreads, shared, stream>>>(x, f, o, rows_per_pos, dim, transpose);
    }
    return cudaGetLastError();
  });
}

}  // namespace qwen_kernels::cuda
