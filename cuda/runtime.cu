// The CUDA side of cuda/runtime.h: device discovery, memory and copies through the CUDA runtime.
// Allocation is plain cudaMalloc for now; the caching allocator replaces it with the CUDA backend.
#include "cuda/common.cuh"
#include "cuda/runtime.h"

namespace minidl::cuda {

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
  MINIDL_CUDA_CHECK(cudaSetDevice(device));
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
  if (cudaSetDevice(device) == cudaSuccess) cudaFree(ptr);
  cudaGetLastError();
}

void copy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  if (nbytes == 0) return;
  MINIDL_CUDA_CHECK(cudaSetDevice(device));
  const cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                            : cudaMemcpyDeviceToDevice;
  MINIDL_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, k));
}

}  // namespace minidl::cuda
