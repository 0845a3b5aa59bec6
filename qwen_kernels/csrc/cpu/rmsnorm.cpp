// RMSNorm forward and backward on CPU: one pass over each row per direction, rows split across
// threads, fp32 accumulation for bf16/fp16 inputs.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include "../ops.h"
#include "outputs.h"
#include "vec_math.h"

namespace qwen_kernels {
namespace {

template <typename scalar_t>
void rmsnorm_forward_rows(const scalar_t* x, const scalar_t* weight, scalar_t* y,
                          at::opmath_type<scalar_t>* rstd, int64_t rows, int64_t cols, double eps) {
  using acc_t = at::opmath_type<scalar_t>;
  at::parallel_for(0, rows, cpu::rows_per_task(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* xr = x + r * cols;
      scalar_t* yr = y + r * cols;
      acc_t sum_sq = 0;
#pragma omp simd reduction(+ : sum_sq)
      for (int64_t c = 0; c < cols; ++c) {
        const acc_t v = cpu::load(xr, c);
        sum_sq += v * v;
      }
      const acc_t inv = acc_t(1) / std::sqrt(sum_sq / acc_t(cols) + acc_t(eps));
      rstd[r] = inv;
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) {
        cpu::store(yr, c, cpu::load(xr, c) * inv * cpu::load(weight, c));
      }
    }
  });
}

// dx_c = rstd * (w_c dy_c - x_c * rstd^2 * mean_k(w_k dy_k x_k)); dweight_c = sum_rows dy_c x_c rstd.
// dweight is reduced through one fp32 partial row per task chunk, summed at the end, so the
// result does not depend on thread timing.
template <typename scalar_t>
void rmsnorm_backward_rows(const scalar_t* dy, const scalar_t* x, const scalar_t* weight,
                           const at::opmath_type<scalar_t>* rstd, scalar_t* dx, scalar_t* dweight,
                           int64_t rows, int64_t cols) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(rows, at::get_num_threads()));
  const int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
  std::vector<acc_t> partial(static_cast<size_t>(chunks * cols), acc_t(0));
  at::parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      acc_t* dw = partial.data() + chunk * cols;
      const int64_t row_end = std::min(rows, (chunk + 1) * rows_per_chunk);
      for (int64_t r = chunk * rows_per_chunk; r < row_end; ++r) {
        const scalar_t* xr = x + r * cols;
        const scalar_t* dyr = dy + r * cols;
        scalar_t* dxr = dx + r * cols;
        const acc_t inv = rstd[r];
        acc_t dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t c = 0; c < cols; ++c) {
          const acc_t xv = cpu::load(xr, c);
          const acc_t gv = cpu::load(dyr, c);
          dot += gv * cpu::load(weight, c) * xv;
          dw[c] += gv * xv * inv;
        }
        const acc_t coef = dot * inv * inv * inv / acc_t(cols);
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) {
          const acc_t wg = cpu::load(weight, c) * cpu::load(dyr, c);
          cpu::store(dxr, c, wg * inv - cpu::load(xr, c) * coef);
        }
      }
    }
  });
  at::parallel_for(0, cols, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      acc_t total = 0;
      for (int64_t chunk = 0; chunk < chunks; ++chunk) total += partial[chunk * cols + c];
      cpu::store(dweight, c, total);
    }
  });
}

at::ScalarType rstd_dtype(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> rmsnorm_forward_cpu(const at::Tensor& x, const at::Tensor& weight,
                                                       double eps) {
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  at::Tensor y = cpu::empty_output_like(x);
  at::Tensor rstd = at::empty({rows}, x.options().dtype(rstd_dtype(x)));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "rmsnorm_forward_cpu", [&] {
    rmsnorm_forward_rows<scalar_t>(x.const_data_ptr<scalar_t>(), weight.const_data_ptr<scalar_t>(),
                                   y.mutable_data_ptr<scalar_t>(),
                                   rstd.mutable_data_ptr<at::opmath_type<scalar_t>>(), rows, cols, eps);
  });
  return {y, rstd};
}

std::tuple<at::Tensor, at::Tensor> rmsnorm_backward_cpu(const at::Tensor& dy, const at::Tensor& x,
                                                        const at::Tensor& weight,
                                                        const at::Tensor& rstd) {
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  at::Tensor dx = cpu::empty_output_like(x);
  at::Tensor dweight = at::empty_like(weight);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "rmsnorm_backward_cpu", [&] {
    rmsnorm_backward_rows<scalar_t>(dy.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
                                    weight.const_data_ptr<scalar_t>(),
                                    rstd.const_data_ptr<at::opmath_type<scalar_t>>(),
                                    dx.mutable_data_ptr<scalar_t>(), dweight.mutable_data_ptr<scalar_t>(),
                                    rows, cols);
  });
  return {dx, dweight};
}

}  // namespace qwen_kernels
