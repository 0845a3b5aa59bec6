// Scalar helpers written so that the loops calling them auto-vectorize (AVX2/AVX-512 with
// -march=native). std::exp does not vectorize without -ffast-math, which we avoid because it
// also drops NaN/Inf semantics.
#pragma once

#include <ATen/OpMathType.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__has_builtin)
#if __has_builtin(__builtin_bit_cast)
#define QWEN_KERNELS_HAVE_BUILTIN_BIT_CAST 1
#endif
#endif

namespace qwen_kernels::cpu {

// The bits of `from` read as a To: std::bit_cast, which is C++20, while torch builds extensions
// as C++17 before 2.12. GCC (11+) and Clang have the same operation as __builtin_bit_cast in every
// language mode; like std::bit_cast it keeps the loops below vectorizable, which memcpy into a
// local does not (GCC). memcpy is the fallback for other compilers.
template <typename To, typename From>
inline To bits_as(const From& from) {
  static_assert(sizeof(To) == sizeof(From) && std::is_trivially_copyable_v<From> &&
                std::is_trivially_copyable_v<To>);
#ifdef QWEN_KERNELS_HAVE_BUILTIN_BIT_CAST
  return __builtin_bit_cast(To, from);
#else
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
#endif
}

// Cephes-style expf: range reduction by ln 2, degree-6 polynomial, exponent built from bits.
// Max relative error ~2 ulp on the clamped range; inputs beyond it saturate to ~exp(+-88).
inline float vexp(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  return p * bits_as<float>((static_cast<int32_t>(n) + 127) << 23);
}

// Double inputs are only used for gradcheck and float64 references: exactness over speed.
inline double vexp(double x) { return std::exp(x); }

// Element loads/stores that widen to and round from the accumulate type. bf16 is done on the bits
// (round to nearest even, NaN kept) with bits_as: c10::BFloat16's conversions, and memcpy into
// locals, both stop GCC from vectorizing the loops (more so under #pragma omp simd).
template <typename scalar_t>
inline at::opmath_type<scalar_t> load(const scalar_t* p, int64_t i) {
  return static_cast<at::opmath_type<scalar_t>>(p[i]);
}

template <>
inline float load(const c10::BFloat16* p, int64_t i) {
  return bits_as<float>(static_cast<uint32_t>(p[i].x) << 16);
}

template <typename scalar_t>
inline void store(scalar_t* p, int64_t i, at::opmath_type<scalar_t> value) {
  p[i] = static_cast<scalar_t>(value);
}

template <>
inline void store(c10::BFloat16* p, int64_t i, float value) {
  const uint32_t wide = bits_as<uint32_t>(value);
  const uint32_t rounded = (wide + 0x7FFFu + ((wide >> 16) & 1u)) >> 16;
  p[i].x = value != value ? uint16_t{0x7FC0} : static_cast<uint16_t>(rounded);
}

template <typename acc_t>
inline acc_t sigmoid(acc_t x) {
  return acc_t(1) / (acc_t(1) + vexp(-x));
}

// Rows of a [rows, cols] problem handed to each at::parallel_for task: enough work per task
// (~32k elements) that scheduling overhead stays small, at least one row.
inline int64_t rows_per_task(int64_t cols) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1)); }

}  // namespace qwen_kernels::cpu
