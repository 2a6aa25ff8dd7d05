// minidl benchmarks. Figures, never tests: every number is printed next to its reference measured in the
// same run, so the ratio can be read directly.
//
//   bench gemm [--sizes 256,512,1024,2048] [--threads N] [--json FILE]
//       CPU SGEMM (row-major C = A B, float32) against OpenBLAS's cblas_sgemm, loaded at run time from
//       Debian's libopenblas0-pthread (no build dependency). Both results are compared, so a figure is
//       only printed for a correct product.
//   bench loader [--data DIR] [--preset tiny|paper|all] [--workers N] [--batches N] [--cache DIR]
//       Loader throughput in clips per second (frames decoded, resized and normalised, audio cut and
//       turned into log-mel images) on a SynthAV training split, for the tiny and paper input sizes.
//       Without --data a small SynthAV set is generated once under the system's temporary folder.
//   bench layers [--threads N]
//       Forward and forward + backward times of the model's heaviest layers on the CPU: the audio stem conv,
//       the two halves of an R(2+1)D block, BatchNorm, and the 2-layer BiLSTM of workload W3.
//   bench w1 | w2 [--device cpu|cuda] [--steps N] [--math fp32|tf32|tf32-all] [--json FILE]
//                 [--profile N] [--trace FILE] [--graph FILE] [--detect-anomaly]
//       Full training steps of workloads W1 (JCA fusion) and W2 (the paper preset end to end), in
//       apps/bench_model.cpp; --math picks the CUDA kernels' arithmetic. W1 times its attention block fused
//       and composed of generic ops side by side (--jca fused|composed|both). --profile N profiles N more steps
//       and prints the op profiler's tables by op and by module (--trace FILE: their Chrome trace);
//       --graph FILE draws one step's autograd graph; --detect-anomaly times them with anomaly detection on.
//   bench jca [--device cpu|cuda] [--steps N] [--batch N]
//       The JCA attention block alone, forward and backward, fused and composed side by side (W1's sizes).
//   bench cuda-gemm [--sizes 512,...,8192] [--json FILE]      (GPU; apps/bench_cuda.cu)
//       Our SIMT and TF32 GEMM kernels against cuBLAS float32 and TF32 in the same run.
//   bench cuda-bandwidth [--elements N]                       (GPU)
//       Elementwise and reduction kernels against a device-to-device copy, at 64M elements.
//   bench cudnn-conv | cudnn-lstm [options]                   (GPU and cuDNN; apps/bench_cudnn.cu)
//       The W2 convolutions (all three passes) and the W3 BiLSTM against cuDNN in the same run.
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/bench_cuda.h"
#include "apps/bench_model.h"
#include "apps/cli_args.h"
#ifdef MINIDL_BENCH_CUDNN
#include "apps/bench_cudnn.h"
#endif
#include "autograd/minidl.h"
#include "cpu/kernels.h"
#include "data/affwild2.h"
#include "data/loader.h"
#include "data/synthav.h"
#include "layers/conv.h"
#include "layers/lstm.h"
#include "layers/norm.h"
#include "models/config.h"

namespace {

using namespace minidl;

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

// Median seconds of fn over repeats, after one warm-up call; repeats until ~0.5 s have been spent.
double time_median(const std::function<void()>& fn) {
  fn();
  std::vector<double> t;
  double total = 0;
  while (t.size() < 3 || (total < 0.5 && t.size() < 50)) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
    t.push_back(s);
    total += s;
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
constexpr int kRowMajor = 101, kNoTrans = 111;

struct Blas {
  Sgemm sgemm = nullptr;
  std::string name;
};

Blas load_openblas(int threads) {
  Blas b;
  for (const char* lib : {"libopenblas.so.0", "libopenblas.so"}) {
    void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    b.sgemm = reinterpret_cast<Sgemm>(dlsym(h, "cblas_sgemm"));
    if (auto set = reinterpret_cast<void (*)(int)>(dlsym(h, "openblas_set_num_threads"))) set(threads);
    b.name = lib;
    if (b.sgemm) return b;
  }
  return {};
}

int bench_gemm(int argc, char** argv) {
  std::vector<int64_t> sizes{256, 512, 1024, 2048};
  int threads = omp_get_max_threads();
  std::string json_path;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--sizes")
      sizes = apps::parse_sizes("--sizes", value());
    else if (a == "--threads")
      threads = static_cast<int>(apps::parse_integer("--threads", value(), 1, 1024));
    else if (a == "--json")
      json_path = value();
    else
      throw std::invalid_argument("unknown option " + a);
  }
  omp_set_num_threads(threads);
  const Blas blas = load_openblas(threads);
  std::printf("CPU SGEMM, row-major C = A B (float32), %d thread%s, %s\n", threads, threads == 1 ? "" : "s",
              cpu_model().c_str());
  if (!blas.sgemm)
    std::printf("OpenBLAS not found (install Debian's libopenblas0-pthread): printing minidl alone, no ratio.\n");
  std::printf("%6s %16s %18s %8s %14s\n", "size", "minidl GFLOP/s", "OpenBLAS GFLOP/s", "ratio", "max rel diff");
  std::ostringstream json;
  json << "{\"device\": \"" << cpu_model() << "\", \"threads\": " << threads << ", \"gemm\": [";
  Generator gen(1);
  for (size_t s = 0; s < sizes.size(); ++s) {
    const int64_t n = sizes[s];
    const Tensor a = rand({n, n}, {}, &gen, -1, 1), b = rand({n, n}, {}, &gen, -1, 1);
    Tensor c = zeros({n, n}), ref = zeros({n, n});
    const float *pa = a.data<float>(), *pb = b.data<float>();
    float *pc = c.data<float>(), *pr = ref.data<float>();
    const double flops = 2.0 * n * n * n;
    const double ours =
        flops / time_median([&] { cpu::gemm<float>(n, n, n, pa, n, 1, pb, n, 1, pc, n, 1, false); }) / 1e9;
    double theirs = 0, diff = 0;
    if (blas.sgemm) {
      const int ni = static_cast<int>(n);
      theirs = flops / time_median([&] {
                 blas.sgemm(kRowMajor, kNoTrans, kNoTrans, ni, ni, ni, 1.f, pa, ni, pb, ni, 0.f, pr, ni);
               }) /
               1e9;
      for (int64_t i = 0; i < n * n; ++i)
        diff = std::max(diff, std::fabs(double(pc[i]) - pr[i]) / (std::fabs(pr[i]) + 1.0));
      std::printf("%6lld %16.1f %18.1f %7.0f%% %14.2e\n", static_cast<long long>(n), ours, theirs, 100 * ours / theirs,
                  diff);
    } else {
      std::printf("%6lld %16.1f %18s %8s %14s\n", static_cast<long long>(n), ours, "-", "-", "-");
    }
    json << (s ? ", " : "") << "{\"size\": " << n << ", \"minidl_gflops\": " << ours
         << ", \"openblas_gflops\": " << theirs << "}";
  }
  json << "]}\n";
  if (!json_path.empty()) {
    std::ofstream(json_path) << json.str();
    std::printf("wrote %s\n", json_path.c_str());
  }
  return 0;
}

// The loader as training configures it for a model preset (models::loader_config), with the default
// run's augmentation: tiny, 4-frame 48 x 48 clips and 32 x 48 log-mel images, 16 sequences a batch (the
// default CPU run's); paper, 8-frame 112 x 112 clips and 64 x 107 log-mel images, 4 sequences (W2).
data::LoaderConfig loader_preset(const std::string& name, int workers, const std::string& cache) {
  if (name != "tiny" && name != "paper")
    throw std::invalid_argument("unknown preset " + name + " (tiny, paper or all)");
  data::LoaderConfig c = models::loader_config(models::model_preset(name));
  c.workers = workers;
  c.augment = c.flip = true;
  c.batch_size = name == "tiny" ? 16 : 4;
  c.cache_dir = cache;
  return c;
}

int bench_loader(int argc, char** argv) {
  std::string root, preset = "all", cache;
  int workers = omp_get_num_procs();
  int64_t batches = 20;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--data")
      root = value();
    else if (a == "--preset")
      preset = value();
    else if (a == "--workers")
      workers = static_cast<int>(apps::parse_integer("--workers", value(), 0, 256));
    else if (a == "--batches")
      batches = apps::parse_integer("--batches", value(), 1);
    else if (a == "--cache")
      cache = value();
    else
      throw std::invalid_argument("unknown option " + a);
  }
  if (root.empty()) {
    data::SynthAvConfig cfg;
    cfg.train_identities = 4;
    cfg.validation_identities = cfg.test_identities = 1;
    cfg.videos_per_identity = 1;
    root = (std::filesystem::temp_directory_path() / ("minidl-bench-synthav-" + std::to_string(cfg.seed))).string();
    if (!data::synthav_ready(root, cfg)) {
      std::filesystem::remove_all(root);
      std::printf("generating a small SynthAV set in %s ...\n", root.c_str());
      data::generate_synthav(root, cfg);
    }
  }
  const data::Dataset ds = data::read_affwild2({.root = root, .split = "Train_Set"});
  std::printf("Loader throughput on %s (%zu training videos), %d worker%s, %s\n", root.c_str(), ds.videos.size(),
              workers, workers == 1 ? "" : "s", cpu_model().c_str());
  std::printf("%8s %6s %14s %14s %10s\n", "preset", "batch", "clip", "log-mel", "clips/s");
  for (const std::string name : {"tiny", "paper"}) {
    if (preset != "all" && preset != name) continue;
    const data::LoaderConfig cfg = loader_preset(name, workers, cache);
    data::Loader loader(ds, cfg);
    data::Batch b;
    if (!loader.next(b)) throw std::runtime_error("the data set has no training windows");
    const auto start = std::chrono::steady_clock::now();
    int64_t clips = 0;
    for (int64_t k = 0; k < batches; ++k) {
      if (!loader.next(b))
        loader.start_epoch(b.epoch + 1);
      else
        clips += b.video.size(0) * b.video.size(1);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::string clip = std::to_string(cfg.windows.frames_per_clip) + "x" + std::to_string(cfg.image_size) + "^2";
    const std::string mel = std::to_string(b.audio.size(3)) + "x" + std::to_string(b.audio.size(4));
    std::printf("%8s %6d %14s %14s %10.0f\n", name.c_str(), cfg.batch_size, clip.c_str(), mel.c_str(), clips / s);
  }
  return 0;
}

// Median milliseconds of forward alone and of forward + backward (loss = sum of the output times a fixed
// random tensor, so every output element gets a gradient).
template <class Forward>
std::pair<double, double> time_layer(const Tensor& x, Forward forward) {
  Tensor input = x.detach();
  input.requires_grad_();
  const Tensor probe = forward(input);
  const Tensor weights = rand(probe.shape());
  const double fwd = time_median([&] {
    NoGradGuard no_grad;
    forward(input);
  });
  const double both = time_median([&] {
    sum(forward(input) * weights).backward();
    input.zero_grad();
  });
  return {fwd * 1e3, both * 1e3};
}

int bench_layers(int argc, char** argv) {
  int threads = omp_get_max_threads();
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc)
      threads = static_cast<int>(apps::parse_integer("--threads", argv[++i], 1, 1024));
    else
      throw std::invalid_argument("unknown option " + a);
  }
  omp_set_num_threads(threads);
  std::printf("Layers on the CPU (float32), %d thread%s, %s\n", threads, threads == 1 ? "" : "s", cpu_model().c_str());
  std::printf("%-46s %12s %16s\n", "layer and input", "forward ms", "fwd + bwd ms");
  Generator gen(3);
  auto row = [](const char* what, std::pair<double, double> t) {
    std::printf("%-46s %12.2f %16.2f\n", what, t.first, t.second);
  };
  nn::Conv2d stem(1, 64, 7, 2, 3, 1, 1, false, &gen);
  row("audio stem conv 7x7/2, [8,1,64,104] -> 64",
      time_layer(rand({8, 1, 64, 104}), [&](const Tensor& x) { return stem(x); }));
  nn::Conv3d spatial(64, 144, {1, 3, 3}, 1, {0, 1, 1}, 1, 1, false, &gen);
  row("(2+1)D spatial 1x3x3, [4,64,4,28,28] -> 144",
      time_layer(rand({4, 64, 4, 28, 28}), [&](const Tensor& x) { return spatial(x); }));
  nn::Conv3d temporal(144, 64, {3, 1, 1}, 1, {1, 0, 0}, 1, 1, false, &gen);
  row("(2+1)D temporal 3x1x1, [4,144,4,28,28] -> 64",
      time_layer(rand({4, 144, 4, 28, 28}), [&](const Tensor& x) { return temporal(x); }));
  nn::BatchNorm3d bn(64);
  row("BatchNorm3d (training), [4,64,4,28,28]",
      time_layer(rand({4, 64, 4, 28, 28}), [&](const Tensor& x) { return bn(x); }));
  nn::LSTM lstm(512, 256, {.num_layers = 2, .bidirectional = true, .batch_first = true}, &gen);
  row("BiLSTM 2 layers, 256/dir, [64,16,512] (W3)",
      time_layer(rand({64, 16, 512}), [&](const Tensor& x) { return lstm(x).output; }));
  return 0;
}

void usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s gemm [--sizes 256,512,1024,2048] [--threads N] [--json FILE]\n"
               "       %s loader [--data DIR] [--preset tiny|paper|all] [--workers N] [--batches N] [--cache DIR]\n"
               "       %s layers [--threads N]\n"
               "       %s w1|w2 [--device cpu|cuda] [--steps N] [--warmup N] [--json FILE]\n"
               "                  [--math fp32|tf32|tf32-all] [--profile N] [--trace FILE] [--graph FILE]\n"
               "                  [--detect-anomaly]\n"
               "                  (w1 also [--jca fused|composed|both]; w2 [--preset paper|small|tiny] [--batch N])\n"
               "       %s jca [--device cpu|cuda] [--steps N] [--batch N]\n"
               "       %s cuda-gemm [--sizes 512,1024,2048,4096,8192] [--json FILE]\n"
               "       %s cuda-bandwidth [--elements N]\n"
               "       %s cudnn-conv [--net video|audio|both] [--search accurate|heuristic|fastest] [--clips N]\n"
               "                  [--mel-frames F] [--algos] [--json FILE]\n"
               "       %s cudnn-lstm [--batch N] [--seq N] [--input N] [--hidden N] [--layers N] [--json FILE]\n"
               "  gemm            CPU SGEMM GFLOP/s next to OpenBLAS in the same run\n"
               "  loader          clips per second of the data loader on a SynthAV training split\n"
               "  layers          the model's heaviest layers on the CPU, forward and backward\n"
               "  w1, w2          training steps of workloads W1 (JCA fusion) and W2 (paper model end to end);\n"
               "                  --profile N adds the op profiler's tables for N more steps\n"
               "  jca             the JCA attention block, forward and backward, fused next to composed\n"
               "  cuda-gemm       GPU SGEMM (SIMT and TF32) next to cuBLAS in the same run\n"
               "  cuda-bandwidth  GPU elementwise and reduction bandwidth next to a device copy\n"
               "  cudnn-conv      the W2 convolutions, forward and both gradients, next to cuDNN\n"
               "  cudnn-lstm      the W3 BiLSTM forward and backward next to cuDNN\n",
               prog, prog, prog, prog, prog, prog, prog, prog, prog);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(argv[0]);
    return 2;
  }
  const std::string what = argv[1];
  if (what == "--help" || what == "-h") {
    usage(argv[0]);
    return 0;
  }
  try {
    if (what == "gemm") return bench_gemm(argc - 2, argv + 2);
    if (what == "loader") return bench_loader(argc - 2, argv + 2);
    if (what == "layers") return bench_layers(argc - 2, argv + 2);
    if (what == "w1") return bench::w1(argc - 2, argv + 2);
    if (what == "w2") return bench::w2(argc - 2, argv + 2);
    if (what == "jca") return bench::jca(argc - 2, argv + 2);
    if (what == "cudnn-conv" || what == "cudnn-lstm") {
#ifdef MINIDL_BENCH_CUDNN
      return what == "cudnn-conv" ? bench::cudnn_conv(argc - 2, argv + 2) : bench::cudnn_lstm(argc - 2, argv + 2);
#else
      std::fprintf(stderr, "bench: %s needs the CUDA backend and cuDNN; this build has no cuDNN\n", what.c_str());
      return 1;
#endif
    }
    if (what == "cuda-gemm" || what == "cuda-bandwidth") {
#ifdef MINIDL_BENCH_CUDA
      return what == "cuda-gemm" ? bench::cuda_gemm(argc - 2, argv + 2) : bench::cuda_bandwidth(argc - 2, argv + 2);
#else
      std::fprintf(stderr, "bench: %s needs the CUDA backend; this build has none (configure with -DMINIDL_CUDA=ON)\n",
                   what.c_str());
      return 1;
#endif
    }
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "bench: %s\n", e.what());
    usage(argv[0]);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "bench: unknown benchmark '%s'\n", what.c_str());
  usage(argv[0]);
  return 2;
}
