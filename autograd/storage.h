// Storage: one block of memory on one device, shared by a tensor and all of its views.
//
// It also carries the version counter of that memory: every in-place write bumps it, and a tensor saved
// for backward remembers the version it saw, so backward can refuse to use data that changed under it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "autograd/device.h"

namespace minidl {

class Storage {
 public:
  // Allocates nbytes on `device` (64-byte aligned on the CPU). Out of memory is a minidl::Error.
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  Storage(void* data, size_t nbytes, Device device) : data_(data), nbytes_(nbytes), device_(device) {}
  void* data_;
  size_t nbytes_;
  Device device_;
  uint64_t version_ = 0;
};

// The CPU tensors' memory: bytes of Storage blocks alive (as allocated, padded to 64 bytes) and the most
// there have been since the last reset, over all threads. The CUDA allocator keeps its own
// (cuda::memory_stats).
struct HostMemoryStats {
  int64_t in_use = 0;
  int64_t peak_in_use = 0;
};
HostMemoryStats host_memory_stats();
void reset_host_peak_memory();  // the peak starts again from what is in use now

}  // namespace minidl
