// tests/cuda/check_probe.cu: the error checks of cuda/common.cuh, made to fail on purpose.
#pragma once

#include <string>

namespace minidl::cuda_test {

struct FailedCheck {
  std::string message;      // the minidl::Error's what(), "" if nothing was thrown
  int line = 0;             // the line of the check in check_probe.cu
  std::string error_after;  // cudaGetErrorName of cudaGetLastError() once the error was caught
};

FailedCheck failing_call();    // MINIDL_CUDA_CHECK(cudaSetDevice(-1))
FailedCheck failing_launch();  // a launch of 2048 threads per block, then MINIDL_CUDA_CHECK_LAUNCH

}  // namespace minidl::cuda_test
