// Full training steps of DESIGN.md's workloads W1 and W2 on minidl's kernels (apps/bench w1 | w2): forward,
// the CCC loss, backward, clipping and an optimiser step, on random inputs of the workload's shapes, timed
// step by step (each step ends in loss.item(), which waits for the device). tools/bench_workloads.py is the
// PyTorch version of the same steps, so both can run in one script on a GPU.
//   W1 fusion:     B = 64 sequences of L = 16 clips, 512-d audio and visual features -> JCA (d 128, k 32)
//                  -> heads -> loss -> backward -> Adam.
//   W2 end to end: B = 4 sequences of L = 16 clips; clips 3 x 8 x 112 x 112 and 1 x 64 x F log-mel
//                  images (F from the paper preset's audio settings) -> the paper preset's whole model.
//                  `--preset tiny --batch 16` times the default CPU training run's step the same way.
// --profile N then profiles N more steps with the op profiler (autograd/profiler.h) and prints its tables;
// --trace FILE writes their Chrome trace; --graph FILE draws one step's autograd graph; --detect-anomaly
// times the steps with anomaly detection on.
#include "apps/bench_model.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "apps/cli_args.h"
#include "autograd/minidl.h"
#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "data/logmel.h"
#include "models/emotion_model.h"
#include "models/fusion.h"
#include "optim/optimizer.h"

namespace minidl::bench {
namespace {

struct Options {
  Device device = Device::cpu();
  int steps = 20, warmup = 3;
  std::string json;
  std::string preset = "paper";  // w2 only
  int64_t batch = 0;             // w2 and jca: sequences per step (0: the workload's, 4 for W2, 64 for jca)
  // The CUDA kernels' arithmetic: fp32 (SIMT float32 everywhere), tf32 (TF32 tensor cores for the
  // convolutions, float32 matmuls: PyTorch's defaults) or tf32-all (TF32 matmuls too).
  std::string math = "fp32";
  std::string jca = "both";     // w1: the attention block fused, composed, or both (timed side by side)
  int profile = 0;              // after the timing, profile this many more steps and print the op profiler's tables
  std::string trace;            // with profile: write the Chrome trace of those steps here
  std::string graph;            // write the autograd graph of one step here (DOT, and SVG beside it with Graphviz)
  bool detect_anomaly = false;  // time the steps with anomaly detection on (its cost)
};

void apply_math(const std::string& math) {
  if (math != "fp32" && math != "tf32" && math != "tf32-all")
    throw std::invalid_argument("--math fp32|tf32|tf32-all, not " + math);
  cuda::set_conv_path(math == "fp32" ? cuda::GemmPath::Simt : cuda::GemmPath::Tf32);
  cuda::set_gemm_path(math == "tf32-all" ? cuda::GemmPath::Tf32 : cuda::GemmPath::Simt);
}

Options parse(int argc, char** argv, int default_steps) {
  Options o;
  o.steps = default_steps;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--detect-anomaly") {
      o.detect_anomaly = true;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--device")
      o.device = parse_device(v);
    else if (a == "--steps")
      o.steps = static_cast<int>(apps::parse_integer("--steps", v, 1, 1 << 20));
    else if (a == "--warmup")
      o.warmup = static_cast<int>(apps::parse_integer("--warmup", v, 0, 1 << 20));
    else if (a == "--json")
      o.json = v;
    else if (a == "--preset")
      o.preset = v;
    else if (a == "--batch")
      o.batch = static_cast<int>(apps::parse_integer("--batch", v, 1, 1 << 16));
    else if (a == "--math")
      o.math = v;
    else if (a == "--jca")
      o.jca = v;
    else if (a == "--profile")
      o.profile = static_cast<int>(apps::parse_integer("--profile", v, 1, 1000));
    else if (a == "--trace")
      o.trace = v;
    else if (a == "--graph")
      o.graph = v;
    else
      throw std::invalid_argument("unknown option " + a);
  }
  apply_math(o.math);
  if (o.jca != "fused" && o.jca != "composed" && o.jca != "both")
    throw std::invalid_argument("--jca fused|composed|both, not " + o.jca);
  return o;
}

std::string device_name(Device d) {
  if (d.is_cpu()) return "CPU (" + std::to_string(omp_get_max_threads()) + " threads)";
  return cuda::device_properties(d.index).name;
}

// One way of running a workload's step (the step returns its loss).
struct Variant {
  std::string name;
  std::function<double()> step;
};

// Times the variants' steps after their warm-up, taking one step of each in turn, so that a machine whose
// speed drifts (this one's does, by a third from one minute to the next) slows them alike; prints each
// one's median and, with --profile, the first one's op profile.
void run_steps(const Options& o, int64_t clips_per_step, const std::vector<Variant>& variants) {
  if (o.device.is_cuda()) cuda::reset_peak_memory(o.device.index);
  const DetectAnomalyGuard anomaly(o.detect_anomaly);
  for (const Variant& v : variants)
    for (int i = 0; i < o.warmup; ++i) v.step();
  std::vector<std::vector<double>> t(variants.size());
  std::vector<double> loss(variants.size());
  for (int i = 0; i < o.steps; ++i)
    for (size_t k = 0; k < variants.size(); ++k) {
      const auto a = std::chrono::steady_clock::now();
      loss[k] = variants[k].step();
      t[k].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
    }
  std::ostringstream json;
  for (size_t k = 0; k < variants.size(); ++k) {
    std::vector<double>& times = t[k];
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    std::printf("%s on %s (%s%s): median step %.2f ms (min %.2f, max %.2f, %d steps), %.0f clips/s, last loss %.4f\n",
                variants[k].name.c_str(), device_name(o.device).c_str(),
                o.device.is_cuda() ? o.math.c_str() : "float32", o.detect_anomaly ? ", anomaly detection on" : "",
                median * 1e3, times.front() * 1e3, times.back() * 1e3, o.steps, clips_per_step / median, loss[k]);
    json << (k ? ",\n " : "") << "{\"workload\": \"" << variants[k].name << "\", \"device\": \""
         << device_name(o.device) << "\", \"math\": \"" << (o.device.is_cuda() ? o.math : "float32")
         << "\", \"median_ms\": " << median * 1e3 << ", \"clips_per_s\": " << clips_per_step / median << "}";
  }
  if (variants.size() > 1)
    std::printf("  %s / %s: %.2fx\n", variants[1].name.c_str(), variants[0].name.c_str(),
                t[1][t[1].size() / 2] / t[0][t[0].size() / 2]);
  if (o.device.is_cuda()) {
    const cuda::MemoryStats m = cuda::memory_stats(o.device.index);
    std::printf("  peak GPU memory %.1f MiB in use (%.1f MiB cached)\n", m.peak_in_use / 1048576.0,
                m.cached / 1048576.0);
  }
  if (!o.json.empty()) std::ofstream(o.json) << (variants.size() > 1 ? "[" + json.str() + "]" : json.str()) << "\n";
  if (o.profile > 0) {
    profiler::Profiler prof;
    for (int i = 0; i < o.profile; ++i) {
      const profiler::Range r("step");
      variants[0].step();
    }
    prof.stop();
    std::printf("\nOp profile of %s\n%s", variants[0].name.c_str(), prof.report().c_str());
    if (!o.trace.empty()) {
      std::ofstream(o.trace) << prof.chrome_trace();
      std::printf("Chrome trace of the profiled steps: %s (open in https://ui.perfetto.dev or chrome://tracing)\n",
                  o.trace.c_str());
    }
  }
}

// --graph FILE: the graph of one forward (DOT, and an SVG beside it where Graphviz is installed).
void write_graph(const Options& o, const Tensor& loss, const nn::Module& model, const std::string& title) {
  if (o.graph.empty()) return;
  const std::string wrote = minidl::write_graph(o.graph, loss, {.names = model.named_parameters(), .title = title});
  std::printf("graph of one step: %s\n", wrote.c_str());
}

optim::NamedTensors trainable(const nn::Module& m) {
  optim::NamedTensors out;
  for (const auto& [n, p] : m.named_parameters())
    if (p.requires_grad()) out.emplace_back(n, p);
  return out;
}

}  // namespace

int w1(int argc, char** argv) {
  const Options o = parse(argc, argv, 50);
  const int64_t B = 64, L = 16, D = 512;
  // The fused attention block and its composition, from the same initial weights.
  struct Setup {
    std::unique_ptr<Generator> gen;  // the heads' dropout draws from it: it lives as long as the fusion
    std::shared_ptr<models::FusionHeads> fusion;
    std::unique_ptr<optim::Adam> adam;
  };
  auto make = [&](bool composed) {
    models::FusionConfig fc;
    fc.kind = "jca";
    fc.clips = L;
    fc.composed_block = composed;
    Setup s{std::make_unique<Generator>(1), nullptr, nullptr};
    s.fusion = models::make_fusion(fc, s.gen.get());
    s.fusion->to(o.device);
    s.fusion->train();
    s.adam = std::make_unique<optim::Adam>(trainable(*s.fusion), 1e-4);
    return s;
  };
  Generator gen(2);
  const TensorOptions on{.device = o.device};
  const Tensor audio = randn({B, L, D}, on, &gen), visual = randn({B, L, D}, on, &gen);
  const Tensor labels = rand({B, L, 2}, on, &gen, -1, 1);
  bool drawn = o.graph.empty();
  auto step_of = [&](Setup& s) {
    return [&] {
      s.adam->zero_grad();
      Tensor loss;
      {
        const profiler::Range r("forward");
        loss = ccc_loss((*s.fusion)(audio, visual), labels);
      }
      if (!drawn) write_graph(o, loss, *s.fusion, "W1: JCA fusion, heads and CCC loss"), drawn = true;
      {
        const profiler::Range r("backward");
        loss.backward();
      }
      const profiler::Range r("optimizer");
      s.adam->step();
      return loss.item();
    };
  };
  Setup fused = make(false), composed = make(true);
  std::vector<Variant> variants;
  if (o.jca != "composed") variants.push_back({"W1 (JCA fusion, B 64 x L 16, 512-d features, Adam)", step_of(fused)});
  if (o.jca != "fused") variants.push_back({"W1 with the block composed of generic ops", step_of(composed)});
  run_steps(o, B * L, variants);
  return 0;
}

int jca(int argc, char** argv) {
  const Options o = parse(argc, argv, 30);
  const int64_t B = o.batch > 0 ? o.batch : 64, L = 16, d = 128, k = 32;
  Generator gen(3);
  const TensorOptions on{.device = o.device};
  auto leaf = [&](const Shape& s, double scale) { return (randn(s, on, &gen) * scale).requires_grad_(); };
  const Tensor xa = leaf({B, L, d}, 1), xv = leaf({B, L, d}, 1);
  const JcaWeights wa{leaf({L, L}, 0.25), leaf({k, L}, 0.25), leaf({k, 2 * d}, 0.06), leaf({L, k}, 0.2)};
  const JcaWeights wv{leaf({L, L}, 0.25), leaf({k, L}, 0.25), leaf({k, 2 * d}, 0.06), leaf({L, k}, 0.2)};
  const Tensor up = randn({2 * B * L * d}, on, &gen);
  auto step_of = [&](auto op) {
    return [&, op] {
      for (const Tensor* t : {&xa, &xv, &wa.affine, &wa.w, &wa.w_c, &wa.w_h, &wv.affine, &wv.w, &wv.w_c, &wv.w_h})
        t->zero_grad();
      const JcaResult r = op(xa, xv, wa, wv);
      const Tensor out = cat({r.audio.reshape({-1}), r.visual.reshape({-1})});
      sum(out * up).backward();
      return wa.w_c.grad().reshape({-1}).select(0, 0).item();
    };
  };
  std::printf("The JCA block alone, forward and backward: B %lld, L %lld, d %lld, k %lld\n", static_cast<long long>(B),
              static_cast<long long>(L), static_cast<long long>(d), static_cast<long long>(k));
  std::vector<Variant> variants;
  if (o.jca != "composed") variants.push_back({"fused joint_cross_attention", step_of(joint_cross_attention)});
  if (o.jca != "fused") variants.push_back({"composed reference", step_of(joint_cross_attention_reference)});
  run_steps(o, B * L, variants);
  return 0;
}

int w2(int argc, char** argv) {
  const Options o = parse(argc, argv, 10);
  models::ModelConfig mc = models::model_preset(o.preset);
  const data::LoaderConfig lc = models::loader_config(mc);
  const int64_t B = o.batch > 0 ? o.batch : 4, L = mc.clips, T = mc.frames_per_clip, S = mc.image_size, M = mc.mel_bins;
  const int64_t F = data::LogMel(lc.mel).frames(std::llround(lc.windows.clip_frames / 30.0 * lc.mel.sample_rate));
  Generator gen(2);
  models::EmotionModel model(mc, &gen);
  model.to(o.device);
  model.train();
  optim::Adam adam(trainable(model), 1e-4);
  const TensorOptions on{.device = o.device};
  const Tensor video = randn({B, L, 3, T, S, S}, on, &gen), audio = randn({B, L, 1, M, F}, on, &gen);
  const Tensor labels = rand({B, L, 2}, on, &gen, -1, 1);
  std::printf("W2 inputs: video [%lld, %lld, 3, %lld, %lld, %lld], audio [%lld, %lld, 1, %lld, %lld]\n",
              static_cast<long long>(B), static_cast<long long>(L), static_cast<long long>(T),
              static_cast<long long>(S), static_cast<long long>(S), static_cast<long long>(B),
              static_cast<long long>(L), static_cast<long long>(M), static_cast<long long>(F));
  const std::string name = o.preset == "paper" && B == 4 ? "W2 (paper preset end to end, B 4 x L 16, Adam)"
                                                         : o.preset + " preset end to end, B " + std::to_string(B) +
                                                               " x L " + std::to_string(L) + ", Adam";
  bool drawn = o.graph.empty();
  run_steps(o, B * L, {{name, [&] {
                          adam.zero_grad();
                          Tensor loss;
                          {
                            const profiler::Range r("forward");
                            loss = ccc_loss(model(video, audio), labels);
                          }
                          if (!drawn) write_graph(o, loss, model, name), drawn = true;
                          {
                            const profiler::Range r("backward");
                            loss.backward();
                          }
                          const profiler::Range r("optimizer");
                          optim::clip_grad_norm(adam.params(), 5.0);
                          adam.step();
                          return loss.item();
                        }}});
  return 0;
}

}  // namespace minidl::bench
