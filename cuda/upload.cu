// Asynchronous uploads through pinned staging memory (cuda/runtime.h, "asynchronous uploads").
//
// Each staging buffer is a slot: one upload packs its parts into a free slot, queues the copies on the
// uploader's stream and records the slot's event after them. The slot is free again once that event
// has completed, which the next upload to take it waits for on the host; until then the copy engine is
// still reading it.
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/runtime.h"

namespace minidl::cuda {

namespace {
constexpr size_t kPartAlignment = 256;  // each part starts on its own 256-byte boundary of the buffer

// Blocking sync: a worker waiting for a slot sleeps instead of spinning on a core its siblings decode on.
cudaEvent_t new_event() {
  cudaEvent_t e = nullptr;
  MINIDL_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming | cudaEventBlockingSync));
  return e;
}

size_t aligned(size_t nbytes) { return (nbytes + kPartAlignment - 1) / kPartAlignment * kPartAlignment; }
}  // namespace

struct Uploader::Impl {
  struct Slot {
    void* pinned = nullptr;
    size_t capacity = 0;
    cudaEvent_t copied = nullptr;     // recorded after the copies that read `pinned`
    cudaEvent_t allocated = nullptr;  // recorded on the caller's stream, for the copies to wait on
    bool taken = false;               // a thread is packing or queueing into it
  };
  int device = 0;
  // Made and destroyed with the raw CUDA calls, not create_stream / destroy_stream: nothing is ever
  // allocated on it, so it has no blocks in the allocator to hand over.
  cudaStream_t stream = nullptr;
  std::vector<Slot> slots;
  size_t next_slot = 0;  // slots are taken round-robin, so the oldest upload is the one waited for
  std::mutex mutex;
  std::condition_variable returned;

  // Also what a half-built uploader releases when its constructor fails, so it cannot throw.
  ~Impl() {
    if (slots.empty()) return;  // the constructor refused its arguments before touching the device
    const DeviceGuard guard(device);
    if (stream) cudaStreamSynchronize(stream);
    for (auto& s : slots) {
      host_pinned_free(s.pinned);
      if (s.copied) cudaEventDestroy(s.copied);
      if (s.allocated) cudaEventDestroy(s.allocated);
    }
    if (stream) cudaStreamDestroy(stream);
    cudaGetLastError();  // a failed copy has already been reported by a wait on its upload
  }

  // Gives the slot back however upload() leaves.
  struct Taken {
    Impl& impl;
    Slot& slot;
    ~Taken() {
      {
        const std::lock_guard<std::mutex> lock(impl.mutex);
        slot.taken = false;
      }
      impl.returned.notify_one();
    }
  };

  Slot& take() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      for (size_t i = 0; i < slots.size(); ++i) {
        Slot& s = slots[(next_slot + i) % slots.size()];
        if (s.taken) continue;
        next_slot = (next_slot + i + 1) % slots.size();
        s.taken = true;
        return s;
      }
      returned.wait(lock);
    }
  }
};

Uploader::Uploader(int device, int staging_buffers) : impl_(std::make_unique<Impl>()) {
  MINIDL_CHECK(device >= 0 && device < device_count(), "uploader: no device cuda:", device, " (this machine has ",
               device_count(), ")");
  MINIDL_CHECK(staging_buffers > 0, "uploader: staging_buffers must be positive, got ", staging_buffers);
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  impl_->device = device;
  impl_->slots.resize(static_cast<size_t>(staging_buffers));
  for (auto& s : impl_->slots) {
    s.copied = new_event();
    s.allocated = new_event();
  }
  impl_->stream = static_cast<cudaStream_t>(create_stream(device));
}

Uploader::~Uploader() = default;

Upload Uploader::upload(const std::vector<Part>& parts) {
  Impl& d = *impl_;
  size_t total = 0;
  for (const Part& p : parts) total += aligned(p.nbytes);
  const DeviceGuard guard(d.device);
  MINIDL_CUDA_CHECK(guard.status());

  Impl::Slot& slot = d.take();
  const Impl::Taken taken{d, slot};
  MINIDL_CUDA_CHECK(cudaEventSynchronize(slot.copied));  // the copy engine is done reading the slot
  if (slot.capacity < total) {
    host_pinned_free(slot.pinned);
    slot.pinned = nullptr;
    slot.capacity = 0;
    slot.pinned = host_pinned_malloc(total);
    slot.capacity = total;
  }
  size_t offset = 0;
  for (const Part& p : parts) {
    if (p.nbytes > 0) std::memcpy(static_cast<char*>(slot.pinned) + offset, p.host_src, p.nbytes);
    offset += aligned(p.nbytes);
  }

  // The destinations were allocated on the caller's stream: whatever is queued there now may still
  // be reading their blocks' previous tenants, so the copies go after it.
  MINIDL_CUDA_CHECK(cudaEventRecord(slot.allocated, stream_of(d.device)));
  // The wait takes the event as recorded now, so the slot's next upload may record it again at once.
  MINIDL_CUDA_CHECK(cudaStreamWaitEvent(d.stream, slot.allocated, 0));

  const cudaEvent_t done = new_event();
  cudaError_t err = cudaSuccess;
  offset = 0;
  for (const Part& p : parts) {
    if (err == cudaSuccess && p.nbytes > 0)
      err = cudaMemcpyAsync(p.device_dst, static_cast<char*>(slot.pinned) + offset, p.nbytes, cudaMemcpyHostToDevice,
                            d.stream);
    offset += aligned(p.nbytes);
  }
  if (err == cudaSuccess) err = cudaEventRecord(slot.copied, d.stream);
  if (err == cudaSuccess) err = cudaEventRecord(done, d.stream);
  if (err != cudaSuccess) {
    // Copies queued before the failure still read the slot and write the destinations, which the
    // caller frees when this throws: let them finish first.
    cudaStreamSynchronize(d.stream);
    cudaEventDestroy(done);
    MINIDL_CUDA_CHECK(err);
  }
  return Upload(done, d.device);
}

void Upload::wait_on_current_stream() {
  if (!event_) return;
  const DeviceGuard guard(device_);
  MINIDL_CUDA_CHECK(guard.status());
  const auto e = static_cast<cudaEvent_t>(event_);
  MINIDL_CUDA_CHECK(cudaStreamWaitEvent(stream_of(device_), e, 0));  // on failure the destructor still waits
  cudaEventDestroy(e);
  event_ = nullptr;
}

void Upload::finish() noexcept {
  if (!event_) return;
  const DeviceGuard guard(device_);
  const auto e = static_cast<cudaEvent_t>(event_);
  cudaEventSynchronize(e);
  cudaEventDestroy(e);
  cudaGetLastError();  // a destructor cannot throw; the consumer's next check reports a broken device
  event_ = nullptr;
}

}  // namespace minidl::cuda
