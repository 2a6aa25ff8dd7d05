// The CUDA runtime layer: device discovery, the caching allocator's interface, pinned host memory,
// streams, copies and asynchronous uploads. Plain C++ declarations, so the CPU-only build compiles
// against them too: cuda/runtime.cu, cuda/allocator.cu and cuda/upload.cu implement them with CUDA, and
// cuda/runtime_stub.cpp (built when CUDA is off) answers "no devices" and refuses the rest with a clear
// error.
//
// Streams: every kernel of the CUDA backend runs on the calling thread's current stream of its device.
// Unless a StreamGuard says otherwise that is one non-blocking stream per device, shared by all threads,
// so work from the loader's threads and the training loop is ordered on it and memory freed by one
// thread can be handed to the next allocation without any event.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace minidl::cuda {

bool built();
// True in the emulated build (-DMINIDL_CUDA=EMULATE): its one device is the CPU (cuda/emulator/emulator.h).
bool emulated();
int device_count();

struct DeviceProperties {
  std::string name;
  int major = 0, minor = 0;     // compute capability
  int multiprocessors = 0;      // SMs
  size_t total_memory = 0;      // bytes
  size_t shared_per_block = 0;  // opt-in maximum, bytes
};
DeviceProperties device_properties(int device);

// ---- streams ------------------------------------------------------------------------------------
using StreamHandle = void*;  // a cudaStream_t

// The calling thread's current stream on `device` (the device's shared stream unless a guard is active).
StreamHandle current_stream(int device);
// A new non-blocking stream on `device`; the caller destroys it.
StreamHandle create_stream(int device);
void destroy_stream(StreamHandle stream, int device);
// Blocks until everything queued on the current stream of `device` has finished.
void synchronize(int device);

// Timing events, for the op profiler: an event recorded on the current stream completes when the work
// queued before it has; the time between two completed events is the GPU's time for the work between
// them.
using EventHandle = void*;  // a cudaEvent_t
EventHandle create_event(int device);
void destroy_event(EventHandle event, int device);
void record_event(EventHandle event, int device);  // on the calling thread's current stream of `device`
// Milliseconds from `start` to `end`; both must have been recorded and have completed (synchronize).
float elapsed_ms(EventHandle start, EventHandle end);

// Makes `stream` the calling thread's current stream of `device` for a scope. Memory allocated while it
// is active is reused only by later allocations on the same stream; a tensor used on several streams
// must be kept alive (or the streams synchronised) until they are done with it.
class StreamGuard {
 public:
  StreamGuard(StreamHandle stream, int device);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  StreamHandle previous_;
  int device_;
};

// ---- device memory (cuda/allocator.cu) ------------------------------------------------------------
// Allocation goes through a caching allocator: sizes are rounded to size classes, freed blocks are kept
// in per-stream bins and handed out again without cudaMalloc/cudaFree on the hot path. Out of memory, it
// releases its cache and retries once; then it throws a minidl::Error with the request and the statistics.
// MINIDL_CUDA_CACHING=0 in the environment turns caching off (every block is cudaMalloc'ed and freed at
// once), so compute-sanitizer sees every allocation at its real size.
void* device_malloc(size_t nbytes, int device);
void device_free(void* ptr, int device);

struct MemoryStats {
  size_t in_use = 0;         // bytes handed out (rounded to size classes)
  size_t peak_in_use = 0;    // the most in_use has been since the last reset_peak_memory
  size_t cached = 0;         // bytes of freed blocks kept for reuse
  size_t requested = 0;      // bytes asked for by the blocks in use (before rounding)
  int64_t allocations = 0;   // device_malloc calls
  int64_t cuda_mallocs = 0;  // of them, the ones that needed cudaMalloc
  int64_t cuda_frees = 0;    // blocks given back to the driver (empty_cache, out-of-memory retries)
  // One line for logs and error messages.
  std::string str() const {
    return std::to_string(in_use) + " bytes in use (peak " + std::to_string(peak_in_use) + "), " +
           std::to_string(cached) + " cached, " + std::to_string(allocations) + " allocations of which " +
           std::to_string(cuda_mallocs) + " called cudaMalloc, " + std::to_string(cuda_frees) + " blocks freed";
  }
};
MemoryStats memory_stats(int device);
void reset_peak_memory(int device);
// Gives every cached (free) block back to the driver.
void empty_cache(int device);
// The size class a request of nbytes is rounded up to (exposed for the tests).
size_t size_class(size_t nbytes);

// ---- pinned host memory -------------------------------------------------------------------------
// Page-locked host memory: copies from it to a device run at full bus speed and can be asynchronous.
void* host_pinned_malloc(size_t nbytes);
void host_pinned_free(void* ptr);

// ---- asynchronous uploads (the data loader's batches) --------------------------------------------------
// copy() above queues on the shared stream: it waits for every kernel queued before it, holds up every
// kernel after it, and from pageable memory it also blocks the host. An Uploader instead packs the host
// data into pinned staging memory and copies it on a stream of its own, so that batch k+1 crosses the
// bus while step k computes.
//
// The destinations are ordinary device memory, allocated on the caller's current stream like any
// tensor's. Two waits keep that safe, and neither blocks the host: before writing, the copy stream
// waits for the work queued on the caller's stream when upload() is called (any kernel still reading a
// destination block's previous tenant is among it); before reading, the consumer's stream waits for
// the copy (Upload::wait_on_current_stream).
class Upload;

class Uploader {
 public:
  struct Part {
    void* device_dst;
    const void* host_src;
    size_t nbytes;
  };
  // staging_buffers: how many uploads may be in flight at once; a further upload() waits on the host
  // for the oldest one to finish, so that its staging memory can be reused.
  Uploader(int device, int staging_buffers);
  ~Uploader();  // waits for its copies
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;
  // Starts copying every part; the host sources may be reused as soon as it returns. Thread-safe.
  Upload upload(const std::vector<Part>& parts);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One upload in flight. Destroyed before wait_on_current_stream() was called, it waits on the host for
// its copies, so that the destination memory can be freed and handed out again safely.
class Upload {
 public:
  Upload() = default;
  Upload(Upload&& other) noexcept : event_(other.event_), device_(other.device_) { other.event_ = nullptr; }
  Upload& operator=(Upload&& other) noexcept {
    if (this != &other) {
      finish();
      event_ = other.event_;
      device_ = other.device_;
      other.event_ = nullptr;
    }
    return *this;
  }
  ~Upload() { finish(); }
  // Orders everything queued later on the calling thread's current stream of the device after the
  // copies. Once called, the Upload is done.
  void wait_on_current_stream();

 private:
  friend class Uploader;
  Upload(void* event, int device) : event_(event), device_(device) {}
  void finish() noexcept;  // the host-side wait of the destructor
  void* event_ = nullptr;  // a cudaEvent_t recorded after the copies; null once done
  int device_ = -1;
};

// ---- copies ---------------------------------------------------------------------------------------
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
// Copies on the current stream of `device` and waits for it to finish (the host memory may be reused
// as soon as it returns).
void copy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device);

}  // namespace minidl::cuda
