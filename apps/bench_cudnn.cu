// minidl's convolution and LSTM kernels against cuDNN, measured in the same run (DESIGN.md workload W3:
// "the convolutions of W2 vs cuDNN" and "BiLSTM (B64, T16, in 512, hidden 256, 2 layers) vs cuDNN"):
//   cudnn-conv  every distinct convolution of W2's backbones at full size, forward, backward data and
//               backward filter: our kernels (cuda/conv.cu, float32) next to cuDNN float32 (FMA math) and
//               cuDNN TF32 (tensor-op math, PyTorch's default for convolutions), with the ratio of each
//               and the whole backbone's convolution time (each shape weighted by how often it occurs);
//   cudnn-lstm  W3's BiLSTM, forward and forward + backward: nn::LSTM on the GPU with our SIMT and TF32
//               GEMMs next to cuDNN's RNN in float32 and with TF32 allowed (PyTorch's default).
// cuDNN is linked into this program only, through cuda/cudnn/oracle.h: a yardstick, never a path of the
// library. Timing as apps/bench_cuda.cu: CUDA events on minidl's current stream, median of the runs.
//
// The W2 inputs: B = 4 sequences x L = 16 clips = 64 clips per step, each 3 x 8 x 112 x 112 for the
// visual R(2+1)D-18 (torchvision's r2plus1d_18: stem 1x7x7/2 to 45 then 3x1x1 to 64; four stages of two
// BasicBlocks of two Conv2Plus1D (1x3x3 to midplanes, 3x1x1 to the stage width; a stride-2 stage strides
// the 1x3x3 in space and the 3x1x1 in time), a 1x1x1 stride-2 downsample opening stages 2-4) and
// 1 x 64 x F for the audio ResNet-18 (torchvision's resnet18 with one input channel: conv1 7x7/2, max pool
// 3x3/2, four stages of two BasicBlocks of 3x3 convs, 1x1/2 downsamples). F = 107 by default, the paper
// preset's log-mel frames per clip; --mel-frames changes it.
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
#include "apps/bench_cudnn.h"
#include "apps/cli_args.h"
#include "autograd/minidl.h"
#include "cuda/common.cuh"
#include "cuda/cudnn/oracle.h"
#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "layers/lstm.h"

namespace minidl::bench {
namespace {

// max |x - ref| / max |ref|, computed on the device.
double max_rel_diff(const Tensor& x, const Tensor& ref) {
  const NoGradGuard no_grad;
  const double scale = max(abs(ref)).item();
  return max(abs(x - ref)).item() / std::max(scale, 1e-30);
}

std::string shape_text(const Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);
  }
  return out;
}

// ---- the convolutions of W2 ---------------------------------------------------------------------------
struct ConvSpec {
  std::string net, where;  // "video", "layer2.0.conv1.0.0 (1x3x3/(1,2,2))"
  Shape x, w;
  std::vector<int64_t> stride, padding;
  int count = 1;  // occurrences in one forward pass of the backbone
};

class ConvList {
 public:
  explicit ConvList(std::string net) : net_(std::move(net)) {}
  // Adds a convolution of x (any rank) with out channels and kernel, returns its output shape.
  Shape add(const std::string& where, const Shape& x, int64_t out_channels, const std::vector<int64_t>& kernel,
            const std::vector<int64_t>& stride, const std::vector<int64_t>& padding) {
    Shape w{out_channels, x[1]};
    w.insert(w.end(), kernel.begin(), kernel.end());
    Shape y{x[0], out_channels};
    for (size_t d = 0; d < kernel.size(); ++d) y.push_back((x[d + 2] + 2 * padding[d] - kernel[d]) / stride[d] + 1);
    for (ConvSpec& c : specs_)
      if (c.x == x && c.w == w && c.stride == stride && c.padding == padding) {
        ++c.count;
        return y;
      }
    specs_.push_back({net_, where, x, w, stride, padding, 1});
    return y;
  }
  const std::vector<ConvSpec>& specs() const { return specs_; }

 private:
  std::string net_;
  std::vector<ConvSpec> specs_;
};

int64_t midplanes(int64_t in, int64_t out) { return (in * out * 3 * 3 * 3) / (in * 3 * 3 + 3 * out); }

std::vector<ConvSpec> r2plus1d18(int64_t clips, int64_t frames, int64_t size) {
  ConvList l("video");
  Shape cur{clips, 3, frames, size, size};
  cur = l.add("stem.0 1x7x7/(1,2,2)", cur, 45, {1, 7, 7}, {1, 2, 2}, {0, 3, 3});
  cur = l.add("stem.3 3x1x1", cur, 64, {3, 1, 1}, {1, 1, 1}, {1, 0, 0});
  int64_t in = 64;
  const int64_t widths[4] = {64, 128, 256, 512}, strides[4] = {1, 2, 2, 2};
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t planes = widths[stage];
    for (int b = 0; b < 2; ++b) {
      const int64_t st = b == 0 ? strides[stage] : 1, inplanes = b == 0 ? in : planes;
      const int64_t mid = midplanes(inplanes, planes);  // shared by both Conv2Plus1D of the block
      const std::string at = "layer" + std::to_string(stage + 1) + "." + std::to_string(b) + ".";
      const std::string sp = st == 1 ? "" : "/(1," + std::to_string(st) + "," + std::to_string(st) + ")";
      const std::string tp = st == 1 ? "" : "/(" + std::to_string(st) + ",1,1)";
      const Shape block_in = cur;
      Shape t = l.add(at + "conv1.0.0 1x3x3" + sp, cur, mid, {1, 3, 3}, {1, st, st}, {0, 1, 1});
      t = l.add(at + "conv1.0.3 3x1x1" + tp, t, planes, {3, 1, 1}, {st, 1, 1}, {1, 0, 0});
      t = l.add(at + "conv2.0.0 1x3x3", t, mid, {1, 3, 3}, {1, 1, 1}, {0, 1, 1});
      t = l.add(at + "conv2.0.3 3x1x1", t, planes, {3, 1, 1}, {1, 1, 1}, {1, 0, 0});
      if (b == 0 && (st != 1 || inplanes != planes))
        l.add(at + "downsample.0 1x1x1/" + std::to_string(st), block_in, planes, {1, 1, 1}, {st, st, st}, {0, 0, 0});
      cur = t;
    }
    in = planes;
  }
  return l.specs();
}

std::vector<ConvSpec> resnet18_audio(int64_t clips, int64_t mels, int64_t frames) {
  ConvList l("audio");
  Shape cur{clips, 1, mels, frames};
  cur = l.add("conv1 7x7/2", cur, 64, {7, 7}, {2, 2}, {3, 3});
  for (size_t d = 2; d < 4; ++d) cur[d] = (cur[d] + 2 - 3) / 2 + 1;  // max pool 3x3/2, padding 1
  int64_t in = 64;
  const int64_t widths[4] = {64, 128, 256, 512}, strides[4] = {1, 2, 2, 2};
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t planes = widths[stage];
    for (int b = 0; b < 2; ++b) {
      const int64_t st = b == 0 ? strides[stage] : 1, inplanes = b == 0 ? in : planes;
      const std::string at = "layer" + std::to_string(stage + 1) + "." + std::to_string(b) + ".";
      const Shape block_in = cur;
      Shape t =
          l.add(at + "conv1 3x3" + (st == 1 ? "" : "/" + std::to_string(st)), cur, planes, {3, 3}, {st, st}, {1, 1});
      t = l.add(at + "conv2 3x3", t, planes, {3, 3}, {1, 1}, {1, 1});
      if (b == 0 && (st != 1 || inplanes != planes))
        l.add(at + "downsample.0 1x1/" + std::to_string(st), block_in, planes, {1, 1}, {st, st}, {0, 0});
      cur = t;
    }
    in = planes;
  }
  return l.specs();
}

struct Times {
  double ours = 0, ref32 = 0, reftf = 0, err = 0;
  double ours_tf = 0, err_tf = 0;  // the convolutions on minidl's TF32 path (cuda::set_conv_path)
};

std::string percent(double ref_ms, double ours_ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", 100.0 * ref_ms / ours_ms);
  return buf;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

int cudnn_conv(int argc, char** argv) {
  std::string net = "both", search = "heuristic", json_path;
  int64_t clips = 64, mel_frames = 107;
  bool show_algos = false;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--net" && i + 1 < argc)
      net = argv[++i];
    else if (a == "--search" && i + 1 < argc)
      search = argv[++i];
    else if (a == "--clips" && i + 1 < argc)
      clips = apps::parse_integer("--clips", argv[++i], 1);
    else if (a == "--mel-frames" && i + 1 < argc)
      mel_frames = apps::parse_integer("--mel-frames", argv[++i], 1);
    else if (a == "--algos")
      show_algos = true;
    else if (a == "--json" && i + 1 < argc)
      json_path = argv[++i];
    else
      throw std::invalid_argument("unknown option " + a);
  }
  if (net != "video" && net != "audio" && net != "both") throw std::invalid_argument("--net video|audio|both");
  if (search == "accurate")
    cudnn::set_algo_choice(cudnn::AlgoChoice::Accurate);
  else if (search == "heuristic")
    cudnn::set_algo_choice(cudnn::AlgoChoice::Heuristic);
  else if (search == "fastest")
    cudnn::set_algo_choice(cudnn::AlgoChoice::Fastest);
  else
    throw std::invalid_argument("--search accurate|heuristic|fastest");
  if (cuda_device_count() == 0) throw std::runtime_error("no CUDA device on this machine");
  if (!cudnn::available()) throw std::runtime_error("cuDNN cannot create a handle on this machine");

  std::vector<ConvSpec> specs;
  if (net != "audio") specs = r2plus1d18(clips, 8, 112);
  if (net != "video") {
    const std::vector<ConvSpec> a = resnet18_audio(clips, 64, mel_frames);
    specs.insert(specs.end(), a.begin(), a.end());
  }

  const cuda::DeviceProperties props = cuda::device_properties(0);
  std::printf("W2 convolutions, %lld clips: video 3x8x112x112 (R(2+1)D-18), audio 1x64x%lld (ResNet-18)\n",
              static_cast<long long>(clips), static_cast<long long>(mel_frames));
  std::printf("%s (%d SMs), cuDNN %s, cuDNN algorithms: %s; times in ms (median), ratio = cuDNN time / ours\n",
              props.name.c_str(), props.multiprocessors, cudnn::version().c_str(), search.c_str());
  std::printf("%-5s %-38s %-22s %3s %-6s %7s | %9s %9s %6s | %9s %9s %6s | %8s %8s\n", "net", "layer", "input", "n",
              "pass", "GFLOP", "ours32", "cuDNN32", "ratio", "ours-TF", "cuDNN-TF", "ratio", "err32", "err-TF");

  const Device gpu = Device::cuda(0);
  Generator gen(3);
  std::ostringstream json;
  json << "{\"device\": \"" << json_escape(props.name) << "\", \"cudnn\": \"" << cudnn::version()
       << "\", \"search\": \"" << search << "\", \"convs\": [";
  // Per net and pass, the convolution time of one forward + backward of the backbone (count-weighted).
  struct Total {
    double ours = 0, ref32 = 0, reftf = 0, ours_tf = 0;
  };
  Total totals[2][3];
  const char* pass_names[3] = {"fwd", "data", "filter"};
  const cudnn::ConvPass passes[3] = {cudnn::ConvPass::Forward, cudnn::ConvPass::BackwardData,
                                     cudnn::ConvPass::BackwardFilter};
  const cuda::GemmPath path_before = cuda::conv_path();
  for (size_t k = 0; k < specs.size(); ++k) {
    const ConvSpec& c = specs[k];
    const ConvShape s = cudnn::conv_shape(c.x, c.w, c.stride, c.padding);
    Shape yshape{c.x[0], c.w[0]};
    for (size_t d = 3 - (c.x.size() - 2); d < 3; ++d) yshape.push_back(s.out[d]);
    const Tensor x = rand(c.x, {.device = gpu}, &gen, -1, 1), w = rand(c.w, {.device = gpu}, &gen, -1, 1);
    const Tensor gy = randn(yshape, {.device = gpu}, &gen);
    const Tensor y = Tensor::empty(yshape, kFloat32, gpu), y_ref = Tensor::empty(yshape, kFloat32, gpu);
    const Tensor gx = Tensor::empty(c.x, kFloat32, gpu), gx_ref = Tensor::empty(c.x, kFloat32, gpu);
    const Tensor gw = Tensor::empty(c.w, kFloat32, gpu), gw_ref = Tensor::empty(c.w, kFloat32, gpu);
    double flops = 2.0 * static_cast<double>(yshape[0]) * static_cast<double>(c.w[0]);
    for (size_t d = 1; d < c.w.size(); ++d) flops *= static_cast<double>(c.w[d]);
    for (size_t d = 2; d < yshape.size(); ++d) flops *= static_cast<double>(yshape[d]);

    const std::function<void()> ours[3] = {
        [&] { cuda::conv_forward(x, w, Tensor(), s, y); },
        [&] { cuda::conv_backward(Tensor(), w, gy, s, gx, Tensor(), Tensor()); },
        [&] { cuda::conv_backward(x, Tensor(), gy, s, Tensor(), gw, Tensor()); },
    };
    auto reference = [&](int pass, bool tf32, const Tensor& out) {
      if (pass == 0) cudnn::conv_forward(x, w, s, out, tf32);
      if (pass == 1) cudnn::conv_backward_data(w, gy, s, out, tf32);
      if (pass == 2) cudnn::conv_backward_filter(x, gy, s, out, tf32);
    };
    const Tensor* mine[3] = {&y, &gx, &gw};
    const Tensor* refs[3] = {&y_ref, &gx_ref, &gw_ref};
    const int n = c.net == "video" ? 0 : 1;
    for (int p = 0; p < 3; ++p) {
      Times t;
      cuda::set_conv_path(cuda::GemmPath::Simt);
      t.ours = device_ms(ours[p]);
      const Tensor ours32 = mine[p]->clone();
      cuda::set_conv_path(cuda::GemmPath::Tf32);
      t.ours_tf = device_ms(ours[p]);
      cuda::set_conv_path(path_before);
      t.reftf = device_ms([&] { reference(p, true, *refs[p]); });
      t.ref32 = device_ms([&] { reference(p, false, *refs[p]); });  // last, so refs hold the float32 result
      t.err = max_rel_diff(ours32, *refs[p]);
      t.err_tf = max_rel_diff(*mine[p], *refs[p]);
      totals[n][p].ours += c.count * t.ours;
      totals[n][p].ours_tf += c.count * t.ours_tf;
      totals[n][p].ref32 += c.count * t.ref32;
      totals[n][p].reftf += c.count * t.reftf;
      std::printf("%-5s %-38s %-22s %3d %-6s %7.1f | %9.3f %9.3f %6s | %9.3f %9.3f %6s | %8.1e %8.1e\n", c.net.c_str(),
                  p == 0 ? c.where.c_str() : "", p == 0 ? shape_text(c.x).c_str() : "", p == 0 ? c.count : 0,
                  pass_names[p], flops / 1e9, t.ours, t.ref32, percent(t.ref32, t.ours).c_str(), t.ours_tf, t.reftf,
                  percent(t.reftf, t.ours_tf).c_str(), t.err, t.err_tf);
      if (show_algos)
        std::printf("      cuDNN fp32: %s; TF32: %s\n", cudnn::conv_algorithm(passes[p], s, false).c_str(),
                    cudnn::conv_algorithm(passes[p], s, true).c_str());
      json << (k || p ? ", " : "") << "{\"net\": \"" << c.net << "\", \"layer\": \"" << json_escape(c.where)
           << "\", \"input\": \"" << shape_text(c.x) << "\", \"weight\": \"" << shape_text(c.w)
           << "\", \"count\": " << c.count << ", \"pass\": \"" << pass_names[p] << "\", \"gflop\": " << flops / 1e9
           << ", \"ours_ms\": " << t.ours << ", \"ours_tf32_ms\": " << t.ours_tf << ", \"cudnn_fp32_ms\": " << t.ref32
           << ", \"cudnn_tf32_ms\": " << t.reftf << ", \"max_rel_err\": " << t.err
           << ", \"max_rel_err_tf32\": " << t.err_tf << ", \"cudnn_fp32_algo\": \""
           << json_escape(cudnn::conv_algorithm(passes[p], s, false)) << "\", \"cudnn_tf32_algo\": \""
           << json_escape(cudnn::conv_algorithm(passes[p], s, true)) << "\"}";
    }
  }
  json << "], \"totals\": [";
  std::printf("\nWhole backbone, every convolution of one forward + backward (each shape times its count), ms:\n");
  std::printf("%-5s %-8s | %9s %9s %6s | %9s %9s %6s\n", "net", "pass", "ours32", "cuDNN32", "ratio", "ours-TF",
              "cuDNN-TF", "ratio");
  bool first = true;
  for (int n = 0; n < 2; ++n) {
    if ((n == 0 && net == "audio") || (n == 1 && net == "video")) continue;
    Total all;
    for (int p = 0; p <= 3; ++p) {
      const Total& t = p < 3 ? totals[n][p] : all;
      if (p < 3) {
        all.ours += t.ours;
        all.ours_tf += t.ours_tf;
        all.ref32 += t.ref32;
        all.reftf += t.reftf;
      }
      const char* what = p < 3 ? pass_names[p] : "all";
      std::printf("%-5s %-8s | %9.2f %9.2f %6s | %9.2f %9.2f %6s\n", n == 0 ? "video" : "audio", what, t.ours, t.ref32,
                  percent(t.ref32, t.ours).c_str(), t.ours_tf, t.reftf, percent(t.reftf, t.ours_tf).c_str());
      json << (first ? "" : ", ") << "{\"net\": \"" << (n == 0 ? "video" : "audio") << "\", \"pass\": \"" << what
           << "\", \"ours_ms\": " << t.ours << ", \"ours_tf32_ms\": " << t.ours_tf << ", \"cudnn_fp32_ms\": " << t.ref32
           << ", \"cudnn_tf32_ms\": " << t.reftf << "}";
      first = false;
    }
  }
  json << "]}\n";
  std::printf(
      "ours32 / ours-TF: minidl's convolutions on their SIMT float32 and TF32 tensor-core paths; each is\n"
      "compared with cuDNN in the same math. err32 / err-TF: largest |ours - cuDNN fp32| over the largest\n"
      "|cuDNN fp32| of the pass's output.\n");
  if (!json_path.empty()) std::ofstream(json_path) << json.str();
  return 0;
}

int cudnn_lstm(int argc, char** argv) {
  int64_t B = 64, T = 16, I = 512, H = 256, L = 2;
  std::string json_path;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return apps::parse_integer(a, argv[++i], 1); };
    if (a == "--batch" && i + 1 < argc)
      B = next();
    else if (a == "--seq" && i + 1 < argc)
      T = next();
    else if (a == "--input" && i + 1 < argc)
      I = next();
    else if (a == "--hidden" && i + 1 < argc)
      H = next();
    else if (a == "--layers" && i + 1 < argc)
      L = next();
    else if (a == "--json" && i + 1 < argc)
      json_path = argv[++i];
    else
      throw std::invalid_argument("unknown option " + a);
  }
  if (cuda_device_count() == 0) throw std::runtime_error("no CUDA device on this machine");
  if (!cudnn::available()) throw std::runtime_error("cuDNN cannot create a handle on this machine");
  const cuda::DeviceProperties props = cuda::device_properties(0);
  const Device gpu = Device::cuda(0);

  Generator gen(4);
  nn::LSTM lstm(I, H, {.num_layers = L, .bidirectional = true, .batch_first = true}, &gen);
  lstm.to(gpu);
  Generator data(5);
  Tensor x = randn({B, T, I}, {.device = gpu}, &data).detach();
  x.requires_grad_();
  const Tensor up = randn({B, T, 2 * H}, {.device = gpu}, &data);

  std::printf("BiLSTM B %lld, T %lld, input %lld, hidden %lld, %lld layers, batch_first; %s, cuDNN %s\n",
              static_cast<long long>(B), static_cast<long long>(T), static_cast<long long>(I),
              static_cast<long long>(H), static_cast<long long>(L), props.name.c_str(), cudnn::version().c_str());
  std::printf("%-40s %10s %14s %10s %10s %8s\n", "", "fwd ms", "fwd+bwd ms", "vs fp32", "vs TF32", "err");

  struct Row {
    std::string what;
    double fwd, both, err;
  };
  std::vector<Row> rows;
  Tensor reference_out;
  // cuDNN first: its float32 output is the reference of the error column.
  for (bool tf32 : {false, true}) {
    cudnn::Lstm rnn(I, H, L, true, B, T, tf32);
    rnn.load(lstm);
    const Tensor xd = x.detach();
    const double fwd = device_ms([&] { rnn.forward(xd, true); });
    const double both = device_ms([&] {
      const Tensor y = rnn.forward(xd, true);
      rnn.backward(y, up);
    });
    const Tensor y = rnn.forward(xd, false);
    if (!tf32) reference_out = y;
    rows.push_back({tf32 ? "cuDNN, TF32 allowed (PyTorch's default)" : "cuDNN, float32 (FMA math)", fwd, both,
                    max_rel_diff(y, reference_out)});
  }
  const cuda::GemmPath before = cuda::gemm_path();
  for (cuda::GemmPath path : {cuda::GemmPath::Simt, cuda::GemmPath::Tf32}) {
    cuda::set_gemm_path(path);
    const double fwd =
        device_ms([&] { lstm(x); });  // records the graph (saves what backward reads), as cuDNN's training mode
    const double both = device_ms([&] {
      lstm.zero_grad();
      x.zero_grad();
      lstm(x).output.backward(up);
    });
    Tensor out;
    {
      const NoGradGuard no_grad;
      out = lstm(x).output;
    }
    rows.push_back(
        {path == cuda::GemmPath::Simt ? "minidl nn::LSTM, SIMT float32 GEMMs" : "minidl nn::LSTM, TF32 GEMMs", fwd,
         both, max_rel_diff(out, reference_out)});
  }
  cuda::set_gemm_path(before);

  const double ref32 = rows[0].both, reftf = rows[1].both;
  std::ostringstream json;
  json << "{\"device\": \"" << json_escape(props.name) << "\", \"cudnn\": \"" << cudnn::version() << "\", \"B\": " << B
       << ", \"T\": " << T << ", \"input\": " << I << ", \"hidden\": " << H << ", \"layers\": " << L << ", \"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    std::printf("%-40s %10.3f %14.3f %10s %10s %8.1e\n", r.what.c_str(), r.fwd, r.both, percent(ref32, r.both).c_str(),
                percent(reftf, r.both).c_str(), r.err);
    json << (i ? ", " : "") << "{\"what\": \"" << json_escape(r.what) << "\", \"fwd_ms\": " << r.fwd
         << ", \"fwd_bwd_ms\": " << r.both << ", \"max_rel_err\": " << r.err << "}";
  }
  json << "]}\n";
  std::printf(
      "vs fp32 / vs TF32: the cuDNN row's forward + backward time over this row's (100%% = as fast).\n"
      "Forward: training mode on both sides (what backward reads is kept). err: largest |output - cuDNN\n"
      "fp32| over the largest |cuDNN fp32|. DESIGN.md's reference: PyTorch's cuDNN BiLSTM forward + backward 5.6 ms on "
      "an\n"
      "H100 (PyTorch's default math, TF32 allowed).\n");
  if (!json_path.empty()) std::ofstream(json_path) << json.str();
  return 0;
}

}  // namespace minidl::bench
