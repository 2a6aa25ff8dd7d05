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
int device_count() { return 0; }
void* device_malloc(size_t, int) { not_built("allocate"); }
void device_free(void*, int) {}
void copy(void*, const void*, size_t, CopyKind, int) { not_built("copy"); }

}  // namespace minidl::cuda
