// Small kernels that probe the CUDA emulator itself (tests/cuda/test_cuda_emulator.cpp): each launcher
// runs one on host-visible buffers and returns the launch's error, so a test can check both what the
// kernel computed and what the emulator refused.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace minidl::emulator_test {

// Every thread t writes t to shared memory (dynamic, or a static array of 128 when `static_shared`),
// then (after a barrier when `barrier`) reads its neighbour's slot, (t + 1) % threads.
cudaError_t neighbour_exchange(int threads, bool barrier, std::vector<float>& out, bool static_shared = false);

// A block of `threads` sums its thread indices with warp shuffles and a block reduction.
cudaError_t block_sum_of_indices(int threads, std::vector<float>& out);

// Lane i of one warp receives, from each shuffle with width `width`: down by 3, up by 5, xor 6, and
// lane 2 of its group. Four values per lane.
cudaError_t shuffles(int width, std::vector<int>& out);

// A full-mask __shfl_xor_sync after lanes >= `live` have returned.
cudaError_t shuffle_after_exit(int live);

// Threads below 16 wait at __syncthreads while the rest of their warp waits at a full-mask __syncwarp.
cudaError_t barrier_and_warp_sync_mixed();

// Threads below 16 wait at one __syncthreads, the others at another.
cudaError_t divergent_barriers();

// A kernel with 40 KB of static shared memory, launched with `dynamic` bytes of dynamic shared memory.
cudaError_t static_and_dynamic_shared(size_t dynamic);

// Shuffles with arguments outside [0, 32): xor with lane mask 33 and down by 40, per lane.
cudaError_t far_shuffles(std::vector<int>& out);

// One empty kernel with the given configuration and dynamic shared memory; `opt_in` > 0 calls
// cudaFuncSetAttribute for that many bytes first (its error is returned if it fails).
cudaError_t empty_launch(dim3 grid, dim3 block, size_t shared, int opt_in);

// Each of 4 threads copies 16 bytes (the last `zero_fill` of them zeroed) into shared memory with
// cp.async and reads its first float before and after waiting: 8 values.
cudaError_t pipeline_copy(size_t zero_fill, std::vector<float>& out);

// Two warps each compute D = A B + 1 (A 16 x 8, B 8 x 8, row-major) with cuda/mma.cuh's mma_tf32_16x8x8,
// loading their fragments where its comment says, into out[0, 128) and out[128, 256); lane
// `skipping_lane` (-1: none) of the second warp calls no mma.
cudaError_t mma_product(const std::vector<float>& a, const std::vector<float>& b, int skipping_lane,
                        std::vector<float>& out);

}  // namespace minidl::emulator_test
