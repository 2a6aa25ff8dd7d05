// The audio front end of the model (MODEL.md §3): power spectrogram (STFT with a Hann window), mel filter
// bank, power to dB with a top_db floor, then the paper's normalisation (dB + 14.8) / 19.895. It follows
// torchaudio's MelSpectrogram + AmplitudeToDB definitions (center=True with reflect padding, periodic Hann
// window zero-padded to n_fft when shorter, HTK mel scale and no filter normalisation by default), so
// reference values computed with torchaudio (tools/logmel_reference.py) match.
#pragma once

#include <cstdint>
#include <vector>

#include "data/fft.h"

namespace minidl::data {

enum class MelScale { Htk, Slaney };

struct LogMelConfig {
  int sample_rate = 16000;
  int n_fft = 1024;
  int win_length = 320;  // 20 ms at 16 kHz
  int hop_length = 160;  // 10 ms at 16 kHz
  int n_mels = 64;
  double f_min = 0.0;
  double f_max = 0.0;  // 0 means sample_rate / 2
  MelScale mel_scale = MelScale::Htk;
  bool slaney_norm = false;  // divide each triangle by its width (torchaudio norm="slaney")
  bool center = true;        // pad n_fft / 2 on both sides (reflect) so frame t is centred at t * hop
  double top_db = 80.0;      // dB values below (max - top_db) are raised to it; <= 0 disables
  double db_offset = 14.8;   // output = (dB + db_offset) / db_scale
  double db_scale = 19.895;

  // The paper's setting at 44.1 kHz: n_fft 1024, window 882 (20 ms), hop 441 (10 ms), 64 mels.
  static LogMelConfig paper();
};

class LogMel {
 public:
  // Builds the window, the filter bank and the FFT plan once; a bad config is a minidl::Error naming the
  // field (non-positive sizes, win_length > n_fft, f_min >= f_max, f_max above Nyquist, ...).
  explicit LogMel(const LogMelConfig& config);

  const LogMelConfig& config() const { return config_; }
  // Spectrogram frames for n samples: 1 + n / hop with center, else 1 + (n - n_fft) / hop (0 if n < n_fft).
  // (Exactly: 1 + (n + 2 pad - n_fft) / hop with pad = n_fft / 2 when centred, which is 1 + (n - 1) / hop for
  // an odd n_fft, as torch.stft counts; 0 when the padded signal is shorter than n_fft.)
  int64_t frames(int64_t samples) const;
  // The normalised log-mel image of audio[0, n): [n_mels, frames(n)], row-major.
  std::vector<float> compute(const float* audio, int64_t n) const;
  // Intermediate steps, for tests: the power spectrogram [n_fft/2 + 1, frames] and the filter bank
  // [n_fft/2 + 1, n_mels] (torchaudio's layout).
  std::vector<double> power_spectrogram(const float* audio, int64_t n) const;
  const std::vector<double>& filterbank() const { return filterbank_; }

 private:
  LogMelConfig config_;
  std::vector<double> window_;      // n_fft long, the Hann window centred in it
  std::vector<double> filterbank_;  // [n_freqs, n_mels]
  FftPlan plan_;
  // The filter bank packed per band for the per-frame product: band m covers the bins from band_start_[m]
  // on, with the weights band_weights_[band_offset_[m], band_offset_[m + 1]) (each bin feeds <= 2 bands).
  std::vector<int> band_start_;
  std::vector<size_t> band_offset_;
  std::vector<double> band_weights_;
};

// Hz <-> mel on either scale (HTK: 2595 log10(1 + f/700); Slaney: linear below 1 kHz, log above).
double hz_to_mel(double hz, MelScale scale);
double mel_to_hz(double mel, MelScale scale);

}  // namespace minidl::data
