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
  m.doc() = "Fused Qwen kernels: RMSNorm, SwiGLU and rotary embedding (forward and backward)";
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
  m.def("built_with_cuda", &qk::built_with_cuda, "whether the CUDA kernels were compiled in");
}
