// Shared by every CUDA source: the check that turns a failed CUDA call into a minidl::Error with the
// file, line and CUDA's own message.
#pragma once

#include <cuda_runtime.h>

#include "autograd/error.h"

#define MINIDL_CUDA_CHECK(call)                                                                              \
  do {                                                                                                       \
    const cudaError_t minidl_err_ = (call);                                                                  \
    if (minidl_err_ != cudaSuccess)                                                                          \
      ::minidl::fail(__FILE__, ":", __LINE__, ": ", #call, " failed: ", cudaGetErrorName(minidl_err_), " (", \
                     cudaGetErrorString(minidl_err_), ")");                                                  \
  } while (0)
