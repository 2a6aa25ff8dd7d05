#include "autograd/storage.h"

#include <cstdlib>
#include <mutex>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "autograd/error.h"
#include "cuda/runtime.h"

namespace minidl {
namespace {

// A training step frees and allocates the same activation-sized blocks over and over. glibc's defaults
// hand them back to the kernel (blocks above its mmap threshold are unmapped on free, and a large free top
// of the heap is trimmed), so the next step faults the pages in again and the kernel zeroes each one: 4%
// of a tiny-preset CPU step went to system time. Keeping freed memory in the heap costs little here (peak
// resident memory of bench w2 tiny: 565 -> 614 MB). Once per process, before the first tensor; a
// non-glibc C library keeps its own policy.
void keep_freed_host_memory() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's upper limit for this setting
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  });
#endif
}

}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  // A zero-size tensor still gets a distinct, valid pointer, so views and copies need no special case.
  MINIDL_CHECK(nbytes <= (size_t{1} << 62), "allocate: ", nbytes, " bytes is more than any machine has");
  const size_t padded = nbytes == 0 ? 64 : (nbytes + 63) / 64 * 64;
  void* p = nullptr;
  if (device.is_cpu()) {
    keep_freed_host_memory();
    p = std::aligned_alloc(64, padded);
    MINIDL_CHECK(p != nullptr, "allocate: out of host memory while allocating ", nbytes, " bytes");
  } else {
    // Unpadded: the caching allocator rounds to its size classes anyway, and uncached
    // (MINIDL_CUDA_CACHING=0) a block of the exact size lets memcheck see a kernel's overrun.
    p = cuda::device_malloc(nbytes == 0 ? 64 : nbytes, device.index);
  }
  return std::shared_ptr<Storage>(new Storage(p, nbytes, device));
}

Storage::~Storage() {
  if (device_.is_cpu())
    std::free(data_);
  else
    cuda::device_free(data_, device_.index);
}

}  // namespace minidl
