#include "autograd/storage.h"

#include <cstdlib>
#include <new>

#include "autograd/error.h"
#include "cuda/runtime.h"

namespace minidl {

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  // A zero-size tensor still gets a distinct, valid pointer, so views and copies need no special case.
  MINIDL_CHECK(nbytes <= (size_t{1} << 62), "allocate: ", nbytes, " bytes is more than any machine has");
  const size_t padded = nbytes == 0 ? 64 : (nbytes + 63) / 64 * 64;
  void* p = nullptr;
  if (device.is_cpu()) {
    p = std::aligned_alloc(64, padded);
    MINIDL_CHECK(p != nullptr, "allocate: out of host memory while allocating ", nbytes, " bytes");
  } else {
    p = cuda::device_malloc(padded, device.index);
  }
  return std::shared_ptr<Storage>(new Storage(p, nbytes, device));
}

Storage::~Storage() {
  if (device_.is_cpu())
    std::free(data_);
  else
    cuda::device_free(data_, device_.index);
}

}  // namespace minidl
