// SwiGLU on megatron-core's gated fc1 output [..., 2F] = [gate | up], forward and backward on CPU.
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
void swiglu_forward_rows(const scalar_t* fc1, scalar_t* out, int64_t rows, int64_t width) {
  using acc_t = at::opmath_type<scalar_t>;
  at::parallel_for(0, rows, cpu::rows_per_task(width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* gate = fc1 + r * 2 * width;
      const scalar_t* up = gate + width;
      scalar_t* o = out + r * width;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) {
        const acc_t g = cpu::load(gate, c);
        cpu::store(o, c, g * cpu::sigmoid(g) * cpu::load(up, c));
      }
    }
  });
}

// d gate = dout * up * sigmoid(g) * (1 + g * (1 - sigmoid(g))), d up = dout * silu(g).
// Each element of dfc1 depends only on the same element of fc1, so dfc1 may be fc1 itself.
template <typename scalar_t>
void swiglu_backward_rows(const scalar_t* dout, const scalar_t* fc1, scalar_t* dfc1, int64_t rows,
                          int64_t width) {
  using acc_t = at::opmath_type<scalar_t>;
  at::parallel_for(0, rows, cpu::rows_per_task(width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* gate = fc1 + r * 2 * width;
      const scalar_t* up = gate + width;
      const scalar_t* d = dout + r * width;
      scalar_t* dgate = dfc1 + r * 2 * width;
      scalar_t* dup = dgate + width;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) {
        const acc_t g = cpu::load(gate, c);
        const acc_t u = cpu::load(up, c);
        const acc_t dv = cpu::load(d, c);
        const acc_t s = cpu::sigmoid(g);
        cpu::store(dgate, c, dv * u * s * (acc_t(1) + g * (acc_t(1) - s)));
        cpu::store(dup, c, dv * g * s);
      }
    }
  });
}

std::vector<int64_t> halved_last_dim(const at::Tensor& fc1) {
  std::vector<int64_t> shape(fc1.sizes().begin(), fc1.sizes().end());
  shape.back() /= 2;
  return shape;
}

}  // namespace

at::Tensor swiglu_forward_cpu(const at::Tensor& fc1) {
  const int64_t width = fc1.size(-1) / 2;
  const int64_t rows = width == 0 ? 0 : fc1.numel() / (2 * width);
  at::Tensor out = cpu::empty_output(halved_last_dim(fc1), fc1.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, fc1.scalar_type(), "swiglu_forward_cpu", [&] {
    swiglu_forward_rows<scalar_t>(fc1.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), rows,
                                  width);
  });
  return out;
}

at::Tensor swiglu_backward_cpu(const at::Tensor& dout, const at::Tensor& fc1, bool in_place) {
  const int64_t width = fc1.size(-1) / 2;
  const int64_t rows = width == 0 ? 0 : fc1.numel() / (2 * width);
  at::Tensor dfc1 = in_place ? fc1 : cpu::empty_output_like(fc1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, fc1.scalar_type(), "swiglu_backward_cpu", [&] {
    swiglu_backward_rows<scalar_t>(dout.const_data_ptr<scalar_t>(), fc1.const_data_ptr<scalar_t>(),
                                   dfc1.mutable_data_ptr<scalar_t>(), rows, width);
  });
  return dfc1;
}

}  // namespace qwen_kernels
