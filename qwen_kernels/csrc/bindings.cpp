// Python bindings: every input is checked here (TORCH_CHECK raises a Python RuntimeError), then
// the call goes to the CPU or CUDA implementation by the device of the inputs.
// Only what the bindings use (not torch/extension.h, which doubles the compile time).
#include <ATen/core/Tensor.h>
#include <pybind11/pybind11.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/utils/pybind.h>

#include "ops.h"

namespace qwen_kernels {
namespace {

void check_input(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.defined(), name, " is undefined");
  const auto dtype = t.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16 || dtype == at::kHalf,
              name, " must be float32, float64, bfloat16 or float16, got ", dtype);
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous (call .contiguous() first)");
#ifdef QWEN_KERNELS_WITH_CUDA
  TORCH_CHECK(t.is_cpu() || t.is_cuda(), name, " is on ", t.device(), "; these kernels run on cpu and cuda");
#else
  TORCH_CHECK(t.is_cpu(), name, " is on ", t.device(),
              "; this build of the qwen kernels has no CUDA support (it runs on cpu only)");
#endif
}

void check_same(const at::Tensor& t, const at::Tensor& ref, const char* name, const char* ref_name) {
  TORCH_CHECK(t.device() == ref.device(), name, " is on ", t.device(), " but ", ref_name, " is on ",
              ref.device());
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), name, " has dtype ", t.scalar_type(), " but ", ref_name,
              " has dtype ", ref.scalar_type());
}

// Dtype the kernels accumulate in, also the dtype of rstd and rotary angles: fp64 for fp64, else fp32.
at::ScalarType accumulate_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

#ifdef QWEN_KERNELS_WITH_CUDA
#define QWEN_DISPATCH(device_tensor, op, ...) \
  ((device_tensor).is_cuda() ? op##_cuda(__VA_ARGS__) : op##_cpu(__VA_ARGS__))
#else
#define QWEN_DISPATCH(device_tensor, op, ...) op##_cpu(__VA_ARGS__)
#endif

void check_rmsnorm_inputs(const at::Tensor& x, const at::Tensor& weight) {
  check_input(x, "x");
  check_input(weight, "weight");
  check_same(weight, x, "weight", "x");
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) > 0, "x must have a non-empty last dimension, got shape ", x.sizes());
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), "weight must have shape [", x.size(-1),
              "] (the last dimension of x), got ", weight.sizes());
}

std::tuple<at::Tensor, at::Tensor> rmsnorm_forward(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_rmsnorm_inputs(x, weight);
  TORCH_CHECK(eps >= 0, "eps must be >= 0, got ", eps);
  return QWEN_DISPATCH(x, rmsnorm_forward, x, weight, eps);
}

std::tuple<at::Tensor, at::Tensor> rmsnorm_backward(const at::Tensor& dy, const at::Tensor& x,
                                                    const at::Tensor& weight, const at::Tensor& rstd) {
  check_rmsnorm_inputs(x, weight);
  check_input(dy, "dy");
  check_same(dy, x, "dy", "x");
  TORCH_CHECK(dy.sizes() == x.sizes(), "dy must have the shape of x ", x.sizes(), ", got ", dy.sizes());
  check_input(rstd, "rstd");
  TORCH_CHECK(rstd.device() == x.device(), "rstd is on ", rstd.device(), " but x is on ", x.device());
  TORCH_CHECK(rstd.scalar_type() == accumulate_dtype(x), "rstd must have dtype ", accumulate_dtype(x),
              ", got ", rstd.scalar_type());
  TORCH_CHECK(rstd.numel() == x.numel() / x.size(-1), "rstd must hold one value per row of x (",
              x.numel() / x.size(-1), "), got ", rstd.numel());
  return QWEN_DISPATCH(x, rmsnorm_backward, dy, x, weight, rstd);
}

void check_fc1(const at::Tensor& fc1) {
  check_input(fc1, "fc1");
  TORCH_CHECK(fc1.dim() >= 1 && fc1.size(-1) > 0 && fc1.size(-1) % 2 == 0,
              "fc1 must have an even, non-zero last dimension ([gate | up]), got shape ", fc1.sizes());
}

at::Tensor swiglu_forward(const at::Tensor& fc1) {
  check_fc1(fc1);
  return QWEN_DISPATCH(fc1, swiglu_forward, fc1);
}

at::Tensor swiglu_backward(const at::Tensor& dout, const at::Tensor& fc1, bool in_place) {
  check_fc1(fc1);
  check_input(dout, "dout");
  check_same(dout, fc1, "dout", "fc1");
  auto expected = fc1.sizes().vec();
  expected.back() /= 2;
  TORCH_CHECK(dout.sizes() == at::IntArrayRef(expected), "dout must have shape ", at::IntArrayRef(expected),
              " (fc1 with its last dimension halved), got ", dout.sizes());
  at::Tensor dfc1 = QWEN_DISPATCH(fc1, swiglu_backward, dout, fc1, in_place);
  // Autograd must see the write: anything else that saved fc1 then fails loudly, not silently.
  if (in_place) torch::autograd::impl::bump_version(fc1);
  return dfc1;
}

void check_rotary_inputs(const at::Tensor& x, const at::Tensor& freqs, const char* x_name) {
  check_input(x, x_name);
  check_input(freqs, "freqs");
  TORCH_CHECK(x.dim() == 4, x_name, " must be [seq, batch, heads, head_dim], got shape ", x.sizes());
  TORCH_CHECK(x.size(3) % 2 == 0, "head_dim must be even for rotate-half, got ", x.size(3));
  TORCH_CHECK(freqs.dim() == 4 && freqs.size(0) == x.size(0) && freqs.size(1) == 1 && freqs.size(2) == 1 &&
                  freqs.size(3) == x.size(3),
              "freqs must have shape [", x.size(0), ", 1, 1, ", x.size(3), "] for ", x_name, " of shape ",
              x.sizes(), ", got ", freqs.sizes());
  TORCH_CHECK(freqs.device() == x.device(), "freqs is on ", freqs.device(), " but ", x_name, " is on ",
              x.device());
  TORCH_CHECK(freqs.scalar_type() == accumulate_dtype(x), "freqs must have dtype ", accumulate_dtype(x),
              " for ", x_name, " of dtype ", x.scalar_type(), ", got ", freqs.scalar_type());
}

at::Tensor rotary_forward(const at::Tensor& x, const at::Tensor& freqs) {
  check_rotary_inputs(x, freqs, "x");
  return QWEN_DISPATCH(x, rotary_forward, x, freqs);
}

at::Tensor rotary_backward(const at::Tensor& dout, const at::Tensor& freqs) {
  check_rotary_inputs(dout, freqs, "dout");
  return QWEN_DISPATCH(dout, rotary_backward, dout, freqs);
}

// hidden [tokens, hidden] and weight [rows, hidden] of one dtype, labels [tokens] int64 global ids
// below vocab_size (the real vocabulary) or equal to ignore_index; this shard's rows are the ids
// vocab_start .. vocab_start + rows, of which the first valid_rows are real tokens.
void check_lmhead_inputs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                         int64_t vocab_start, int64_t valid_rows, int64_t vocab_size) {
  check_input(hidden, "hidden");
  check_input(weight, "weight");
  check_same(weight, hidden, "weight", "hidden");
  TORCH_CHECK(hidden.dim() == 2, "hidden must be [tokens, hidden], got shape ", hidden.sizes());
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == hidden.size(1), "weight must be [rows, ", hidden.size(1),
              "] (the hidden size of hidden), got ", weight.sizes());
  TORCH_CHECK(labels.defined() && labels.scalar_type() == at::kLong, "labels must be int64, got ",
              labels.defined() ? c10::toString(labels.scalar_type()) : "undefined");
  TORCH_CHECK(labels.device() == hidden.device(), "labels is on ", labels.device(), " but hidden is on ",
              hidden.device());
  TORCH_CHECK(labels.is_contiguous(), "labels must be contiguous (call .contiguous() first)");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0), "labels must be [", hidden.size(0),
              "] (one per row of hidden), got ", labels.sizes());
  TORCH_CHECK(valid_rows >= 0 && valid_rows <= weight.size(0), "valid_rows must be in [0, ", weight.size(0),
              "] (the rows of weight), got ", valid_rows);
  TORCH_CHECK(vocab_start >= 0 && vocab_start + valid_rows <= vocab_size, "this shard's real rows [",
              vocab_start, ", ", vocab_start + valid_rows, ") must lie in the vocabulary [0, ", vocab_size, ")");
}

void check_labels_in_vocab(const at::Tensor& labels, int64_t vocab_size, int64_t ignore_index) {
  const at::Tensor outside = labels.ne(ignore_index).logical_and_(labels.lt(0).logical_or_(labels.ge(vocab_size)));
  if (outside.any().item<bool>()) {  // one host sync on CUDA: a wrong label must not train silently
    const int64_t first = outside.nonzero()[0][0].item<int64_t>();
    TORCH_CHECK(false, "labels[", first, "] = ", labels[first].item<int64_t>(), " is outside the vocabulary [0, ",
                vocab_size, ") and is not ignore_index (", ignore_index, ")");
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lmhead_forward(const at::Tensor& hidden, const at::Tensor& weight,
                                                              const at::Tensor& labels, int64_t vocab_start,
                                                              int64_t valid_rows, int64_t vocab_size,
                                                              int64_t ignore_index, bool input_dtype_gemm) {
  check_lmhead_inputs(hidden, weight, labels, vocab_start, valid_rows, vocab_size);
  check_labels_in_vocab(labels, vocab_size, ignore_index);
  // The CUDA kernels always run their GEMMs in the input dtype; on CPU the caller chooses.
#ifdef QWEN_KERNELS_WITH_CUDA
  if (hidden.is_cuda()) return lmhead_forward_cuda(hidden, weight, labels, vocab_start, valid_rows);
#endif
  return lmhead_forward_cpu(hidden, weight, labels, vocab_start, valid_rows, input_dtype_gemm);
}

std::tuple<at::Tensor, at::Tensor> lmhead_backward(const at::Tensor& grad_loss, const at::Tensor& hidden,
                                                   const at::Tensor& weight, const at::Tensor& labels,
                                                   const at::Tensor& lse, int64_t vocab_start, int64_t valid_rows,
                                                   int64_t vocab_size, bool input_dtype_gemm) {
  check_lmhead_inputs(hidden, weight, labels, vocab_start, valid_rows, vocab_size);
  for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{grad_loss, "grad_loss"}, {lse, "lse"}}) {
    check_input(t, name);
    TORCH_CHECK(t.device() == hidden.device(), name, " is on ", t.device(), " but hidden is on ", hidden.device());
    TORCH_CHECK(t.scalar_type() == accumulate_dtype(hidden), name, " must have dtype ", accumulate_dtype(hidden),
                ", got ", t.scalar_type());
    TORCH_CHECK(t.dim() == 1 && t.size(0) == hidden.size(0), name, " must be [", hidden.size(0), "], got ",
                t.sizes());
  }
#ifdef QWEN_KERNELS_WITH_CUDA
  if (hidden.is_cuda()) return lmhead_backward_cuda(grad_loss, hidden, weight, labels, lse, vocab_start, valid_rows);
#endif
  return lmhead_backward_cpu(grad_loss, hidden, weight, labels, lse, vocab_start, valid_rows, input_dtype_gemm);
}

bool built_with_cuda() {
#ifdef QWEN_KERNELS_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace
}  // namespace qwen_kernels

namespace py = pybind11;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace qk = qwen_kernels;
  using release_gil = py::call_guard<py::gil_scoped_release>;
  m.doc() = "Fused Qwen kernels: RMSNorm, SwiGLU, rotary embedding, output layer + cross-entropy (forward and backward)";
  m.def("rmsnorm_forward", &qk::rmsnorm_forward, "RMSNorm forward -> (y, rstd)", py::arg("x"),
        py::arg("weight"), py::arg("eps"), release_gil());
  m.def("rmsnorm_backward", &qk::rmsnorm_backward, "RMSNorm backward -> (dx, dweight)", py::arg("dy"),
        py::arg("x"), py::arg("weight"), py::arg("rstd"), release_gil());
  m.def("swiglu_forward", &qk::swiglu_forward, "silu(gate) * up of fc1 = [gate | up]", py::arg("fc1"),
        release_gil());
  m.def("swiglu_backward", &qk::swiglu_backward, "d(fc1) from d(out), over fc1 itself when in_place",
        py::arg("dout"), py::arg("fc1"), py::arg("in_place") = false, release_gil());
  m.def("rotary_forward", &qk::rotary_forward, "rotate-half RoPE of x [s, b, h, d]", py::arg("x"),
        py::arg("freqs"), release_gil());
  m.def("rotary_backward", &qk::rotary_backward, "transpose of rotary_forward", py::arg("dout"),
        py::arg("freqs"), release_gil());
  m.def("lmhead_forward", &qk::lmhead_forward,
        "output layer + cross-entropy over a vocabulary shard -> (max, sum exp(logit - max), label logit)",
        py::arg("hidden"), py::arg("weight"), py::arg("labels"), py::arg("vocab_start"), py::arg("valid_rows"),
        py::arg("vocab_size"), py::arg("ignore_index"), py::arg("input_dtype_gemm") = false, release_gil());
  m.def("lmhead_backward", &qk::lmhead_backward, "(d hidden, d weight) of lmhead_forward's loss",
        py::arg("grad_loss"), py::arg("hidden"), py::arg("weight"), py::arg("labels"), py::arg("lse"),
        py::arg("vocab_start"), py::arg("valid_rows"), py::arg("vocab_size"), py::arg("input_dtype_gemm") = false,
        release_gil());
  m.def("built_with_cuda", &qk::built_with_cuda, "whether the CUDA kernels were compiled in");
}
