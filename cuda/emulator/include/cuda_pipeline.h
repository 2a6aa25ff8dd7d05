// Stands in for the toolkit's cuda_pipeline.h in the emulated build (cuda/emulator/emulator.h): the
// asynchronous global-to-shared copies the TF32 GEMM uses, queued per thread until waited for.
#pragma once

#include <cstddef>

#include "cuda/emulator/emulator.h"

inline void __pipeline_memcpy_async(void* dst, const void* src, size_t bytes, size_t zero_fill = 0) {
  minidl::emu::pipeline_copy(dst, src, bytes, zero_fill);
}
inline void __pipeline_commit() { minidl::emu::pipeline_commit(); }
inline void __pipeline_wait_prior(size_t groups) { minidl::emu::pipeline_wait_prior(groups); }
