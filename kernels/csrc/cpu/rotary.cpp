// Rotate-half rotary embedding on CPU, forward and backward (its transpose).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <vector>

#include "../ops.h"
#include "vec_math.h"

namespace qwen_kernels {
namespace {

// With x = [x1 | x2] (halves of the head dim), the forward is
//   out1 = x1 c1 - x2 s1,  out2 = x2 c2 + x1 s2
// and its transpose (the backward) is
//   dx1 = g1 c1 + g2 s2,   dx2 = g2 c2 - g1 s1,
// i.e. the forward with the sine halves swapped and negated. One loop serves both directions.
template <typename scalar_t>
void rotary_rows(const scalar_t* in, const at::opmath_type<scalar_t>* freqs, scalar_t* out,
                 int64_t seq, int64_t rows_per_pos, int64_t dim, bool transpose) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t half = dim / 2;
  at::parallel_for(0, seq * rows_per_pos, cpu::rows_per_task(dim), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> cos_v(dim), sin_v(dim);
    int64_t cached_pos = -1;
    for (int64_t r = begin; r < end; ++r) {
      const int64_t pos = r / rows_per_pos;
      if (pos != cached_pos) {
        const acc_t* f = freqs + pos * dim;
        for (int64_t i = 0; i < dim; ++i) {
          cos_v[i] = std::cos(f[i]);
          sin_v[i] = std::sin(f[i]);
        }
        if (transpose) {
          for (int64_t i = 0; i < half; ++i) {
            const acc_t s1 = sin_v[i];
            sin_v[i] = -sin_v[i + half];
            sin_v[i + half] = -s1;
          }
        }
        cached_pos = pos;
      }
      const scalar_t* x = in + r * dim;
      scalar_t* o = out + r * dim;
      const acc_t* c = cos_v.data();
      const acc_t* s = sin_v.data();
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        const acc_t x1 = cpu::load(x, i);
        const acc_t x2 = cpu::load(x, i + half);
        cpu::store(o, i, x1 * c[i] - x2 * s[i]);
        cpu::store(o, i + half, x2 * c[i + half] + x1 * s[i + half]);
      }
    }
  });
}

at::Tensor rotary_cpu(const at::Tensor& in, const at::Tensor& freqs, bool transpose) {
  at::Tensor out = at::empty_like(in);
  const int64_t seq = in.size(0);
  const int64_t dim = in.size(3);
  const int64_t rows_per_pos = in.size(1) * in.size(2);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.scalar_type(), "rotary_cpu", [&] {
    rotary_rows<scalar_t>(in.const_data_ptr<scalar_t>(), freqs.const_data_ptr<at::opmath_type<scalar_t>>(),
                          out.mutable_data_ptr<scalar_t>(), seq, rows_per_pos, dim, transpose);
  });
  return out;
}

}  // namespace

at::Tensor rotary_forward_cpu(const at::Tensor& x, const at::Tensor& freqs) {
  return rotary_cpu(x, freqs, /*transpose=*/false);
}

at::Tensor rotary_backward_cpu(const at::Tensor& dout, const at::Tensor& freqs) {
  return rotary_cpu(dout, freqs, /*transpose=*/true);
}

}  // namespace qwen_kernels
