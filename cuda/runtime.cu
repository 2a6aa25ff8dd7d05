// The CUDA side of cuda/runtime.h: device discovery, streams, pinned host memory and copies. Device
// memory goes through the caching allocator (cuda/allocator.cu).
#include <array>
#include <mutex>

#include "cuda/common.cuh"
#include "cuda/runtime.h"

namespace minidl::cuda {
namespace {

constexpr int kMaxDevices = 64;

// The per-device shared stream, made on first use and kept for the life of the process (destroying it
// at exit would race the driver's own teardown).
cudaStream_t shared_stream(int device) {
  static std::array<cudaStream_t, kMaxDevices> streams{};
  static std::array<std::once_flag, kMaxDevices> once;
  MINIDL_CHECK(device >= 0 && device < kMaxDevices, "cuda: device index ", device, " is out of range");
  std::call_once(once[device], [device] {
    const DeviceGuard guard(device);
    MINIDL_CUDA_CHECK(guard.status());
    MINIDL_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking));
  });
  return streams[device];
}

// A StreamGuard's stream per device for this thread; null means the shared stream.
thread_local std::array<cudaStream_t, kMaxDevices> tls_stream{};

}  // namespace

bool built() { return true; }

bool emulated() {
#ifdef MINIDL_CUDA_EMULATED
  return true;
#else
  return false;
#endif
}

int device_count() {
  // Called on machines without a GPU too: "no device" or "no driver" means zero devices, not an error.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error so later calls are not poisoned by it
      return 0;
    }
    return n;
  }();
  return count;
}

DeviceProperties device_properties(int device) {
  MINIDL_CHECK(device >= 0 && device < device_count(), "cuda: no device cuda:", device, " (this machine has ",
               device_count(), ")");
  cudaDeviceProp p{};
  MINIDL_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  DeviceProperties d;
  d.name = p.name;
  d.major = p.major;
  d.minor = p.minor;
  d.multiprocessors = p.multiProcessorCount;
  d.total_memory = p.totalGlobalMem;
  d.shared_per_block = p.sharedMemPerBlockOptin;
  return d;
}

int multiprocessors(int device) {
  static std::array<int, kMaxDevices> sms{};
  static std::array<std::once_flag, kMaxDevices> once;
  std::call_once(once[device], [device] {
    int n = 0;
    MINIDL_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    sms[device] = n;
  });
  return sms[device];
}

// ---- streams --------------------------------------------------------------------------------------
StreamHandle current_stream(int device) {
  MINIDL_CHECK(device >= 0 && device < kMaxDevices, "cuda: device index ", device, " is out of range");
  return tls_stream[device] ? tls_stream[device] : shared_stream(device);
}

StreamHandle create_stream(int device) {
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  cudaStream_t s = nullptr;
  MINIDL_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

// Waits for the stream's work first, so that its cached blocks can go to the shared stream and be
// reused there without racing work still queued on the destroyed one.
void destroy_stream(StreamHandle stream, int device) {
  if (!stream) return;
  const DeviceGuard guard(device);
  const auto s = static_cast<cudaStream_t>(stream);
  cudaStreamSynchronize(s);
  hand_over_stream_blocks(s, static_cast<cudaStream_t>(shared_stream(device)), device);
  cudaStreamDestroy(s);
  cudaGetLastError();
}

void synchronize(int device) {
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  MINIDL_CUDA_CHECK(cudaStreamSynchronize(stream_of(device)));
}

EventHandle create_event(int device) {
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  cudaEvent_t e = nullptr;
  MINIDL_CUDA_CHECK(cudaEventCreate(&e));  // with timing, unlike the uploads' ordering events
  return e;
}

void destroy_event(EventHandle event, int device) {
  if (!event) return;
  const DeviceGuard guard(device);
  cudaEventDestroy(static_cast<cudaEvent_t>(event));
  cudaGetLastError();
}

void record_event(EventHandle event, int device) {
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  MINIDL_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), stream_of(device)));
}

float elapsed_ms(EventHandle start, EventHandle end) {
  float ms = 0;
  MINIDL_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
  return ms;
}

StreamGuard::StreamGuard(StreamHandle stream, int device) : device_(device) {
  MINIDL_CHECK(device >= 0 && device < kMaxDevices, "cuda: device index ", device, " is out of range");
  previous_ = tls_stream[device];
  tls_stream[device] = static_cast<cudaStream_t>(stream);
}

StreamGuard::~StreamGuard() { tls_stream[device_] = static_cast<cudaStream_t>(previous_); }

// ---- pinned host memory ---------------------------------------------------------------------------
void* host_pinned_malloc(size_t nbytes) {
  void* p = nullptr;
  const cudaError_t err = cudaHostAlloc(&p, nbytes == 0 ? 64 : nbytes, cudaHostAllocPortable);
  if (err != cudaSuccess) {
    cudaGetLastError();
    fail("allocate: cudaHostAlloc of ", nbytes, " bytes of pinned host memory failed (", cudaGetErrorString(err), ")");
  }
  return p;
}

void host_pinned_free(void* ptr) {
  if (ptr) cudaFreeHost(ptr);
  cudaGetLastError();
}

// ---- copies -----------------------------------------------------------------------------------------
void copy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  if (nbytes == 0) return;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  const cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                            : cudaMemcpyDeviceToDevice;
  const cudaStream_t s = stream_of(device);
  MINIDL_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, k, s));
  // Waiting makes the copy safe for pageable host memory and tells the caller about any earlier
  // asynchronous kernel failure on the stream at a well-defined point.
  MINIDL_CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace minidl::cuda
