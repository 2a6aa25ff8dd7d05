// Makes the two error checks of cuda/common.cuh fire, for tests/cuda/test_cuda_runtime.cpp: a CUDA call
// that fails (a device that does not exist) and a launch the device refuses (more threads per block than
// any GPU has). Each returns the minidl::Error's message and the line of the failing check, so the test
// can tell that the message names this file and line, CUDA's error name and its description.
#include "cuda/common.cuh"
#include "tests/cuda/check_probe.h"

namespace minidl::cuda_test {
namespace {

__global__ void never_runs(int* p) { *p = 1; }

}  // namespace

FailedCheck failing_call() {
  FailedCheck r;
  try {
    r.line = __LINE__ + 1;
    MINIDL_CUDA_CHECK(cudaSetDevice(-1));
  } catch (const Error& e) {
    r.message = e.what();
  }
  r.error_after = cudaGetErrorName(cudaGetLastError());
  return r;
}

FailedCheck failing_launch() {
  FailedCheck r;
  try {
    never_runs<<<1, 2048>>>(nullptr);
    r.line = __LINE__ + 1;
    MINIDL_CUDA_CHECK_LAUNCH("never_runs");
  } catch (const Error& e) {
    r.message = e.what();
  }
  r.error_after = cudaGetErrorName(cudaGetLastError());
  return r;
}

}  // namespace minidl::cuda_test
