// The CUDA runtime layer (cuda/runtime.h): moving tensors between host and device, the caching
// allocator and its statistics, streams, pinned host memory. Every test that needs a GPU skips itself,
// saying so, where there is none; on a machine with one they run for real.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>
#include <tuple>

#include "autograd/minidl.h"
#include "cuda/runtime.h"
#include "tests/cuda/check_probe.h"
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

TEST(CudaRuntime, WithoutAGpuMovingToCudaIsAClearError) {
  if (have_gpu()) GTEST_SKIP() << "this machine has a GPU; the error path is for machines without one";
  try {
    zeros({2}).to(Device::cuda(0));
    FAIL() << "expected minidl::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}

TEST(CudaRuntime, AFailedCallOrLaunchIsAnErrorNamingFileLineAndCudasMessage) {
#ifdef MINIDL_TEST_CHECK_PROBE
  REQUIRE_GPU();
  const FailedCheck call = failing_call();
  EXPECT_NE(call.message.find("check_probe.cu:" + std::to_string(call.line) + ": cudaSetDevice(-1) failed"),
            std::string::npos)
      << call.message;
  EXPECT_NE(call.message.find("cudaErrorInvalidDevice (invalid device ordinal)"), std::string::npos) << call.message;
  EXPECT_EQ(call.error_after, "cudaSuccess") << "the error must not be left for the next check to report";
  const FailedCheck launch = failing_launch();
  EXPECT_NE(launch.message.find("check_probe.cu:" + std::to_string(launch.line) + ": launching never_runs failed"),
            std::string::npos)
      << launch.message;
  EXPECT_NE(launch.message.find("cudaErrorInvalidConfiguration"), std::string::npos) << launch.message;
  EXPECT_EQ(launch.error_after, "cudaSuccess");
  // Neither failure is sticky: the device still works.
  EXPECT_EQ((ones({3}).to(kGpu) + 1).values<float>(), (std::vector<float>{2, 2, 2}));
#else
  GTEST_SKIP() << "minidl was built without CUDA: this test needs a GPU";
#endif
}

TEST(CudaRuntime, RoundTripKeepsValues) {
  REQUIRE_GPU();
  const Tensor x = randn({3, 5});
  const Tensor d = x.to(Device::cuda(0));
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(d.shape(), x.shape());
  EXPECT_EQ(d.to(Device::cpu()).values<float>(), x.values<float>());
  EXPECT_EQ(d.values<float>(), x.values<float>()) << "values() copies device tensors back";
}

TEST(CudaRuntime, NonContiguousViewsCopyBothWays) {
  REQUIRE_GPU();
  const Tensor x = arange(24).reshape({2, 3, 4});
  const Tensor view = x.permute({2, 0, 1}).slice(0, 1, 4, 2);
  EXPECT_EQ(view.to(Device::cuda(0)).to(Device::cpu()).values<float>(), view.values<float>());
  const Tensor d = x.to(Device::cuda(0)).permute({2, 0, 1}).slice(0, 1, 4, 2);  // a view on the device
  EXPECT_EQ(d.to(Device::cpu()).values<float>(), view.values<float>());
}

TEST(CudaRuntime, GradientFlowsBackAcrossTheCopy) {
  REQUIRE_GPU();
  Tensor x = from_vector(std::vector<double>{1, 2, 3});
  x.requires_grad_();
  const Tensor back = x.to(Device::cuda(0)).to(Device::cpu());
  sum(back * 2.0).backward();
  EXPECT_EQ(x.grad().values<float>(), (std::vector<float>{2, 2, 2}));
}

TEST(CudaRuntime, FactoriesPlaceTensorsOnTheDevice) {
  REQUIRE_GPU();
  const Tensor o = ones({4}, {.device = Device::cuda(0)});
  EXPECT_TRUE(o.device().is_cuda());
  EXPECT_DOUBLE_EQ(o.values<float>()[3], 1.0);
  Generator a(3), b(3);
  EXPECT_EQ(rand({100}, {.device = Device::cuda(0)}, &a).values<float>(), rand({100}, {}, &b).values<float>());
}

// Contiguous fills and arange are Thrust calls (cuda/sequence.cu): every dtype, bit for bit the CPU's
// values, at sizes that are not a multiple of anything (Thrust's tiles leave a tail).
TEST(CudaRuntime, ThrustFillsAndSequencesEqualTheCpu) {
  REQUIRE_GPU();
  for (DType d : {kFloat32, kFloat64, kInt64, kBool}) {
    SCOPED_TRACE(dtype_name(d));
    for (int64_t n : {1, 33, 4097}) {
      const Tensor g = full({n}, -2.75, {.dtype = d, .device = kGpu}), c = full({n}, -2.75, {.dtype = d});
      EXPECT_EQ(g.values<double>(), c.values<double>()) << n;
    }
    Tensor t = zeros({3, 1000}, {.dtype = d, .device = kGpu});
    t.fill_(1.0);  // in place, the whole (contiguous) tensor
    EXPECT_EQ(t.values<double>(), ones({3, 1000}, {.dtype = d}).values<double>());
    if (d == kBool) continue;
    for (auto [start, end, step] :
         {std::tuple{0.0, 4097.0, 1.0}, {0.1, 3.3, 0.1}, {5.0, -7.0, -0.35}, {-3.0, 1e5, 7.0}}) {
      const Tensor g = arange(start, end, step, {.dtype = d, .device = kGpu}),
                   c = arange(start, end, step, {.dtype = d});
      EXPECT_EQ(g.values<double>(), c.values<double>()) << start << ":" << end << ":" << step;
    }
  }
}

// ---- the caching allocator ---------------------------------------------------------------------------

TEST(CudaAllocator, SizeClasses) {
  if (!cuda_built()) GTEST_SKIP() << "minidl was built without CUDA: the allocator is not in this build";
  EXPECT_EQ(cuda::size_class(0), 512u);
  EXPECT_EQ(cuda::size_class(1), 512u);
  EXPECT_EQ(cuda::size_class(513), 1024u);
  EXPECT_EQ(cuda::size_class(1u << 20), 1u << 20);
  EXPECT_EQ(cuda::size_class((1u << 20) + 1), 5u << 18);  // 1.25 MiB
  EXPECT_EQ(cuda::size_class(3u << 20), 3u << 20);        // 1.5 x 2 MiB
  EXPECT_EQ(cuda::size_class((7u << 20) + 1), 8u << 20);  // above 1.75 x 4 MiB: the next power
  for (size_t n : {size_t{1000}, size_t{123456}, size_t{5} << 20, size_t{1} << 30}) {
    EXPECT_GE(cuda::size_class(n), n);
    EXPECT_LE(cuda::size_class(n), n + n / 4 + 512) << n;  // at most a quarter wasted above 1 MiB
  }
}

TEST(CudaAllocator, FreedBlocksAreReusedWithoutCudaMalloc) {
  REQUIRE_GPU();
  if (const char* env = std::getenv("MINIDL_CUDA_CACHING"); env && std::string(env) == "0")
    GTEST_SKIP() << "caching is turned off by MINIDL_CUDA_CACHING=0";
  const cuda::MemoryStats before = cuda::memory_stats(0);
  void* first = nullptr;
  {
    const Tensor t = Tensor::empty({3, 1000, 1000}, kFloat32, kGpu);  // 12 MB: its own size class
    first = t.raw_data();
    const cuda::MemoryStats during = cuda::memory_stats(0);
    EXPECT_GE(during.in_use, before.in_use + 12000000);
    EXPECT_GE(during.peak_in_use, during.in_use);
  }
  const cuda::MemoryStats after_free = cuda::memory_stats(0);
  EXPECT_EQ(after_free.in_use, before.in_use);
  EXPECT_GE(after_free.cached, cuda::size_class(12000000));
  const Tensor again = Tensor::empty({3, 1000, 1000}, kFloat32, kGpu);
  EXPECT_EQ(again.raw_data(), first) << "the freed block should come back";
  EXPECT_EQ(cuda::memory_stats(0).cuda_mallocs, after_free.cuda_mallocs) << "no cudaMalloc on reuse";
  EXPECT_EQ(cuda::memory_stats(0).allocations, after_free.allocations + 1);
}

TEST(CudaAllocator, EmptyCacheGivesBlocksBack) {
  REQUIRE_GPU();
  { const Tensor t = Tensor::empty({1 << 22}, kFloat32, kGpu); }
  const cuda::MemoryStats before = cuda::memory_stats(0);
  cuda::empty_cache(0);
  const cuda::MemoryStats after = cuda::memory_stats(0);
  EXPECT_EQ(after.cached, 0u);
  EXPECT_GE(after.cuda_frees, before.cuda_frees + (before.cached > 0 ? 1 : 0));
  EXPECT_NE(after.str().find("bytes in use"), std::string::npos) << after.str();
}

TEST(CudaAllocator, OutOfMemoryIsAClearError) {
  REQUIRE_GPU();
  const int64_t huge = int64_t{1} << 48;  // 256 TiB of float32: no GPU has it
  try {
    const Tensor t = Tensor::empty({huge}, kFloat32, kGpu);
    FAIL() << "expected minidl::Error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cudaMalloc of " + std::to_string(huge * 4) + " bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda:0"), std::string::npos) << m;
    EXPECT_NE(m.find("bytes free"), std::string::npos) << m;
    EXPECT_NE(m.find("bytes in use"), std::string::npos) << m;
  }
  // The device is still usable afterwards.
  EXPECT_EQ(ones({3}, {.device = kGpu}).values<float>(), (std::vector<float>{1, 1, 1}));
}

// ---- streams and threads -------------------------------------------------------------------------------

TEST(CudaStreams, KernelsFollowTheCurrentStream) {
  REQUIRE_GPU();
  cuda::StreamHandle s = cuda::create_stream(0);
  Tensor y;
  const Tensor x = arange(1000, {.device = kGpu});
  cuda::synchronize(0);  // x is written on the shared stream; s must not read it before that is done
  {
    const cuda::StreamGuard guard(s, 0);
    EXPECT_EQ(cuda::current_stream(0), s);
    y = exp(x * 0.001) + 1.0;  // queued on s
    cuda::synchronize(0);
  }
  EXPECT_NE(cuda::current_stream(0), s) << "the guard restores the shared stream";
  EXPECT_CLOSE(y, exp(arange(1000) * 0.001) + 1.0, 1e-7, 1e-6);
  cuda::destroy_stream(s, 0);
}

TEST(CudaStreams, ThreadsShareTheDeviceStream) {
  REQUIRE_GPU();
  // Two threads computing at once on the shared stream: each gets its own right answer.
  std::vector<float> a, b;
  std::thread t1([&] { a = (arange(5000, {.device = kGpu}) * 2.0).values<float>(); });
  std::thread t2([&] { b = (arange(5000, {.device = kGpu}) + 3.0).values<float>(); });
  t1.join();
  t2.join();
  EXPECT_EQ(a, (arange(5000) * 2.0).values<float>());
  EXPECT_EQ(b, (arange(5000) + 3.0).values<float>());
}

TEST(CudaPinned, PinnedHostMemoryRoundTrip) {
  REQUIRE_GPU();
  float* host = static_cast<float*>(cuda::host_pinned_malloc(1000 * sizeof(float)));
  for (int i = 0; i < 1000; ++i) host[i] = static_cast<float>(i) * 0.5f;
  const Tensor d = Tensor::empty({1000}, kFloat32, kGpu);
  cuda::copy(d.raw_data(), host, 1000 * sizeof(float), cuda::CopyKind::HostToDevice, 0);
  const std::vector<float> back = d.values<float>();
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(back[i], host[i]);
  cuda::host_pinned_free(host);
}

TEST(CudaRuntime, DevicePropertiesNameTheGpu) {
  REQUIRE_GPU();
  const cuda::DeviceProperties p = cuda::device_properties(0);
  EXPECT_FALSE(p.name.empty());
  EXPECT_GT(p.multiprocessors, 0);
  EXPECT_GT(p.total_memory, 0u);
  EXPECT_THROW(cuda::device_properties(cuda_device_count()), Error);
}

// ---- asynchronous uploads (cuda::Uploader) ----------------------------------------------------------

TEST(CudaUpload, WithoutAGpuTheUploaderIsAClearError) {
  if (have_gpu()) GTEST_SKIP() << "this machine has a GPU; the error path is for machines without one";
  try {
    cuda::Uploader uploader(0, 2);
    FAIL() << "expected minidl::Error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.find("cuda:0") != std::string::npos || what.find("without CUDA") != std::string::npos) << what;
  }
}

TEST(CudaUpload, PartsArriveWholeAndTheSourcesAreFreeAtOnce) {
  REQUIRE_GPU();
  EXPECT_THROW(cuda::Uploader(0, 0), Error);
  cuda::Uploader uploader(0, 2);
  // Odd sizes, so parts do not fill their 256-byte places in the staging buffer, and an empty one.
  std::vector<std::vector<float>> host = {std::vector<float>(1), std::vector<float>(4097), {}, std::vector<float>(33)};
  std::vector<std::vector<float>> expected;
  std::vector<Tensor> dst;
  std::vector<cuda::Uploader::Part> parts;
  for (size_t p = 0; p < host.size(); ++p) {
    for (size_t i = 0; i < host[p].size(); ++i) host[p][i] = static_cast<float>(p * 10000 + i);
    expected.push_back(host[p]);
    dst.push_back(Tensor::empty({static_cast<int64_t>(host[p].size())}, kFloat32, kGpu));
    parts.push_back({dst.back().raw_data(), host[p].data(), host[p].size() * sizeof(float)});
  }
  cuda::Upload upload = uploader.upload(parts);
  for (auto& h : host) std::fill(h.begin(), h.end(), -1.0f);  // the sources were packed before upload returned
  upload.wait_on_current_stream();
  for (size_t p = 0; p < host.size(); ++p) EXPECT_EQ(dst[p].values<float>(), expected[p]) << "part " << p;
}

TEST(CudaUpload, MoreUploadsThanStagingBuffersFromSeveralThreads) {
  REQUIRE_GPU();
  cuda::Uploader uploader(0, 2);
  constexpr int kThreads = 4, kEach = 12, kFloats = 100000;
  std::vector<std::vector<Tensor>> out(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int u = 0; u < kEach; ++u) {
        std::vector<float> src(kFloats, static_cast<float>(t * 1000 + u));
        Tensor d = Tensor::empty({kFloats}, kFloat32, kGpu);
        cuda::Upload up = uploader.upload({{d.raw_data(), src.data(), src.size() * sizeof(float)}});
        up.wait_on_current_stream();
        out[t].push_back(d);
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t)
    for (int u = 0; u < kEach; ++u) {
      const std::vector<float> v = out[t][u].values<float>();
      EXPECT_EQ(std::count(v.begin(), v.end(), static_cast<float>(t * 1000 + u)), kFloats) << t << ", " << u;
    }
}

// The copy must not write a block that a kernel queued earlier on the shared stream still reads. The
// products below are queued, and every operand of them but the last has been freed on the host (its
// block back in the shared stream's bin) by the time the upload's destination is allocated, most likely
// one of those blocks. Without the copy stream's wait the upload would overwrite it mid-chain.
TEST(CudaUpload, CopiesWaitForKernelsStillReadingTheBlock) {
  REQUIRE_GPU();
  SKIP_IF_EMULATED("no kernel is still reading when the upload starts");
  const char* caching = std::getenv("MINIDL_CUDA_CACHING");
  if (caching && std::string(caching) == "0")
    GTEST_SKIP() << "MINIDL_CUDA_CACHING=0: freed blocks go back to the driver, which waits for the device first";
  cuda::Uploader uploader(0, 1);  // one staging buffer: the warm-up below sizes the one the test uses
  const int64_t n = 2048;
  std::vector<float> junk(static_cast<size_t>(n * n), 1e30f);
  // A permutation matrix: the chain's products move values around without growing or rounding them.
  std::vector<float> perm(static_cast<size_t>(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i * n + (i * 7 + 3) % n)] = 1.0f;
  const Tensor a = from_vector(perm, {n, n}).to(kGpu);
  const Tensor start = randn({n, n}).to(kGpu);
  auto chain = [&] {
    Tensor p = start;
    for (int i = 0; i < 150; ++i) p = matmul(p, a);  // 2.6 TFLOP: tens of milliseconds of queued work
    return p;
  };
  {  // warm-up: the first upload allocates the pinned buffer, which could give the chain time to finish
    Tensor d = Tensor::empty({n, n}, kFloat32, kGpu);
    uploader.upload({{d.raw_data(), junk.data(), junk.size() * sizeof(float)}}).wait_on_current_stream();
    cuda::synchronize(0);
  }
  const Tensor product = chain();
  const Tensor dst = Tensor::empty({n, n}, kFloat32, kGpu);
  uploader.upload({{dst.raw_data(), junk.data(), junk.size() * sizeof(float)}}).wait_on_current_stream();
  const Tensor again = chain();
  EXPECT_EQ(product.values<float>(), again.values<float>()) << "the upload wrote into a block still being read";
  EXPECT_EQ(dst.values<float>(), junk);
}

// An upload destroyed without being waited for waits on the host, so its destination can be freed and
// handed out again: the new tenant's contents are its own, not the late copy's.
TEST(CudaUpload, ADroppedUploadFinishesBeforeItsMemoryIsReused) {
  REQUIRE_GPU();
  cuda::Uploader uploader(0, 3);
  const int64_t n = 1 << 22;
  std::vector<float> ones(static_cast<size_t>(n), 1.0f);
  for (int round = 0; round < 5; ++round) {
    {
      Tensor d = Tensor::empty({n}, kFloat32, kGpu);
      cuda::Upload up = uploader.upload({{d.raw_data(), ones.data(), ones.size() * sizeof(float)}});
    }  // the upload, then its destination, go away without anyone waiting on the device
    const Tensor z = zeros({n}, {.device = kGpu});
    const std::vector<float> v = z.values<float>();
    EXPECT_EQ(std::count(v.begin(), v.end(), 0.0f), n) << "round " << round;
  }
}
