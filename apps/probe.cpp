// How much of each dimension each modality carries: linear probes on the loader's clips.
//
//   probe [--data DIR] [--threads N] [--json FILE]
//
// For every annotated frame of a SynthAV-layout data set (evaluation windows: each frame is the end of
// exactly one clip) the loader's clip is turned into two fixed feature vectors:
//   face  - the clip's frames at 32 x 32, averaged over time and pooled 2 x 2 (768 values), plus the mean
//           absolute change between consecutive frames pooled to 4 x 4 (48 values: motion);
//   voice - the 32 x 48 log-mel image: per band its mean and standard deviation over time, and its mean over
//           four quarters of the clip (192 values).
// A ridge regression (features standardised on Train_Set, the ridge strength picked on Validation_Set)
// maps face only, voice only, or both to (valence, arousal); the table reports the pooled CCC on Test_Set.
// A modality that carries a dimension weakly falls short of the fused probe there; docs/data.md records the
// figures.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/cli_args.h"
#include "autograd/minidl.h"
#include "cpu/kernels.h"
#include "data/affwild2.h"
#include "data/loader.h"
#include "data/synthav.h"

namespace {

using namespace minidl;

struct Features {
  std::vector<double> face, voice;  // rows of kFace / kVoice values
  std::vector<double> targets;      // rows of (valence, arousal)
  int64_t rows = 0;
};

constexpr int kImage = 64, kCell = 8, kBins = 9;
constexpr int kFace = (kImage / kCell) * (kImage / kCell) * kBins + 3 * 4 * 4, kVoice = 32 * 2 + 32 * 4;

data::LoaderConfig probe_loader_config() {
  data::LoaderConfig c;
  c.evaluation = true;
  c.batch_size = 16;
  c.workers = omp_get_max_threads();
  c.image_size = kImage;
  c.windows = {.clips = 8, .clip_frames = 32, .frames_per_clip = 4, .stride = 8};
  c.mel.n_fft = 512;
  c.mel.hop_length = 356;
  c.mel.n_mels = 32;
  return c;
}

Features extract(const data::Dataset& ds) {
  Features f;
  data::Loader loader(ds, probe_loader_config());
  for (data::Batch b; loader.next(b);) {
    const int64_t B = b.video.size(0), L = b.video.size(1), T = b.video.size(3), S = b.video.size(4);
    const int64_t M = b.audio.size(3), F = b.audio.size(4);
    const float* video = b.video.data<float>();
    const float* audio = b.audio.data<float>();
    const bool* mask = b.mask.data<bool>();
    const float* labels = b.labels.data<float>();
    for (int64_t i = 0; i < B * L; ++i) {
      if (!mask[i]) continue;
      const float* v = video + i * 3 * T * S * S;
      // Histograms of oriented gradients of the clip's mean grey image: 9 unsigned orientations per 8 x 8
      // cell, the cells L2-normalised together. They see edges (mouth, brows, eyes) with some tolerance to
      // position and none to lighting or skin tone.
      std::vector<double> grey(static_cast<size_t>(S * S), 0.0);
      for (int ch = 0; ch < 3; ++ch)
        for (int64_t t = 0; t < T; ++t)
          for (int64_t k = 0; k < S * S; ++k) grey[k] += v[(ch * T + t) * S * S + k] / (3.0 * T);
      std::vector<double> hog(static_cast<size_t>((S / kCell) * (S / kCell) * kBins), 0.0);
      for (int64_t y = 1; y + 1 < S; ++y)
        for (int64_t x = 1; x + 1 < S; ++x) {
          const double gx = grey[y * S + x + 1] - grey[y * S + x - 1],
                       gy = grey[(y + 1) * S + x] - grey[(y - 1) * S + x];
          double angle = std::atan2(gy, gx);
          if (angle < 0) angle += M_PI;
          const int bin = std::min(kBins - 1, static_cast<int>(angle / M_PI * kBins));
          hog[((y / kCell) * (S / kCell) + x / kCell) * kBins + bin] += std::sqrt(gx * gx + gy * gy);
        }
      double norm = 1e-6;
      for (double h : hog) norm += h * h;
      for (double h : hog) f.face.push_back(h / std::sqrt(norm));
      // Motion: mean absolute change between consecutive frames on a 4 x 4 grid per channel.
      for (int ch = 0; ch < 3; ++ch)
        for (int y = 0; y < 4; ++y)
          for (int x = 0; x < 4; ++x) {
            const int64_t cs = S / 4;
            double sum = 0;
            for (int64_t t = 1; t < T; ++t)
              for (int64_t dy = 0; dy < cs; ++dy)
                for (int64_t dx = 0; dx < cs; ++dx) {
                  const int64_t at = (cs * y + dy) * S + cs * x + dx;
                  sum += std::fabs(v[(ch * T + t) * S * S + at] - v[(ch * T + t - 1) * S * S + at]);
                }
            f.face.push_back(sum / (static_cast<double>(cs * cs) * std::max<int64_t>(1, T - 1)));
          }
      const float* a = audio + i * M * F;
      for (int64_t m = 0; m < M; ++m) {
        double s = 0, ss = 0;
        for (int64_t t = 0; t < F; ++t) s += a[m * F + t];
        const double mean = s / F;
        for (int64_t t = 0; t < F; ++t) ss += (a[m * F + t] - mean) * (a[m * F + t] - mean);
        f.voice.push_back(mean);
        f.voice.push_back(std::sqrt(ss / F));
        for (int q = 0; q < 4; ++q) {
          double qs = 0;
          for (int64_t t = q * F / 4; t < (q + 1) * F / 4; ++t) qs += a[m * F + t];
          f.voice.push_back(qs / static_cast<double>((q + 1) * F / 4 - q * F / 4));
        }
      }
      f.targets.push_back(labels[2 * i]);
      f.targets.push_back(labels[2 * i + 1]);
      ++f.rows;
    }
  }
  return f;
}

// The design matrix of one probe: face, voice or both columns, standardised with the training statistics.
struct Standardiser {
  std::vector<double> mean, scale;
};

std::vector<double> design(const Features& f, bool face, bool voice, int64_t& d) {
  d = (face ? kFace : 0) + (voice ? kVoice : 0);
  std::vector<double> x;
  x.reserve(static_cast<size_t>(f.rows * d));
  for (int64_t r = 0; r < f.rows; ++r) {
    if (face) x.insert(x.end(), f.face.begin() + r * kFace, f.face.begin() + (r + 1) * kFace);
    if (voice) x.insert(x.end(), f.voice.begin() + r * kVoice, f.voice.begin() + (r + 1) * kVoice);
  }
  return x;
}

Standardiser fit_standardiser(const std::vector<double>& x, int64_t n, int64_t d) {
  Standardiser s{std::vector<double>(d, 0), std::vector<double>(d, 0)};
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < d; ++j) s.mean[j] += x[r * d + j] / n;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < d; ++j) s.scale[j] += (x[r * d + j] - s.mean[j]) * (x[r * d + j] - s.mean[j]) / n;
  for (double& v : s.scale) v = v > 1e-12 ? 1.0 / std::sqrt(v) : 0.0;
  return s;
}

void apply(const Standardiser& s, std::vector<double>& x, int64_t n, int64_t d) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < d; ++j) x[r * d + j] = (x[r * d + j] - s.mean[j]) * s.scale[j];
}

// Ridge weights [d + 1, 2] (the last row is the intercept): (X^T X + lambda n I) w = X^T y by conjugate
// gradients, one target column at a time; X^T X is formed once with the project's GEMM.
std::vector<double> ridge(const std::vector<double>& x, const std::vector<double>& y, int64_t n, int64_t d,
                          const std::vector<double>& xtx, double lambda) {
  std::vector<double> w(static_cast<size_t>((d + 1) * 2), 0.0);
  for (int col = 0; col < 2; ++col) {
    double ymean = 0;
    for (int64_t r = 0; r < n; ++r) ymean += y[2 * r + col] / n;
    std::vector<double> b(d, 0.0), sol(d, 0.0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < d; ++j) b[j] += x[r * d + j] * (y[2 * r + col] - ymean);
    auto apply_a = [&](const std::vector<double>& p, std::vector<double>& out) {
      for (int64_t i = 0; i < d; ++i) {
        double s = lambda * n * p[i];
        for (int64_t j = 0; j < d; ++j) s += xtx[i * d + j] * p[j];
        out[i] = s;
      }
    };
    std::vector<double> r = b, p = b, ap(d);
    double rr = 0;
    for (double v : r) rr += v * v;
    const double stop = 1e-20 * rr;
    for (int it = 0; it < 2000 && rr > stop; ++it) {
      apply_a(p, ap);
      double pap = 0;
      for (int64_t i = 0; i < d; ++i) pap += p[i] * ap[i];
      const double alpha = rr / pap;
      double next = 0;
      for (int64_t i = 0; i < d; ++i) {
        sol[i] += alpha * p[i];
        r[i] -= alpha * ap[i];
        next += r[i] * r[i];
      }
      for (int64_t i = 0; i < d; ++i) p[i] = r[i] + (next / rr) * p[i];
      rr = next;
    }
    for (int64_t j = 0; j < d; ++j) w[j * 2 + col] = sol[j];
    w[d * 2 + col] = ymean;  // features are centred, so the intercept is the target mean
  }
  return w;
}

// Predictions x w, clipped to [-1, 1] like the evaluation does: rows of (valence, arousal).
std::vector<double> predict(const std::vector<double>& x, int64_t n, int64_t d, const std::vector<double>& w) {
  std::vector<double> pred(static_cast<size_t>(2 * n));
  for (int64_t r = 0; r < n; ++r)
    for (int col = 0; col < 2; ++col) {
      double s = w[d * 2 + col];
      for (int64_t j = 0; j < d; ++j) s += x[r * d + j] * w[j * 2 + col];
      pred[2 * r + col] = std::clamp(s, -1.0, 1.0);
    }
  return pred;
}

// Pooled CCC of (valence, arousal).
std::array<double, 2> ccc_of(const std::vector<double>& pred, const std::vector<double>& y) {
  const int64_t n = static_cast<int64_t>(y.size() / 2);
  const auto v =
      ccc(from_vector(pred, {n, 2}, {.dtype = kFloat64}), from_vector(y, {n, 2}, {.dtype = kFloat64})).values<double>();
  return {v[0], v[1]};
}

// One probe: its predictions on Validation_Set and Test_Set, the ridge strength picked per dimension.
struct Probe {
  std::vector<double> validation, test;
  double lambda[2] = {0, 0};
};

Probe fit_probe(const Features (&split)[3], bool face, bool voice) {
  int64_t d = 0;
  std::vector<double> x[3];
  for (int s = 0; s < 3; ++s) x[s] = design(split[s], face, voice, d);
  const Standardiser st = fit_standardiser(x[0], split[0].rows, d);
  for (int s = 0; s < 3; ++s) apply(st, x[s], split[s].rows, d);
  const int64_t n = split[0].rows;
  std::vector<double> xtx(static_cast<size_t>(d * d));
  cpu::gemm<double>(d, d, n, x[0].data(), 1, d, x[0].data(), d, 1, xtx.data(), d, 1, false);  // X^T X
  Probe p;
  double best[2] = {-2, -2};
  std::vector<double> w_best(static_cast<size_t>((d + 1) * 2), 0.0);
  for (double lambda : {1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0}) {
    const auto w = ridge(x[0], split[0].targets, n, d, xtx, lambda);
    const auto got = ccc_of(predict(x[1], split[1].rows, d, w), split[1].targets);
    for (int col = 0; col < 2; ++col)  // each output column is its own regression
      if (got[col] > best[col]) {
        best[col] = got[col];
        p.lambda[col] = lambda;
        for (int64_t j = 0; j <= d; ++j) w_best[j * 2 + col] = w[j * 2 + col];
      }
  }
  p.validation = predict(x[1], split[1].rows, d, w_best);
  p.test = predict(x[2], split[2].rows, d, w_best);
  return p;
}

// Late fusion: per dimension, y = a face + b voice + c fitted by least squares on Validation_Set.
std::vector<double> late_fusion(const Probe& face, const Probe& voice, const std::vector<double>& y_validation) {
  std::vector<double> out(face.test.size());
  for (int col = 0; col < 2; ++col) {
    double m[3][4] = {};  // normal equations [A | b] for (a, b, c)
    for (size_t r = 0; r < y_validation.size() / 2; ++r) {
      const double f[3] = {face.validation[2 * r + col], voice.validation[2 * r + col], 1.0};
      for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) m[i][j] += f[i] * f[j];
        m[i][3] += f[i] * y_validation[2 * r + col];
      }
    }
    for (int i = 0; i < 3; ++i)  // Gauss-Jordan; the system is 3 x 3 and well conditioned
      for (int k = 0; k < 3; ++k)
        if (k != i) {
          const double factor = m[k][i] / m[i][i];
          for (int j = 0; j < 4; ++j) m[k][j] -= factor * m[i][j];
        }
    const double a = m[0][3] / m[0][0], b = m[1][3] / m[1][1], c = m[2][3] / m[2][2];
    for (size_t r = 0; r < out.size() / 2; ++r)
      out[2 * r + col] = std::clamp(a * face.test[2 * r + col] + b * voice.test[2 * r + col] + c, -1.0, 1.0);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string root, json;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--data" || a == "--json" || a == "--threads") && i + 1 < argc) {
      const std::string v = argv[++i];
      if (a == "--data")
        root = v;
      else if (a == "--json")
        json = v;
      else
        try {
          omp_set_num_threads(static_cast<int>(apps::parse_integer("--threads", v, 1, 1024)));
        } catch (const std::invalid_argument& e) {
          std::fprintf(stderr, "probe: %s\n", e.what());
          return 2;
        }
    } else {
      std::fprintf(stderr, "usage: %s [--data DIR] [--threads N] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  try {
    if (root.empty()) {
      const data::SynthAvConfig cfg;
      root = (std::filesystem::temp_directory_path() / "minidl-synthav-default").string();
      if (!data::synthav_ready(root, cfg)) {
        std::filesystem::remove_all(root);
        std::printf("generating the default SynthAV set in %s ...\n", root.c_str());
        data::generate_synthav(root, cfg);
      }
    }
    Features split[3];
    const char* names[3] = {"Train_Set", "Validation_Set", "Test_Set"};
    for (int s = 0; s < 3; ++s) {
      split[s] = extract(data::read_affwild2({.root = root, .split = names[s]}));
      std::printf("%-15s %7lld clips\n", names[s], static_cast<long long>(split[s].rows));
    }
    std::printf("\nLinear probes on %s, pooled CCC on Test_Set (ridge strengths picked on Validation_Set)\n",
                root.c_str());
    std::printf("%-22s %9s %9s %9s\n", "input", "valence", "arousal", "mean");
    const Probe face = fit_probe(split, true, false), voice = fit_probe(split, false, true),
                both = fit_probe(split, true, true);
    const std::vector<double> fused = late_fusion(face, voice, split[1].targets);
    nlohmann::json report = {{"data", root}, {"split_clips", {split[0].rows, split[1].rows, split[2].rows}}};
    const std::pair<const char*, const std::vector<double>*> rows[] = {{"face only", &face.test},
                                                                       {"voice only", &voice.test},
                                                                       {"both, one ridge", &both.test},
                                                                       {"both, late fusion", &fused}};
    for (const auto& [name, pred] : rows) {
      const auto c = ccc_of(*pred, split[2].targets);
      std::printf("%-22s %9.3f %9.3f %9.3f\n", name, c[0], c[1], (c[0] + c[1]) / 2);
      report["test_ccc"][name] = {{"valence", c[0]}, {"arousal", c[1]}};
    }
    if (!json.empty()) std::ofstream(json) << report.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "probe: %s\n", e.what());
    return 1;
  }
  return 0;
}
