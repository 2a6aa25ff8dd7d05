#include "autograd/storage.h"

#include <atomic>
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

// A CPU block: whole 64-byte lines (aligned_alloc wants a multiple of the alignment), at least one.
size_t host_block_size(size_t nbytes) { return nbytes == 0 ? 64 : (nbytes + 63) / 64 * 64; }

// Relaxed atomics: a count for reports, ordered with nothing else. The peak is raised by whichever
// thread sees a larger total.
std::atomic<int64_t> g_host_in_use{0}, g_host_peak{0};

void count_host(int64_t delta) {
  const int64_t now = g_host_in_use.fetch_add(delta, std::memory_order_relaxed) + delta;
  int64_t peak = g_host_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_host_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

}  // namespace

HostMemoryStats host_memory_stats() {
  return {g_host_in_use.load(std::memory_order_relaxed), g_host_peak.load(std::memory_order_relaxed)};
}

void reset_host_peak_memory() { g_host_peak.store(g_host_in_use.load(std::memory_order_relaxed)); }

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  // A zero-size tensor still gets a distinct, valid pointer, so views and copies need no special case.
  MINIDL_CHECK(nbytes <= (size_t{1} << 62), "allocate: ", nbytes, " bytes is more than any machine has");
  const size_t padded = host_block_size(nbytes);
  void* p = nullptr;
  if (device.is_cpu()) {
    keep_freed_host_memory();
    p = std::aligned_alloc(64, padded);
    MINIDL_CHECK(p != nullptr, "allocate: out of host memory while allocating ", nbytes, " bytes");
    count_host(static_cast<int64_t>(padded));
  } else {
    // Unpadded: the caching allocator rounds to its size classes anyway, and uncached
    // (MINIDL_CUDA_CACHING=0) a block of the exact size lets memcheck see a kernel's overrun.
    p = cuda::device_malloc(nbytes == 0 ? 64 : nbytes, device.index);
  }
  return std::shared_ptr<Storage>(new Storage(p, nbytes, device));
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    std::free(data_);
    count_host(-static_cast<int64_t>(host_block_size(nbytes_)));
  } else {
    cuda::device_free(data_, device_.index);
  }
}

}  // namespace minidl
