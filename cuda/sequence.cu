// Fills and sequences through Thrust: writing one value, or start + i step, into a contiguous buffer is a
// pure store stream with nothing to tile or share, which Thrust's kernels do at the memory's speed with
// no code of ours to get wrong. The kernels that have a design of their own (reductions, softmax,
// GEMM, the optimisers' multi-tensor norm and updates) stay handwritten; so does the strided fill of a
// view, which is one more functor of the elementwise map (cuda/elementwise.cu).
//
// Thrust runs on the tensor's current stream without waiting for it (par_nosync), like every kernel
// here. Under the emulator (-DMINIDL_CUDA=EMULATE) the device's memory is host memory and launches run
// at once, so the same calls go to Thrust's sequential host backend.
#include <cmath>
#include <type_traits>

#ifdef MINIDL_CUDA_EMULATED
#define THRUST_DEVICE_SYSTEM THRUST_DEVICE_SYSTEM_CPP
#endif
#include <thrust/execution_policy.h>
#include <thrust/fill.h>
#include <thrust/system_error.h>
#include <thrust/tabulate.h>

#include "cpu/dtype_dispatch.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

auto on_current_stream(int device) {
#ifdef MINIDL_CUDA_EMULATED
  (void)device;
  return thrust::cpp::par;
#else
  return thrust::cuda::par_nosync.on(stream_of(device));
#endif
}

// Thrust reports a failed launch as a thrust::system_error; it becomes a minidl::Error naming the op.
template <class Body>
void run_on(const char* op, const Tensor& t, Body body) {
  const int device = t.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  try {
    body(on_current_stream(device));
  } catch (const thrust::system_error& e) {
    fail(op, " (Thrust) failed on ", t.meta_str(), ": ", e.what());
  }
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

}  // namespace

void fill_contiguous(const Tensor& dst, double value) {
  MINIDL_CHECK(dst.is_contiguous(), "fill_contiguous: ", dst.meta_str(), " is a strided view");
  if (dst.numel() == 0) return;
  cpu::any_dispatch(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = device_data<T>(dst);
    const T v = convert_value<T>(value);
    run_on("fill", dst, [&](auto policy) { thrust::fill_n(policy, p, dst.numel(), v); });
  });
}

void arange(const Tensor& out, double start, double step) {
  MINIDL_CHECK(out.is_contiguous(), "arange: the output must be contiguous, got ", out.meta_str());
  const int64_t n = out.numel();
  if (n == 0) return;
  auto sequence = [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    run_on("arange", out, [&](auto policy) { thrust::tabulate(policy, p, p + n, ArangeAt<T>{start, step}); });
  };
  switch (out.dtype()) {
    case DType::Float32: sequence(device_data<float>(out)); break;
    case DType::Float64: sequence(device_data<double>(out)); break;
    case DType::Int64: sequence(device_data<int64_t>(out)); break;
    case DType::Bool: fail("arange: bool is not an arithmetic dtype");
  }
}

}  // namespace minidl::cuda
