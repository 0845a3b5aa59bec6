// Output allocation for the CPU kernels. A large output is fresh memory that the kernel faults in
// page by page on its first write; on Linux, asking for transparent huge pages before that write
// makes those faults several times cheaper (torch does the same for every allocation under
// THP_MEM_ALLOC_ENABLE=1). Memory that is not fresh, or a kernel without THP, is unaffected.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace qwen_kernels::cpu {

inline at::Tensor advise_huge_pages(at::Tensor output) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  const auto start = reinterpret_cast<uintptr_t>(output.data_ptr());
  const uintptr_t begin = (start + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (start + output.nbytes()) & ~(kHugePage - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advice only
#endif
  return output;
}

inline at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return advise_huge_pages(at::empty(sizes, options));
}

inline at::Tensor empty_output_like(const at::Tensor& like) { return advise_huge_pages(at::empty_like(like)); }

}  // namespace qwen_kernels::cpu
