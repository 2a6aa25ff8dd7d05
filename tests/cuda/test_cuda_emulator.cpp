// The CUDA emulator's own tests (built with -DMINIDL_CUDA=EMULATE only): that barriers and warp shuffles
// give CUDA's results, that the faults it promises to report (cuda/emulator/emulator.h) are reported,
// and that the GPU's launch limits, cp.async and the mma.sync fragment layout are modelled. The kernels
// they run are in emulator_kernels.cu.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "cuda/emulator/emulator.h"
#include "tests/cuda/emulator_kernels.h"

namespace minidl::emulator_test {
namespace {

TEST(CudaEmulator, IsWhatThisBuildRuns) {
  ASSERT_TRUE(cuda_emulated());
  EXPECT_EQ(cuda_device_count(), 1);
}

TEST(CudaEmulator, ABarrierOrdersSharedMemoryAndItsAbsenceShows) {
  for (const bool static_shared : {false, true}) {
    SCOPED_TRACE(static_shared ? "static __shared__ array" : "dynamic shared memory");
    std::vector<float> out;
    ASSERT_EQ(neighbour_exchange(96, true, out, static_shared), cudaSuccess);
    for (int t = 0; t < 96; ++t) EXPECT_EQ(out[t], static_cast<float>((t + 1) % 96)) << "thread " << t;
    // Without the barrier each thread runs to its end before the next starts. In the usual order each
    // reads its neighbour's slot before the neighbour wrote it: the NaN that shared memory starts each
    // block as (the run above left numbers there); only the last thread reads a written slot (thread
    // 0's). In reverse order it is the other way round.
    ASSERT_EQ(neighbour_exchange(96, false, out, static_shared), cudaSuccess);
    const bool reverse = emu::reverse_order();
    for (int t = 0; t < 95; ++t)
      if (reverse)
        EXPECT_EQ(out[t], static_cast<float>(t + 1)) << "thread " << t;
      else
        EXPECT_TRUE(std::isnan(out[t])) << "thread " << t << " read " << out[t];
    if (reverse)
      EXPECT_TRUE(std::isnan(out[95])) << "thread 95 read " << out[95];
    else
      EXPECT_EQ(out[95], 0.0f);
  }
}

TEST(CudaEmulator, CopiesStayInsideTheirAllocationAndHandlesMustBeLive) {
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 100), cudaSuccess);
  std::vector<char> host(200);
  EXPECT_EQ(cudaMemcpy(p, host.data(), 100, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(p, host.data(), 101, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(host.data(), static_cast<char*>(p) + 50, 51, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(host.data(), host.data() + 100, 10, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(cudaFree(p), cudaErrorInvalidValue);
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorInvalidResourceHandle);
  EXPECT_EQ(cudaMalloc(&p, size_t{1} << 40), cudaErrorMemoryAllocation);
  (void)cudaGetLastError();
}

TEST(CudaEmulator, BlockSumOverWarpsAndBarriers) {
  for (int threads : {32, 64, 256, 1024}) {
    std::vector<float> out;
    ASSERT_EQ(block_sum_of_indices(threads, out), cudaSuccess);
    const float expected = static_cast<float>(threads) * (threads - 1) / 2;
    for (int t = 0; t < threads; ++t) ASSERT_EQ(out[t], expected) << threads << " threads, thread " << t;
  }
}

TEST(CudaEmulator, ShufflesFollowCudasRulesForEveryWidth) {
  for (int width : {32, 16, 8, 4}) {
    std::vector<int> out;
    ASSERT_EQ(shuffles(width, out), cudaSuccess);
    for (int lane = 0; lane < 32; ++lane) {
      const int start = lane / width * width;
      SCOPED_TRACE("width " + std::to_string(width) + ", lane " + std::to_string(lane));
      // Outside the lane's group of `width`, down and up return the caller's own value.
      EXPECT_EQ(out[lane * 4 + 0], lane + 3 < start + width ? lane + 3 : lane);
      EXPECT_EQ(out[lane * 4 + 1], lane - 5 >= start ? lane - 5 : lane);
      EXPECT_EQ(out[lane * 4 + 2], (lane ^ 6) < start + width ? lane ^ 6 : lane);
      EXPECT_EQ(out[lane * 4 + 3], start + 2 % width);
    }
  }
}

// Stricter than CUDA's minimum, which lets exited lanes drop out of a mask: NVIDIA's guidance is that
// every lane a mask names executes the intrinsic, and the kernels here follow it.
TEST(CudaEmulator, AShuffleWhoseMaskNamesAnExitedLaneIsReported) {
  EXPECT_EQ(shuffle_after_exit(32), cudaSuccess);
  EXPECT_EQ(shuffle_after_exit(20), cudaErrorLaunchFailure);
}

TEST(CudaEmulator, ShuffleArgumentsOutsideTheWarpFollowShflSync) {
  std::vector<int> out;
  ASSERT_EQ(far_shuffles(out), cudaSuccess);
  for (int lane = 0; lane < 32; ++lane) {
    EXPECT_EQ(out[lane * 2], lane ^ 1) << "lane " << lane << ": a lane mask uses its low five bits";
    EXPECT_EQ(out[lane * 2 + 1], lane) << "lane " << lane << ": a delta past the warp gives the own value";
  }
}

TEST(CudaEmulator, BarriersInDivergentCodeAreAFault) { EXPECT_EQ(divergent_barriers(), cudaErrorLaunchFailure); }

TEST(CudaEmulator, StaticAndDynamicSharedMemoryCountTogether) {
  EXPECT_EQ(static_and_dynamic_shared(8 * 1024), cudaSuccess);  // 40 + 8 KB: exactly the default limit
  EXPECT_EQ(static_and_dynamic_shared(8 * 1024 + 4), cudaErrorLaunchFailure);
}

TEST(CudaEmulator, AWarpSplitBetweenSyncthreadsAndSyncwarpIsAFault) {
  EXPECT_EQ(barrier_and_warp_sync_mixed(), cudaErrorLaunchFailure);
}

TEST(CudaEmulator, LaunchesTheGpuWouldRefuseAreRefused) {
  EXPECT_EQ(empty_launch(dim3(1), dim3(1024), 0, 0), cudaSuccess);
  EXPECT_EQ(empty_launch(dim3(1), dim3(1025), 0, 0), cudaErrorInvalidConfiguration);
  EXPECT_EQ(empty_launch(dim3(1), dim3(1, 1, 65), 0, 0), cudaErrorInvalidConfiguration);
  EXPECT_EQ(empty_launch(dim3(1, 65535), dim3(32), 0, 0), cudaSuccess);
  EXPECT_EQ(empty_launch(dim3(1, 65536), dim3(32), 0, 0), cudaErrorInvalidConfiguration);
  EXPECT_EQ(empty_launch(dim3(0), dim3(32), 0, 0), cudaErrorInvalidConfiguration);
  // Dynamic shared memory past 48 KB needs the kernel's opt-in, and the opt-in is capped at 227 KB.
  EXPECT_EQ(empty_launch(dim3(1), dim3(32), 48 * 1024, 0), cudaSuccess);
  EXPECT_EQ(empty_launch(dim3(1), dim3(32), 48 * 1024 + 4, 0), cudaErrorInvalidValue);
  EXPECT_EQ(empty_launch(dim3(1), dim3(32), 100 * 1024, 100 * 1024), cudaSuccess);
  EXPECT_EQ(empty_launch(dim3(1), dim3(32), 0, 228 * 1024), cudaErrorInvalidValue);
}

// The launch count (MINIDL_CUDA_EMULATOR_LAUNCHES) counts what ran, by kernel and configuration, most
// launched first; a refused launch did not run; counting again starts from nothing.
TEST(CudaEmulator, LaunchesAreCountedByKernelAndConfiguration) {
  emu::count_launches(true);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(empty_launch(dim3(2, 3), dim3(64), 0, 0), cudaSuccess);
  ASSERT_EQ(empty_launch(dim3(5), dim3(32, 2), 0, 0), cudaSuccess);
  ASSERT_EQ(empty_launch(dim3(1), dim3(1025), 0, 0), cudaErrorInvalidConfiguration);
  std::vector<float> out;
  ASSERT_EQ(neighbour_exchange(32, true, out), cudaSuccess);
  const std::string table = emu::launch_table();
  emu::count_launches(false);
  const std::vector<std::string> want = {
      "launches  blocks  threads  kernel",
      "3  6  64  empty_kernel  grid 2 x 3 x 1  block 64 x 1 x 1",
      "1  5  64  empty_kernel  grid 5 x 1 x 1  block 32 x 2 x 1",
      "1  1  32  neighbour_kernel  grid 1 x 1 x 1  block 32 x 1 x 1",
      "5 launches of 3 kernel configurations",
  };
  std::string expected;
  for (const std::string& line : want) expected += line + "\n";
  EXPECT_EQ(table, expected);
  emu::count_launches(true);
  EXPECT_EQ(emu::launch_table(), "launches  blocks  threads  kernel\n0 launches of 0 kernel configurations\n");
  emu::count_launches(false);
}

TEST(CudaEmulator, AsynchronousCopiesLandWhenWaitedFor) {
  std::vector<float> out;
  ASSERT_EQ(pipeline_copy(0, out), cudaSuccess);
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(out[t * 2], -1.0f) << "thread " << t << " saw the copy before waiting";
    EXPECT_EQ(out[t * 2 + 1], static_cast<float>(t * 4 + 4)) << "thread " << t;
  }
  ASSERT_EQ(pipeline_copy(8, out), cudaSuccess);  // the last two floats of each 16 bytes zeroed
  for (int t = 0; t < 4; ++t) EXPECT_EQ(out[t * 2 + 1], 0.0f) << "thread " << t;
}

// The emulated mma.sync holds the PTX fragment layout that cuda/mma.cuh documents (the kernel loads by
// that layout, so a different one in the emulation scrambles the product), rounds nothing itself but
// drops the inputs' low 13 bits as the tensor cores do, and reports a lane that skips the mma.
TEST(CudaEmulator, MmaSyncFragmentsFollowThePtxLayout) {
  std::vector<float> a(128), b(64);
  for (int i = 0; i < 128; ++i) a[i] = static_cast<float>(i % 7) - 3;
  for (int i = 0; i < 64; ++i) b[i] = static_cast<float>(i % 5) - 2;
  b[9] = 1.0f + 3.0f / 4096.0f;  // B[1][1]: rounds to 1 + 2^-10 (round_to_tf32 in the kernel)
  std::vector<float> out;
  ASSERT_EQ(mma_product(a, b, -1, out), cudaSuccess);
  for (int w = 0; w < 2; ++w)
    for (int r = 0; r < 16; ++r)
      for (int c = 0; c < 8; ++c) {
        double s = 1;
        for (int k = 0; k < 8; ++k) s += a[r * 8 + k] * (k == 1 && c == 1 ? 1.0 + 1.0 / 1024 : b[k * 8 + c]);
        EXPECT_EQ(out[w * 128 + r * 8 + c], static_cast<float>(s)) << "warp " << w << ", D[" << r << "][" << c << "]";
      }
  EXPECT_EQ(mma_product(a, b, 13, out), cudaErrorLaunchFailure);
}

}  // namespace
}  // namespace minidl::emulator_test
