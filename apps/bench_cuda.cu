// GPU benchmarks of the CUDA backend against their references, measured in the same run (issue: CUDA
// backend; DESIGN.md workload W3):
//   gemm       our SIMT and TF32 kernels against cuBLAS (float32, and TF32 tensor-op math), 512 - 8192;
//   bandwidth  elementwise and reduction kernels against a device-to-device copy, at 64M elements.
// cuBLAS is linked into this program only: it is a yardstick, never a path of the library.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/bench_cuda.h"
#include "apps/cli_args.h"
#include "autograd/minidl.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/runtime.h"

namespace minidl::bench {
namespace {

#define CUBLAS_CHECK(call)                                                                                       \
  do {                                                                                                           \
    const cublasStatus_t s_ = (call);                                                                            \
    if (s_ != CUBLAS_STATUS_SUCCESS) ::minidl::fail(#call, " failed with cuBLAS status ", static_cast<int>(s_)); \
  } while (0)

double max_rel_diff(const Tensor& x, const Tensor& ref) {
  const std::vector<float> a = x.values<float>(), r = ref.values<float>();
  double worst = 0, scale = 0;
  for (float v : r) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - r[i]));
  return worst / std::max(scale, 1e-30);
}

}  // namespace

double device_ms(const std::function<void()>& fn) {
  const cudaStream_t s = cuda::stream_of(0);
  cudaEvent_t a, b;
  MINIDL_CUDA_CHECK(cudaEventCreate(&a));
  MINIDL_CUDA_CHECK(cudaEventCreate(&b));
  fn();
  fn();
  std::vector<double> t;
  double total = 0;
  while (t.size() < 5 || (total < 300 && t.size() < 50)) {
    MINIDL_CUDA_CHECK(cudaEventRecord(a, s));
    fn();
    MINIDL_CUDA_CHECK(cudaEventRecord(b, s));
    MINIDL_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    MINIDL_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
    total += ms;
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int cuda_gemm(int argc, char** argv) {
  std::vector<int64_t> sizes{512, 1024, 2048, 4096, 8192};
  std::string json_path;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--sizes" && i + 1 < argc)
      sizes = apps::parse_sizes("--sizes", argv[++i]);
    else if (a == "--json" && i + 1 < argc)
      json_path = argv[++i];
    else
      throw std::invalid_argument("unknown option " + a);
  }
  if (cuda_device_count() == 0) throw std::runtime_error("no CUDA device on this machine");
  const cuda::DeviceProperties props = cuda::device_properties(0);
  cublasHandle_t handle;
  CUBLAS_CHECK(cublasCreate(&handle));
  CUBLAS_CHECK(cublasSetStream(handle, cuda::stream_of(0)));
  std::printf("GPU SGEMM, row-major C = A B, %s (%d SMs)\n", props.name.c_str(), props.multiprocessors);
  std::printf("%6s | %12s %12s %7s | %12s %12s %7s | %10s %10s\n", "size", "ours fp32", "cuBLAS fp32", "ratio",
              "ours TF32", "cuBLAS TF32", "ratio", "err fp32", "err TF32");
  std::ostringstream json;
  json << "{\"device\": \"" << props.name << "\", \"gemm\": [";
  const Device gpu = Device::cuda(0);
  Generator gen(1);
  for (size_t k = 0; k < sizes.size(); ++k) {
    const int64_t n = sizes[k];
    const Tensor A = rand({n, n}, {.device = gpu}, &gen, -1, 1), B = rand({n, n}, {.device = gpu}, &gen, -1, 1);
    Tensor C = Tensor::empty({n, n}, kFloat32, gpu), R = Tensor::empty({n, n}, kFloat32, gpu);
    const float *pa = static_cast<const float*>(A.raw_data()), *pb = static_cast<const float*>(B.raw_data());
    float *pc = static_cast<float*>(C.raw_data()), *pr = static_cast<float*>(R.raw_data());
    const int ni = static_cast<int>(n);
    const float one = 1, zero = 0;
    // Row-major C = A B is column-major C^T = B^T A^T: cuBLAS sees the same bytes with A and B swapped.
    auto cublas = [&](cublasMath_t math) {
      CUBLAS_CHECK(cublasSetMathMode(handle, math));
      CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, ni, ni, ni, &one, pb, ni, pa, ni, &zero, pr, ni));
    };
    const double flops = 2.0 * n * n * n;
    auto tflops = [&](double ms) { return flops / (ms * 1e-3) / 1e12; };
    // Timed in cuBLAS's default math (float32 FMA; pedantic mode may run slower kernels), checked
    // against the pedantic result below.
    const double ref32 = tflops(device_ms([&] { cublas(CUBLAS_DEFAULT_MATH); }));
    const double ours32 =
        tflops(device_ms([&] { cuda::sgemm(cuda::GemmPath::Simt, n, n, n, pa, n, pb, n, pc, n, 0); }));
    const double err32 = max_rel_diff(C, R);
    const double reftf = tflops(device_ms([&] { cublas(CUBLAS_TF32_TENSOR_OP_MATH); }));
    const double ourstf =
        tflops(device_ms([&] { cuda::sgemm(cuda::GemmPath::Tf32, n, n, n, pa, n, pb, n, pc, n, 0); }));
    cublas(CUBLAS_PEDANTIC_MATH);
    const double errtf = max_rel_diff(C, R);
    std::printf("%6lld | %12.1f %12.1f %6.0f%% | %12.1f %12.1f %6.0f%% | %10.1e %10.1e\n", static_cast<long long>(n),
                ours32, ref32, 100 * ours32 / ref32, ourstf, reftf, 100 * ourstf / reftf, err32, errtf);
    json << (k ? ", " : "") << "{\"size\": " << n << ", \"ours_fp32_tflops\": " << ours32
         << ", \"cublas_fp32_tflops\": " << ref32 << ", \"ours_tf32_tflops\": " << ourstf
         << ", \"cublas_tf32_tflops\": " << reftf << ", \"max_rel_err_fp32\": " << err32
         << ", \"max_rel_err_tf32\": " << errtf << "}";
  }
  json << "]}\n";
  cublasDestroy(handle);
  std::printf("TFLOP/s; errors are the largest |ours - cuBLAS fp32| over the largest |cuBLAS fp32|.\n");
  if (!json_path.empty()) std::ofstream(json_path) << json.str();
  return 0;
}

int cuda_bandwidth(int argc, char** argv) {
  int64_t n = int64_t{1} << 26;  // 64M float32 elements, 256 MiB per tensor
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--elements" && i + 1 < argc)
      n = apps::parse_integer("--elements", argv[++i], 1);
    else
      throw std::invalid_argument("unknown option " + a);
  }
  if (cuda_device_count() == 0) throw std::runtime_error("no CUDA device on this machine");
  const cuda::DeviceProperties props = cuda::device_properties(0);
  const Device gpu = Device::cuda(0);
  Generator gen(2);
  const Tensor x = randn({n}, {.device = gpu}, &gen), y = randn({n}, {.device = gpu}, &gen);
  Tensor z = Tensor::empty({n}, kFloat32, gpu);
  const double bytes = static_cast<double>(n) * sizeof(float);
  const double copy_ms = device_ms([&] {
    MINIDL_CUDA_CHECK(
        cudaMemcpyAsync(z.raw_data(), x.raw_data(), n * sizeof(float), cudaMemcpyDeviceToDevice, cuda::stream_of(0)));
  });
  const double copy_gbs = 2 * bytes / (copy_ms * 1e-3) / 1e9;
  std::printf("Bandwidth at %lld float32 elements, %s; reference: device-to-device copy %.0f GB/s\n",
              static_cast<long long>(n), props.name.c_str(), copy_gbs);
  std::printf("%-34s %10s %10s %8s\n", "kernel", "ms", "GB/s", "vs copy");
  auto row = [&](const char* what, double moved_bytes, const std::function<void()>& fn) {
    const double ms = device_ms(fn);
    const double gbs = moved_bytes / (ms * 1e-3) / 1e9;
    std::printf("%-34s %10.3f %10.0f %7.0f%%\n", what, ms, gbs, 100 * gbs / copy_gbs);
  };
  // Kernels called directly on preallocated outputs: the figure is the kernel's, not the allocator's.
  row("unary tanh (read 1, write 1)", 2 * bytes, [&] { cuda::unary(UnaryOp::Tanh, {}, x, z); });
  row("binary add (read 2, write 1)", 3 * bytes, [&] { cuda::binary(BinaryOp::Add, x, y, z); });
  row("axpy y += a x (read 2, write 1)", 3 * bytes, [&] { cuda::axpy(0.5, x, z); });
  const Tensor s = Tensor::empty({}, kFloat32, gpu);
  row("sum, all elements (read 1)", bytes, [&] { cuda::reduce(ReduceOp::Sum, x, {0}, s); });
  const Tensor rows = x.view({n / 1024, 1024});
  const Tensor per_row = Tensor::empty({n / 1024}, kFloat32, gpu);
  row("sum over rows of 1024 (read 1)", bytes, [&] { cuda::reduce(ReduceOp::Sum, rows, {1}, per_row); });
  const Tensor per_col = Tensor::empty({1024}, kFloat32, gpu);
  row("sum over columns of 1024 (read 1)", bytes, [&] { cuda::reduce(ReduceOp::Sum, rows, {0}, per_col); });
  row("softmax, rows of 1024 (read 2, write 1)", 3 * bytes, [&] {
    cuda::softmax(rows, 1, false, z.view({n / 1024, 1024}));
  });
  return 0;
}

}  // namespace minidl::bench
