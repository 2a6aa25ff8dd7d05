// The CUDA side of cuda/runtime.h: device discovery, memory and copies through the CUDA runtime.
// Allocation is plain cudaMalloc for now; the caching allocator replaces it with the CUDA backend.
#include "cuda/common.cuh"
#include "cuda/runtime.h"

namespace minidl::cuda {
namespace {

// Makes `device` current for a scope and restores the caller's device after, so that touching a tensor
// on cuda:1 does not silently redirect the caller's later kernel launches.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    status_ = cudaSetDevice(device);
  }
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
};

}  // namespace

bool built() { return true; }

int device_count() {
  // Called on machines without a GPU too: "no device" or "no driver" means zero devices, not an error.
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls are not poisoned by it
    return 0;
  }
  return n;
}

void* device_malloc(size_t nbytes, int device) {
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, nbytes);
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    fail("allocate: cudaMalloc of ", nbytes, " bytes on cuda:", device, " failed (", cudaGetErrorString(err), "); ",
         free_bytes, " of ", total_bytes, " bytes free");
  }
  return p;
}

void device_free(void* ptr, int device) {
  // Never throws: it runs in destructors. A failure here means the context is already gone (exit).
  const DeviceGuard guard(device);
  if (guard.status() == cudaSuccess) cudaFree(ptr);
  cudaGetLastError();
}

void copy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  if (nbytes == 0) return;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  const cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                            : cudaMemcpyDeviceToDevice;
  MINIDL_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, k));
}

}  // namespace minidl::cuda
