// The log-mel front end, written against torchaudio 0.13's definitions (functional.spectrogram over
// torch.stft, melscale_fbanks, amplitude_to_DB) so that tools/logmel_reference.py's outputs are matched to
// float precision. Everything is computed in double; only the final image is rounded to float.
#include "data/logmel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "autograd/error.h"

namespace minidl::data {

namespace {

// Guards that turn absurd configurations into errors instead of huge allocations. Both are orders of
// magnitude beyond any audio front end (n_fft 2^20 is a 24 s window at 44.1 kHz).
constexpr int kMaxFft = 1 << 20;
constexpr int kMaxMels = 1 << 14;

// amplitude_to_DB's clamp: power below 1e-10 counts as -100 dB. With ref = 1 its reference term is 0.
constexpr double kAmin = 1e-10;

const char* scale_name(MelScale s) { return s == MelScale::Htk ? "htk" : "slaney"; }

void check_scale(MelScale scale, const char* fn) {
  MINIDL_CHECK(scale == MelScale::Htk || scale == MelScale::Slaney, fn, ": mel_scale = ", static_cast<int>(scale),
               " is neither MelScale::Htk nor MelScale::Slaney");
}

// torchaudio's MelScale default f_max is float(sample_rate // 2): integer division, which matters for odd
// sample rates.
double effective_f_max(const LogMelConfig& c) { return c.f_max > 0.0 ? c.f_max : double(c.sample_rate / 2); }

const LogMelConfig& validated(const LogMelConfig& c) {
  MINIDL_CHECK(c.sample_rate > 0, "LogMel: sample_rate = ", c.sample_rate, " must be > 0");
  MINIDL_CHECK(c.n_fft >= 1 && c.n_fft <= kMaxFft, "LogMel: n_fft = ", c.n_fft, " must be in [1, ", kMaxFft, "]");
  MINIDL_CHECK(c.win_length >= 1 && c.win_length <= c.n_fft, "LogMel: win_length = ", c.win_length,
               " must be in [1, n_fft = ", c.n_fft, "]");
  MINIDL_CHECK(c.hop_length >= 1, "LogMel: hop_length = ", c.hop_length, " must be >= 1");
  MINIDL_CHECK(c.n_mels >= 1 && c.n_mels <= kMaxMels, "LogMel: n_mels = ", c.n_mels, " must be in [1, ", kMaxMels, "]");
  check_scale(c.mel_scale, "LogMel");
  MINIDL_CHECK(std::isfinite(c.f_min) && c.f_min >= 0.0, "LogMel: f_min = ", c.f_min, " must be finite and >= 0");
  MINIDL_CHECK(std::isfinite(c.f_max) && c.f_max >= 0.0, "LogMel: f_max = ", c.f_max,
               " must be finite and >= 0 (0 means sample_rate / 2)");
  const double f_max = effective_f_max(c), nyquist = c.sample_rate / 2.0;
  MINIDL_CHECK(f_max <= nyquist, "LogMel: f_max = ", f_max, " is above the Nyquist frequency ", nyquist,
               " (sample_rate = ", c.sample_rate, ")");
  MINIDL_CHECK(c.f_min < f_max, "LogMel: f_min = ", c.f_min, " must be below f_max = ", f_max);
  MINIDL_CHECK(!std::isnan(c.top_db), "LogMel: top_db is NaN (use a value <= 0 to disable the floor)");
  MINIDL_CHECK(std::isfinite(c.db_offset), "LogMel: db_offset = ", c.db_offset, " must be finite");
  MINIDL_CHECK(std::isfinite(c.db_scale) && c.db_scale != 0.0, "LogMel: db_scale = ", c.db_scale,
               " must be finite and nonzero");
  return c;
}

// torch.linspace(start, end, steps): the first half steps up from start, the second half down from end, so
// both endpoints are exact.
std::vector<double> linspace(double start, double end, int steps) {
  std::vector<double> v(steps);
  if (steps == 1) {
    v[0] = start;
    return v;
  }
  const double step = (end - start) / (steps - 1);
  const int half = steps / 2;
  for (int i = 0; i < steps; ++i) v[i] = i < half ? start + step * i : end - step * (steps - 1 - i);
  return v;
}

// torch.hann_window(win_length) (periodic), zero-padded into n_fft with (n_fft - win_length) / 2 zeros on the
// left, as torch.stft places a shorter window.
std::vector<double> make_window(int n_fft, int win_length) {
  std::vector<double> w(n_fft, 0.0);
  const int left = (n_fft - win_length) / 2;
  // torch.hann_window(1) is [1]: the periodic formula would give 0.
  if (win_length == 1) {
    w[left] = 1.0;
    return w;
  }
  for (int i = 0; i < win_length; ++i)
    w[left + i] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / static_cast<double>(win_length));
  return w;
}

// melscale_fbanks: triangles between consecutive mel-spaced points f_pts, evaluated at the STFT bin
// frequencies linspace(0, sample_rate // 2, n_freqs). Layout [n_freqs, n_mels].
std::vector<double> make_filterbank(const LogMelConfig& c) {
  const int n_freqs = c.n_fft / 2 + 1, n_mels = c.n_mels;
  const std::vector<double> all_freqs = linspace(0.0, double(c.sample_rate / 2), n_freqs);
  const std::vector<double> m_pts =
      linspace(hz_to_mel(c.f_min, c.mel_scale), hz_to_mel(effective_f_max(c), c.mel_scale), n_mels + 2);
  std::vector<double> f_pts(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i) f_pts[i] = mel_to_hz(m_pts[i], c.mel_scale);
  // Coinciding corners would divide by zero below and fill bands with NaN.
  for (int i = 0; i + 1 < n_mels + 2; ++i)
    MINIDL_CHECK(f_pts[i + 1] > f_pts[i], "LogMel: f_min = ", c.f_min, " and f_max = ", effective_f_max(c),
                 " are too close for n_mels = ", n_mels, ": band corners ", i, " and ", i + 1, " coincide");
  std::vector<double> fb(static_cast<size_t>(n_freqs) * n_mels);
  for (int m = 0; m < n_mels; ++m) {
    const double lo = f_pts[m], mid = f_pts[m + 1], hi = f_pts[m + 2];
    // Slaney's area normalisation 2 / (f_pts[m+2] - f_pts[m]): about constant energy per band.
    const double enorm = c.slaney_norm ? 2.0 / (hi - lo) : 1.0;
    for (int f = 0; f < n_freqs; ++f) {
      const double down = (all_freqs[f] - lo) / (mid - lo);
      const double up = (hi - all_freqs[f]) / (hi - mid);
      fb[static_cast<size_t>(f) * n_mels + m] = std::max(0.0, std::min(down, up)) * enorm;
    }
  }
  return fb;
}

// The STFT loop shared by power_spectrogram() and compute(): calls emit(t, power) for every frame t with the
// n_fft / 2 + 1 power values |X_t[k]|^2.
template <class Emit>
void for_each_frame(const LogMelConfig& c, const std::vector<double>& window, const FftPlan& plan, const float* audio,
                    int64_t n, int64_t frames, Emit&& emit) {
  const int n_fft = c.n_fft, n_freqs = n_fft / 2 + 1;
  const int64_t pad = c.center ? n_fft / 2 : 0;
  // torch's reflect padding needs pad < n (it mirrors about the first and last samples without repeating
  // them). Shorter audio, which torch.stft rejects, is zero-padded instead so that any clip gives an image.
  const bool reflect = n > pad;
  // Only the window's nonzero span [w_lo, w_hi) is ever written; the frame's other entries stay 0.
  const int w_lo = (n_fft - c.win_length) / 2, w_hi = w_lo + c.win_length;
  std::vector<double> frame(n_fft, 0.0);
  std::vector<Complex> spectrum(n_freqs);
  std::vector<double> power(n_freqs);
  for (int64_t t = 0; t < frames; ++t) {
    // Frame t covers padded samples [t hop, t hop + n_fft), i.e. audio samples from t hop - pad on.
    const int64_t first = t * c.hop_length - pad;
    if (first + w_lo >= 0 && first + w_hi <= n) {
      const float* src = audio + first;
      for (int j = w_lo; j < w_hi; ++j) frame[j] = src[j] * window[j];
    } else {
      for (int j = w_lo; j < w_hi; ++j) {
        int64_t k = first + j;
        double v = 0.0;
        if (k >= 0 && k < n) {
          v = audio[k];
        } else if (reflect) {
          k = k < 0 ? -k : 2 * (n - 1) - k;  // within range: |overhang| <= pad < n
          v = audio[k];
        }
        frame[j] = v * window[j];
      }
    }
    plan.forward_real(frame.data(), spectrum.data());
    for (int k = 0; k < n_freqs; ++k)
      power[k] = spectrum[k].real() * spectrum[k].real() + spectrum[k].imag() * spectrum[k].imag();
    emit(t, power.data());
  }
}

void check_audio(const float* audio, int64_t n, const char* fn, bool moved_from) {
  MINIDL_CHECK(!moved_from, fn, ": this LogMel has been moved from");
  MINIDL_CHECK(n >= 0, fn, ": sample count n = ", n, " must be >= 0");
  MINIDL_CHECK(n == 0 || audio != nullptr, fn, ": audio is a null pointer with n = ", n, " samples");
  // A NaN or inf would spread through every frame it touches and then through the top_db floor to the whole
  // image; say where it is instead.
  for (int64_t i = 0; i < n; ++i)
    MINIDL_CHECK(std::isfinite(audio[i]), fn, ": audio sample ", i, " is not finite (", audio[i], ")");
}

}  // namespace

LogMelConfig LogMelConfig::paper() {
  LogMelConfig c;
  c.sample_rate = 44100;
  c.n_fft = 1024;
  c.win_length = 882;
  c.hop_length = 441;
  c.n_mels = 64;
  return c;
}

LogMel::LogMel(const LogMelConfig& config)
    : config_(validated(config)),
      window_(make_window(config.n_fft, config.win_length)),
      filterbank_(make_filterbank(config)),
      plan_(config.n_fft) {
  const int n_freqs = config_.n_fft / 2 + 1, n_mels = config_.n_mels;
  band_start_.assign(n_mels, 0);
  band_offset_.assign(n_mels + 1, 0);
  for (int m = 0; m < n_mels; ++m) {
    // A triangle is nonzero on one run of bins; keep that run (empty for a band that falls between bins).
    int lo = n_freqs, hi = 0;
    for (int f = 0; f < n_freqs; ++f) {
      if (filterbank_[static_cast<size_t>(f) * n_mels + m] != 0.0) {
        lo = std::min(lo, f);
        hi = f + 1;
      }
    }
    if (lo >= hi) lo = hi = 0;
    band_start_[m] = lo;
    for (int f = lo; f < hi; ++f) band_weights_.push_back(filterbank_[static_cast<size_t>(f) * n_mels + m]);
    band_offset_[m + 1] = band_weights_.size();
  }
}

int64_t LogMel::frames(int64_t samples) const {
  MINIDL_CHECK(samples >= 0, "LogMel::frames: samples = ", samples, " must be >= 0");
  // padded - n_fft without forming padded, which could overflow for a huge count: centring pads
  // 2 (n_fft / 2), i.e. n_fft or n_fft - 1 samples.
  const int64_t shortfall = config_.center ? config_.n_fft - 2 * (config_.n_fft / 2) : config_.n_fft;
  if (samples < shortfall) return 0;
  return 1 + (samples - shortfall) / config_.hop_length;
}

std::vector<double> LogMel::power_spectrogram(const float* audio, int64_t n) const {
  check_audio(audio, n, "LogMel::power_spectrogram", window_.empty());
  const int64_t frames_n = frames(n);
  const int n_freqs = config_.n_fft / 2 + 1;
  std::vector<double> out(static_cast<size_t>(n_freqs) * frames_n);
  for_each_frame(config_, window_, plan_, audio, n, frames_n, [&](int64_t t, const double* power) {
    for (int k = 0; k < n_freqs; ++k) out[static_cast<size_t>(k) * frames_n + t] = power[k];
  });
  return out;
}

std::vector<float> LogMel::compute(const float* audio, int64_t n) const {
  check_audio(audio, n, "LogMel::compute", window_.empty());
  const int64_t frames_n = frames(n);
  const int n_mels = config_.n_mels;
  std::vector<double> db(static_cast<size_t>(n_mels) * frames_n);
  for_each_frame(config_, window_, plan_, audio, n, frames_n, [&](int64_t t, const double* power) {
    for (int m = 0; m < n_mels; ++m) {
      const double* w = band_weights_.data() + band_offset_[m];
      const double* p = power + band_start_[m];
      const size_t len = band_offset_[m + 1] - band_offset_[m];
      double sum = 0.0;
      for (size_t i = 0; i < len; ++i) sum += w[i] * p[i];
      db[static_cast<size_t>(m) * frames_n + t] = 10.0 * std::log10(std::max(sum, kAmin));
    }
  });
  // top_db: the floor is relative to the maximum over the whole image (torchaudio takes the max over the
  // (channel, freq, time) block of each item, and one clip is one such item).
  if (config_.top_db > 0.0 && !db.empty()) {
    const double floor = *std::max_element(db.begin(), db.end()) - config_.top_db;
    for (double& v : db) v = std::max(v, floor);
  }
  std::vector<float> out(db.size());
  for (size_t i = 0; i < db.size(); ++i) out[i] = static_cast<float>((db[i] + config_.db_offset) / config_.db_scale);
  return out;
}

double hz_to_mel(double hz, MelScale scale) {
  check_scale(scale, "hz_to_mel");
  MINIDL_CHECK(std::isfinite(hz) && hz >= 0.0, "hz_to_mel: hz = ", hz, " must be finite and >= 0");
  if (scale == MelScale::Htk) return 2595.0 * std::log10(1.0 + hz / 700.0);
  // Slaney (librosa's default): linear at 200/3 Hz per mel up to 1 kHz, logarithmic above. The constants are
  // written as torchaudio writes them so that the rounding agrees too.
  const double f_sp = 200.0 / 3;
  const double min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = std::log(6.4) / 27.0;
  if (hz >= min_log_hz) return min_log_mel + std::log(hz / min_log_hz) / logstep;
  return hz / f_sp;
}

double mel_to_hz(double mel, MelScale scale) {
  check_scale(scale, "mel_to_hz");
  MINIDL_CHECK(std::isfinite(mel) && mel >= 0.0, "mel_to_hz: mel = ", mel, " (", scale_name(scale),
               " scale) must be finite and >= 0");
  if (scale == MelScale::Htk) return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3;
  const double min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = std::log(6.4) / 27.0;
  if (mel >= min_log_mel) return min_log_hz * std::exp(logstep * (mel - min_log_mel));
  return f_sp * mel;
}

}  // namespace minidl::data
