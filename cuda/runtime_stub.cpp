// cuda/runtime.h for a build without CUDA: no devices, and a clear error for anything that needs one.
#include "autograd/error.h"
#include "cuda/runtime.h"

namespace minidl::cuda {

namespace {
[[noreturn]] void not_built(const char* what) {
  fail(what, ": minidl was built without CUDA; install the CUDA toolkit and configure with -DMINIDL_CUDA=ON");
}
}  // namespace

bool built() { return false; }
bool emulated() { return false; }
int device_count() { return 0; }
DeviceProperties device_properties(int) { not_built("device_properties"); }

StreamHandle current_stream(int) { not_built("current_stream"); }
StreamHandle create_stream(int) { not_built("create_stream"); }
void destroy_stream(StreamHandle, int) {}
void synchronize(int) { not_built("synchronize"); }
EventHandle create_event(int) { not_built("create_event"); }
void destroy_event(EventHandle, int) {}
void record_event(EventHandle, int) { not_built("record_event"); }
float elapsed_ms(EventHandle, EventHandle) { not_built("elapsed_ms"); }
StreamGuard::StreamGuard(StreamHandle, int device) : previous_(nullptr), device_(device) { not_built("StreamGuard"); }
StreamGuard::~StreamGuard() = default;

void* device_malloc(size_t, int) { not_built("allocate"); }
void device_free(void*, int) {}
MemoryStats memory_stats(int) { return {}; }
void reset_peak_memory(int) {}
void empty_cache(int) {}
size_t size_class(size_t nbytes) { return nbytes; }

void* host_pinned_malloc(size_t) { not_built("pinned host memory"); }
void host_pinned_free(void*) {}

struct Uploader::Impl {};
Uploader::Uploader(int, int) { not_built("uploader"); }
Uploader::~Uploader() = default;
Upload Uploader::upload(const std::vector<Part>&) { not_built("uploader"); }
void Upload::wait_on_current_stream() {}
void Upload::finish() noexcept {}

void copy(void*, const void*, size_t, CopyKind, int) { not_built("copy"); }

}  // namespace minidl::cuda
