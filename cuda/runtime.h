// The small part of the CUDA runtime the core needs: device discovery, memory, copies. Plain C++
// declarations, so the CPU-only build compiles against them too; cuda/runtime.cu implements them with
// CUDA, and cuda/runtime_stub.cpp (built when CUDA is off) answers "no devices" and refuses the rest.
#pragma once

#include <cstddef>

namespace minidl::cuda {

bool built();
int device_count();

void* device_malloc(size_t nbytes, int device);
void device_free(void* ptr, int device);

enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
void copy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device);

}  // namespace minidl::cuda
