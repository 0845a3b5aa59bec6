// The output layer and its cross-entropy on CPU without the [tokens x vocab] logits: the vocabulary
// is walked in chunks of rows, each chunk's logits [tokens x chunk] come from one BLAS GEMM (MKL
// through at::mm_out) into a reused buffer, and the rows of that buffer are reduced by threads
// over token ranges: an online log-sum-exp in the forward, the softmax gradient in the backward,
// which then feeds two more GEMMs (d hidden += dlogits W_chunk, d W_chunk = dlogits^T hidden).
// bf16/fp16 inputs take one of two routes, chosen by the caller (qwen_kernels/lmhead.py):
// - widened to fp32 chunk by chunk (exact: a bf16 product is exact in fp32), so the GEMMs run at
//   fp32 BLAS speed and accumulate in fp32: the fast route on CPUs without bf16 instructions,
//   where torch's bf16 GEMM is a slow fallback;
// - GEMMs in the input dtype (oneDNN, accumulating in fp32), on CPUs with native instructions for
//   it (AMX, AVX512-BF16), where they run several times faster than fp32 ones. As in eager
//   PyTorch, each chunk's logits are rounded to the input dtype (then widened for the softmax)
//   and so is the softmax gradient before the two backward GEMMs; the CUDA kernels do the same.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/full.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "../ops.h"
#include "vec_math.h"

namespace qwen_kernels {
namespace {

at::ScalarType compute_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// t in the compute dtype: t itself when it already is, else a converted copy in `buffer`.
at::Tensor in_compute(const at::Tensor& t, at::Tensor& buffer) {
  if (t.scalar_type() == buffer.scalar_type()) return t;
  at::Tensor out = buffer.narrow(0, 0, t.size(0));
  out.copy_(t);
  return out;
}

// Work of one token row of a chunk for at::parallel_for: whole rows, ~64k logits per task.
int64_t rows_per_task(int64_t chunk) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(chunk, 1)); }

// Running (max, sum of exp(logit - max)) per token, updated by one chunk of logits; the target
// logit is picked up when the token's label falls in the chunk.
template <typename acc_t>
void update_log_sum_exp(const acc_t* logits, int64_t tokens, int64_t width, const int64_t* labels,
                        int64_t first_id, acc_t* running_max, acc_t* running_sum, acc_t* target) {
  at::parallel_for(0, tokens, rows_per_task(width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const acc_t* row = logits + r * width;
      acc_t chunk_max = -std::numeric_limits<acc_t>::infinity();
#pragma omp simd reduction(max : chunk_max)
      for (int64_t c = 0; c < width; ++c) chunk_max = std::max(chunk_max, row[c]);
      const acc_t new_max = std::max(running_max[r], chunk_max);
      acc_t sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < width; ++c) sum += cpu::vexp(row[c] - new_max);
      // exp(-inf) is 0 in double and ~1e-38 times a zero sum in float: a first chunk adds nothing.
      running_sum[r] = running_sum[r] * cpu::vexp(running_max[r] - new_max) + sum;
      running_max[r] = new_max;
      const int64_t local = labels[r] - first_id;
      if (local >= 0 && local < width) target[r] = row[local];
    }
  });
}

// logits -> d loss / d logits in place: grad * (softmax - onehot(label)), softmax = exp(l - lse).
template <typename acc_t>
void softmax_gradient(acc_t* logits, int64_t tokens, int64_t width, const int64_t* labels, int64_t first_id,
                      const acc_t* lse, const acc_t* grad) {
  at::parallel_for(0, tokens, rows_per_task(width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      acc_t* row = logits + r * width;
      const acc_t g = grad[r];
      const acc_t shift = lse[r];
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) row[c] = g * cpu::vexp(row[c] - shift);
      const int64_t local = labels[r] - first_id;
      if (local >= 0 && local < width) row[local] -= g;
    }
  });
}

// Rows of the vocabulary per chunk: the [tokens x chunk] logits and the [chunk x hidden] widened
// weights each stay near 8M elements (32 MB in fp32), in multiples of 64 rows, 64..8192.
int64_t vocab_chunk_rows(int64_t tokens, int64_t hidden) {
  const int64_t rows = (int64_t{8} << 20) / std::max<int64_t>({tokens, hidden, 1});
  return std::clamp<int64_t>(rows / 64 * 64, 64, 8192);
}

struct Buffers {
  at::Tensor hidden;         // the hidden states the GEMMs read: widened, or as given
  at::Tensor logits;         // [tokens x chunk] flat, in the compute dtype
  at::Tensor weights;        // [chunk x hidden] widened weight rows (widening bf16/fp16 weights only)
  at::Tensor input_logits;   // [tokens x chunk] flat in the input dtype (input-dtype GEMMs only)
  int64_t chunk;
};

Buffers make_buffers(const at::Tensor& hidden, const at::Tensor& weight, bool input_dtype_gemm) {
  const int64_t tokens = hidden.size(0), width = hidden.size(1);
  const at::ScalarType compute = compute_dtype(hidden);
  const auto options = hidden.options().dtype(compute);
  const bool widen = hidden.scalar_type() != compute && !input_dtype_gemm;
  Buffers b;
  b.chunk = vocab_chunk_rows(tokens, width);
  b.hidden = widen ? hidden.to(compute) : hidden;
  b.logits = at::empty({tokens * b.chunk}, options);
  b.weights = widen ? at::empty({b.chunk, width}, options) : at::Tensor();
  b.input_logits = hidden.scalar_type() != compute && input_dtype_gemm ? at::empty({tokens * b.chunk}, hidden.options())
                                                                       : at::Tensor();
  return b;
}

at::Tensor flat_view(const at::Tensor& buffer, int64_t tokens, int64_t rows) {
  return buffer.narrow(0, 0, tokens * rows).view({tokens, rows});
}

// One chunk of `rows` vocabulary rows from `first`: its weights as the GEMMs read them and its
// logits [tokens x rows] = hidden W_chunk^T, in the compute dtype in the logits buffer.
std::pair<at::Tensor, at::Tensor> chunk_logits(Buffers& b, const at::Tensor& weight, int64_t first, int64_t rows) {
  at::Tensor w = weight.narrow(0, first, rows);
  if (b.weights.defined()) w = in_compute(w, b.weights);
  const int64_t tokens = b.hidden.size(0);
  at::Tensor logits = flat_view(b.logits, tokens, rows);
  if (b.input_logits.defined()) {
    at::Tensor rounded = flat_view(b.input_logits, tokens, rows);
    at::mm_out(rounded, b.hidden, w.t());
    logits.copy_(rounded);
  } else {
    at::mm_out(logits, b.hidden, w.t());
  }
  return {w, logits};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> lmhead_forward_cpu(const at::Tensor& hidden, const at::Tensor& weight,
                                                                  const at::Tensor& labels, int64_t vocab_start,
                                                                  int64_t valid_rows, bool input_dtype_gemm) {
  const int64_t tokens = hidden.size(0);
  const auto options = hidden.options().dtype(compute_dtype(hidden));
  at::Tensor running_max = at::full({tokens}, -std::numeric_limits<double>::infinity(), options);
  at::Tensor running_sum = at::zeros({tokens}, options);
  at::Tensor target = at::zeros({tokens}, options);
  if (tokens == 0) return {running_max, running_sum, target};
  Buffers b = make_buffers(hidden, weight, input_dtype_gemm);
  for (int64_t first = 0; first < valid_rows; first += b.chunk) {
    const int64_t rows = std::min(b.chunk, valid_rows - first);
    at::Tensor logits = chunk_logits(b, weight, first, rows).second;
    AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "lmhead_forward_cpu", [&] {
      update_log_sum_exp<scalar_t>(logits.const_data_ptr<scalar_t>(), tokens, rows, labels.const_data_ptr<int64_t>(),
                                   vocab_start + first, running_max.mutable_data_ptr<scalar_t>(),
                                   running_sum.mutable_data_ptr<scalar_t>(), target.mutable_data_ptr<scalar_t>());
    });
  }
  return {running_max, running_sum, target};
}

std::tuple<at::Tensor, at::Tensor> lmhead_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& hidden,
                                                       const at::Tensor& weight, const at::Tensor& labels,
                                                       const at::Tensor& lse, int64_t vocab_start,
                                                       int64_t valid_rows, bool input_dtype_gemm) {
  const int64_t tokens = hidden.size(0);
  // Padding rows (from valid_rows on) take no part in the softmax: their gradient stays zero.
  at::Tensor dweight = at::zeros_like(weight);
  at::Tensor dhidden = at::zeros(hidden.sizes(), hidden.options().dtype(compute_dtype(hidden)));
  if (tokens == 0) return {dhidden.to(hidden.scalar_type()), dweight};
  Buffers b = make_buffers(hidden, weight, input_dtype_gemm);
  // d hidden of one chunk in the input dtype before it is added to dhidden (input-dtype GEMMs only).
  at::Tensor dhidden_part = b.input_logits.defined() ? at::empty_like(hidden) : at::Tensor();
  // Widened d W rows of one chunk before they are rounded into dweight (bf16/fp16 weights only).
  at::Tensor dweight_buffer = b.weights.defined() ? at::empty_like(b.weights) : at::Tensor();
  for (int64_t first = 0; first < valid_rows; first += b.chunk) {
    const int64_t rows = std::min(b.chunk, valid_rows - first);
    auto [w, dlogits] = chunk_logits(b, weight, first, rows);
    AT_DISPATCH_FLOATING_TYPES(dlogits.scalar_type(), "lmhead_backward_cpu", [&] {
      softmax_gradient<scalar_t>(dlogits.mutable_data_ptr<scalar_t>(), tokens, rows, labels.const_data_ptr<int64_t>(),
                                 vocab_start + first, lse.const_data_ptr<scalar_t>(),
                                 grad_loss.const_data_ptr<scalar_t>());
    });
    at::Tensor dweight_rows = dweight.narrow(0, first, rows);
    if (dhidden_part.defined()) {
      at::Tensor rounded = flat_view(b.input_logits, tokens, rows);
      rounded.copy_(dlogits);
      at::mm_out(dhidden_part, rounded, w);
      dhidden.add_(dhidden_part);
      at::mm_out(dweight_rows, rounded.t(), b.hidden);
    } else if (dweight_buffer.defined()) {
      dhidden.addmm_(dlogits, w);
      at::Tensor widened = dweight_buffer.narrow(0, 0, rows);
      at::mm_out(widened, dlogits.t(), b.hidden);
      dweight_rows.copy_(widened);
    } else {
      dhidden.addmm_(dlogits, w);
      at::mm_out(dweight_rows, dlogits.t(), b.hidden);
    }
  }
  return {hidden.scalar_type() == dhidden.scalar_type() ? dhidden : dhidden.to(hidden.scalar_type()), dweight};
}

}  // namespace qwen_kernels
