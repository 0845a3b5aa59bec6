// Rotate-half rotary embedding on CPU, forward and backward (its transpose).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/cos.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/sin.h>

#include "../ops.h"
#include "outputs.h"
#include "vec_math.h"

namespace qwen_kernels {
namespace {

// With x = [x1 | x2] (halves of the head dim), the forward is
//   out1 = x1 c1 - x2 s1,  out2 = x2 c2 + x1 s2
// and its transpose (the backward) is
//   dx1 = g1 c1 + g2 s2,   dx2 = g2 c2 - g1 s1.
// cos and sin of the [seq, dim] angles come from torch's own vectorized kernels, once per call.
template <typename scalar_t, bool Transpose>
void rotary_rows(const scalar_t* in, const at::opmath_type<scalar_t>* cos_table,
                 const at::opmath_type<scalar_t>* sin_table, scalar_t* out, int64_t seq, int64_t rows_per_pos,
                 int64_t dim) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t half = dim / 2;
  at::parallel_for(0, seq * rows_per_pos, cpu::rows_per_task(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const acc_t* c = cos_table + (r / rows_per_pos) * dim;
      const acc_t* s = sin_table + (r / rows_per_pos) * dim;
      const scalar_t* x = in + r * dim;
      scalar_t* o = out + r * dim;
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        const acc_t x1 = cpu::load(x, i);
        const acc_t x2 = cpu::load(x, i + half);
        const acc_t s_first = Transpose ? -s[i + half] : s[i];
        const acc_t s_second = Transpose ? -s[i] : s[i + half];
        cpu::store(o, i, x1 * c[i] - x2 * s_first);
        cpu::store(o, i + half, x2 * c[i + half] + x1 * s_second);
      }
    }
  });
}

template <bool Transpose>
at::Tensor rotary_cpu(const at::Tensor& in, const at::Tensor& freqs) {
  at::Tensor out = cpu::empty_output_like(in);
  const at::Tensor cos_table = freqs.cos();
  const at::Tensor sin_table = freqs.sin();
  const int64_t rows_per_pos = in.size(1) * in.size(2);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.scalar_type(), "rotary_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    rotary_rows<scalar_t, Transpose>(in.const_data_ptr<scalar_t>(), cos_table.const_data_ptr<acc_t>(),
                                     sin_table.const_data_ptr<acc_t>(), out.mutable_data_ptr<scalar_t>(),
                                     in.size(0), rows_per_pos, in.size(3));
  });
  return out;
}

}  // namespace

at::Tensor rotary_forward_cpu(const at::Tensor& x, const at::Tensor& freqs) {
  return rotary_cpu</*Transpose=*/false>(x, freqs);
}

at::Tensor rotary_backward_cpu(const at::Tensor& dout, const at::Tensor& freqs) {
  return rotary_cpu</*Transpose=*/true>(dout, freqs);
}

}  // namespace qwen_kernels
