// The CUDA runtime functions minidl calls, for the emulated build (emulator.h): device memory is host
// memory, every call completes before it returns (so streams and events only need to be valid handles),
// and the emulated device is an H100-like part with few SMs, so that grid-stride loops go round.
//
// What is checked as the GPU would: copies and memsets must stay inside one device allocation, destroyed
// streams and events are invalid handles, allocations past the device's memory fail with
// cudaErrorMemoryAllocation. Errors are remembered per host thread for cudaGetLastError, as in CUDA.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <unordered_map>

#include "cuda/emulator/emulator.h"

namespace minidl::emu {

std::mutex& attribute_mutex() {
  static std::mutex m;
  return m;
}
std::unordered_map<const void*, int>& shared_limits() {
  static std::unordered_map<const void*, int> limits;
  return limits;
}

namespace {

constexpr int kDevices = 1;
constexpr size_t kDeviceMemory = size_t{16} << 30;
constexpr int kSharedOptin = 227 * 1024;

// The multiprocessors the device reports: MINIDL_CUDA_EMULATOR_SMS, else 4 (emulator.h says why).
int multiprocessors() {
  static const int n = [] {
    const char* text = std::getenv("MINIDL_CUDA_EMULATOR_SMS");
    if (!text) return 4;
    char* end = nullptr;
    const long v = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < 1 || v > 1024) {
      std::fprintf(stderr, "cuda emulator: MINIDL_CUDA_EMULATOR_SMS is '%s'; expected a count from 1 to 1024\n", text);
      std::exit(2);
    }
    return static_cast<int>(v);
  }();
  return n;
}

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local int t_device = 0;

struct Registry {
  std::mutex mutex;
  std::map<uintptr_t, size_t> device_blocks;  // start -> bytes
  size_t device_bytes = 0;
  std::set<const void*> streams, events;
  // When each event was last recorded: every launch completes before cudaEventRecord returns, so an
  // event completes as it is recorded, and the host clock then is its time.
  std::map<const void*, std::chrono::steady_clock::time_point> recorded;
};
Registry& registry() {
  static Registry r;
  return r;
}

cudaError_t fail(cudaError_t e) {
  t_last_error = e;
  return e;
}

// Whether [p, p + n) lies inside one device allocation.
bool on_device(const void* p, size_t n) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = r.device_blocks.upper_bound(a);
  if (it == r.device_blocks.begin()) return false;
  --it;
  return a + n <= it->first + it->second;
}

// Streams and events are opaque handles: a fresh address, live from creation to destruction.
template <class Handle>
cudaError_t create_handle(std::set<const void*>& live, Handle* h) {
  *h = reinterpret_cast<Handle>(new char);
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  live.insert(*h);
  return cudaSuccess;
}

cudaError_t destroy_handle(std::set<const void*>& live, const void* h) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  if (!live.erase(h)) return fail(cudaErrorInvalidResourceHandle);
  r.recorded.erase(h);
  delete static_cast<const char*>(h);
  return cudaSuccess;
}

bool is_live(const std::set<const void*>& live, const void* h) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  return live.count(h) != 0;
}

bool valid_stream(cudaStream_t s) { return !s || is_live(registry().streams, s); }  // null: the legacy stream
bool valid_event(cudaEvent_t e) { return is_live(registry().events, e); }

}  // namespace

void set_last_error(cudaError_t error) {
  if (error != cudaSuccess) t_last_error = error;
}

}  // namespace minidl::emu

using namespace minidl::emu;

extern "C" {

cudaError_t cudaGetLastError() {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return t_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure (the emulator printed why)";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    default: return "unknown error";
  }
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = kDevices;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = t_device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= kDevices) return fail(cudaErrorInvalidDevice);
  t_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device < 0 || device >= kDevices) return fail(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::strncpy(p->name, "minidl CUDA emulator (on the CPU)", sizeof(p->name) - 1);
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = multiprocessors();
  p->totalGlobalMem = kDeviceMemory;
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = kSharedOptin;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device < 0 || device >= kDevices) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = multiprocessors(); return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = kSharedOptin; return cudaSuccess;
    case cudaDevAttrWarpSize: *value = 32; return cudaSuccess;
    default: return fail(cudaErrorInvalidValue);
  }
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return fail(cudaErrorInvalidValue);
  if (value < 0 || value > kSharedOptin) return fail(cudaErrorInvalidValue);
  const std::lock_guard lock(attribute_mutex());
  shared_limits()[func] = value;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

// ---- memory ------------------------------------------------------------------------------------------
cudaError_t cudaMalloc(void** p, size_t bytes) {
  Registry& r = registry();
  const size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  {  // reserved before allocating, so that concurrent calls cannot pass the device's memory together
    const std::lock_guard lock(r.mutex);
    if (bytes > kDeviceMemory || r.device_bytes + rounded > kDeviceMemory) return fail(cudaErrorMemoryAllocation);
    r.device_bytes += rounded;
  }
  // The size asked for, not the rounded one, so that under AddressSanitizer (-DMINIDL_SANITIZE=ON) a
  // kernel reading past its allocation is caught, as compute-sanitizer's memcheck would on the GPU.
  void* q = ::operator new (std::max<size_t>(bytes, 1), std::align_val_t{256}, std::nothrow);
  const std::lock_guard lock(r.mutex);
  if (!q) {
    r.device_bytes -= rounded;
    return fail(cudaErrorMemoryAllocation);
  }
  r.device_blocks[reinterpret_cast<uintptr_t>(q)] = bytes;  // the size asked for: a copy past it is an error
  *p = q;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  Registry& r = registry();
  {
    const std::lock_guard lock(r.mutex);
    const auto it = r.device_blocks.find(reinterpret_cast<uintptr_t>(p));
    if (it == r.device_blocks.end()) return fail(cudaErrorInvalidValue);
    r.device_bytes -= (std::max<size_t>(it->second, 1) + 255) / 256 * 256;
    r.device_blocks.erase(it);
  }
  ::operator delete (p, std::align_val_t{256});
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  *free_bytes = kDeviceMemory - r.device_bytes;
  *total = kDeviceMemory;
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) {
  *p = std::aligned_alloc(4096, (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }

cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
  if (!valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  if (n == 0) return cudaSuccess;
  const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind != cudaMemcpyHostToHost && !dst_device && !src_device) return fail(cudaErrorInvalidValue);
  if ((dst_device && !on_device(dst, n)) || (src_device && !on_device(src, n))) return fail(cudaErrorInvalidValue);
  std::memmove(dst, src, n);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, n, kind, nullptr);
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t n, cudaStream_t s) {
  if (!valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  if (n == 0) return cudaSuccess;
  if (!on_device(p, n)) return fail(cudaErrorInvalidValue);
  std::memset(p, value, n);
  return cudaSuccess;
}

cudaError_t cudaMemset(void* p, int value, size_t n) { return cudaMemsetAsync(p, value, n, nullptr); }

// ---- streams and events --------------------------------------------------------------------------------
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) { return create_handle(registry().streams, s); }
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) { return destroy_handle(registry().streams, s); }

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  return valid_stream(s) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  return valid_stream(s) && valid_event(e) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { return create_handle(registry().events, e); }
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { return destroy_handle(registry().events, e); }

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!valid_stream(s) || !valid_event(e)) return fail(cudaErrorInvalidResourceHandle);
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  r.recorded[e] = std::chrono::steady_clock::now();
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return fail(cudaErrorInvalidValue);
  if (!valid_event(start) || !valid_event(end)) return fail(cudaErrorInvalidResourceHandle);
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  const auto a = r.recorded.find(start), b = r.recorded.find(end);
  if (a == r.recorded.end() || b == r.recorded.end()) return fail(cudaErrorInvalidResourceHandle);  // as CUDA
  *ms = std::chrono::duration<float, std::milli>(b->second - a->second).count();
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  return valid_event(e) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventQuery(cudaEvent_t e) {
  return valid_event(e) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

}  // extern "C"
