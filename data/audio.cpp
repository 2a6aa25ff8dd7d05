#include "data/audio.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <numeric>

#include "autograd/error.h"
#include "data/file_io.h"

namespace minidl::data {
namespace {

namespace fs = std::filesystem;

constexpr uint16_t kTagPcm = 1;
constexpr uint16_t kTagFloat = 3;
constexpr uint16_t kTagExtensible = 0xFFFE;
// Bytes 2..15 of every KSDATAFORMAT_SUBTYPE_* GUID derived from a plain format tag; bytes 0..1 are the tag.
constexpr uint8_t kGuidTail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t le64(const uint8_t* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }
void put_tag(std::vector<uint8_t>& out, const char (&tag)[5]) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(tag[i]));
}

void put16(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, v & 0xFFFF);
  put16(out, v >> 16);
}

// Chunk ids are usually printable; anything else is shown in hex so a message never carries raw bytes.
std::string chunk_name(const uint8_t* p) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    if (p[i] < 0x20 || p[i] > 0x7E) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08X", le32(p));
      return hex;
    }
    s += static_cast<char>(p[i]);
  }
  return "'" + s + "'";
}

struct Format {
  uint16_t tag = 0;  // kTagPcm or kTagFloat once the extensible wrapper is unpacked
  uint32_t channels = 0;
  uint32_t rate = 0;
  uint32_t block_align = 0;
  uint32_t bits = 0;
};

Format parse_fmt(const uint8_t* p, uint32_t size, const std::string& name) {
  MINIDL_CHECK(size >= 16, "read_wav: ", name, ": fmt chunk has ", size, " bytes, at least 16 are needed");
  Format f;
  f.tag = le16(p);
  f.channels = le16(p + 2);
  f.rate = le32(p + 4);
  f.block_align = le16(p + 12);
  f.bits = le16(p + 14);
  if (f.tag == kTagExtensible) {
    MINIDL_CHECK(size >= 40, "read_wav: ", name, ": WAVE_FORMAT_EXTENSIBLE fmt chunk has ", size,
                 " bytes, 40 are needed");
    const uint8_t* guid = p + 24;
    MINIDL_CHECK(std::memcmp(guid + 2, kGuidTail, sizeof kGuidTail) == 0, "read_wav: ", name,
                 ": WAVE_FORMAT_EXTENSIBLE with a sub-format GUID that is not PCM or IEEE float");
    // The samples sit left-justified in containers of `bits` bits (valid bits only say how many are
    // meaningful), so decoding the full container is right whatever the valid-bit count.
    f.tag = le16(guid);
  }
  MINIDL_CHECK(f.tag == kTagPcm || f.tag == kTagFloat, "read_wav: ", name, ": unsupported format tag ", f.tag,
               " (read are PCM = 1, IEEE float = 3 and WAVE_FORMAT_EXTENSIBLE with either)");
  MINIDL_CHECK(f.channels > 0, "read_wav: ", name, ": fmt chunk says 0 channels");
  MINIDL_CHECK(f.rate > 0, "read_wav: ", name, ": fmt chunk says a sample rate of 0");
  MINIDL_CHECK(f.rate <= static_cast<uint32_t>(std::numeric_limits<int>::max()), "read_wav: ", name, ": sample rate ",
               f.rate, " is out of range");
  const bool bits_ok =
      f.tag == kTagPcm ? (f.bits == 8 || f.bits == 16 || f.bits == 24 || f.bits == 32) : (f.bits == 32 || f.bits == 64);
  MINIDL_CHECK(bits_ok, "read_wav: ", name, ": unsupported bit depth ", f.bits, " for ",
               f.tag == kTagPcm ? "PCM (8, 16, 24 or 32)" : "IEEE float (32 or 64)");
  MINIDL_CHECK(f.block_align == f.channels * (f.bits / 8), "read_wav: ", name, ": block_align ", f.block_align,
               " is inconsistent with ", f.channels, " channels of ", f.bits, " bits (expected ",
               f.channels * (f.bits / 8), ")");
  // byte_rate (offset 8) is redundant with rate * block_align and wrong in enough files in the wild
  // that rejecting on it would only lose readable audio; it is not checked.
  return f;
}

// One sample of the given layout as a float in [-1, 1] (floats are passed through).
template <int Bits, bool IsFloat>
float decode_sample(const uint8_t* p) {
  if constexpr (IsFloat && Bits == 32) {
    return std::bit_cast<float>(le32(p));
  } else if constexpr (IsFloat) {
    return static_cast<float>(std::bit_cast<double>(le64(p)));
  } else if constexpr (Bits == 8) {
    return (static_cast<int>(p[0]) - 128) * (1.0f / 128.0f);
  } else if constexpr (Bits == 16) {
    return static_cast<int16_t>(le16(p)) * (1.0f / 32768.0f);
  } else if constexpr (Bits == 24) {
    // Shift the three bytes to the top of an int32 so the arithmetic shift back sign-extends.
    const int32_t v = static_cast<int32_t>((static_cast<uint32_t>(p[0]) << 8) | (static_cast<uint32_t>(p[1]) << 16) |
                                           (static_cast<uint32_t>(p[2]) << 24)) >>
                      8;
    return static_cast<float>(v) * (1.0f / 8388608.0f);
  } else {
    return static_cast<float>(static_cast<int32_t>(le32(p)) * (1.0 / 2147483648.0));
  }
}

template <int Bits, bool IsFloat>
void mix_down(const uint8_t* data, size_t frames, uint32_t channels, std::vector<float>& out) {
  constexpr int kBytes = Bits / 8;
  const float scale = 1.0f / static_cast<float>(channels);
  out.resize(frames);
  for (size_t i = 0; i < frames; ++i) {
    const uint8_t* frame = data + i * channels * kBytes;
    float sum = 0.0f;
    for (uint32_t c = 0; c < channels; ++c) sum += decode_sample<Bits, IsFloat>(frame + c * kBytes);
    out[i] = channels == 1 ? sum : sum * scale;
  }
}

// ---- resampler ----------------------------------------------------------------------------------------

// Zero crossings of the sinc on each side, and the Kaiser beta. beta 8.6 gives about 87 dB of stopband
// attenuation; with 64 zero crossings the transition band (Kaiser's estimate (A - 7.95) / (14.36 N)) is
// 8.6 % of the cutoff, so a cutoff at 0.958 of the lower Nyquist puts the stopband edge right at it.
// Measured (48k -> 16k, 44.1k -> 16k): flat within 0.01 dB up to 0.92 of the lower Nyquist, -3 dB at 0.95,
// at least 88 dB down from the Nyquist frequency up; 128 / 0.958 taps per output sample at the lower rate.
constexpr int kZeroCrossings = 64;
constexpr double kBeta = 8.6;
constexpr double kRolloff = 0.958;
// Rate pairs whose ratio in lowest terms has more than this many output phases (44100 -> 44099 has 44099)
// get a bank of this many evenly spaced phases instead, and each output blends its two neighbours: the
// kernel is smooth, so the error is far below float precision while the bank stays small.
constexpr int64_t kMaxPhases = 4096;
// A bound on the bank's size (floats); only absurd ratios (a million to one) reach it.
constexpr double kMaxCoefficients = double{1 << 26};

double bessel_i0(double x) {
  // Power series; converges fast for the arguments a Kaiser window with beta < 20 produces.
  double sum = 1.0, term = 1.0;
  const double q = x * x / 4.0;
  for (int k = 1; k < 200 && term > 1e-17 * sum; ++k) {
    term *= q / (static_cast<double>(k) * k);
    sum += term;
  }
  return sum;
}

// The low-pass kernel as a function of u = distance in zero crossings (|u| <= kZeroCrossings), without
// the gain factor.
double kernel(double u) {
  const double r = u / kZeroCrossings;
  if (r <= -1.0 || r >= 1.0) return 0.0;
  const double sinc = u == 0.0 ? 1.0 : std::sin(std::numbers::pi * u) / (std::numbers::pi * u);
  static const double i0_beta = bessel_i0(kBeta);
  return sinc * bessel_i0(kBeta * std::sqrt(1.0 - r * r)) / i0_beta;
}

// Fills taps[i] = h(frac + half - 1 - i) for i in [0, 2 * half): the weights of x[n0 - half + 1 + i] for an
// output at input time n0 + frac. `scale` converts input samples to zero crossings. Each phase is
// normalised to a gain of exactly 1 at DC so constant signals stay constant.
void fill_taps(double frac, int half, double scale, std::vector<double>& w, float* taps) {
  double sum = 0.0;
  w.resize(2 * half);
  for (int i = 0; i < 2 * half; ++i) {
    w[i] = kernel((frac + half - 1 - i) * scale);
    sum += w[i];
  }
  for (int i = 0; i < 2 * half; ++i) taps[i] = static_cast<float>(w[i] / sum);
}

float dot(const float* a, const float* b, int n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

}  // namespace

Audio read_wav(const std::string& path) { return parse_wav(read_file(path, "read_wav"), path); }

Audio parse_wav(const std::vector<uint8_t>& bytes, const std::string& name) {
  const size_t n = bytes.size();
  MINIDL_CHECK(n > 0, "read_wav: ", name, ": empty file");
  MINIDL_CHECK(n >= 12, "read_wav: ", name, ": truncated: ", n, " bytes cannot hold a RIFF/WAVE header (12)");
  const uint8_t* b = bytes.data();
  MINIDL_CHECK(std::memcmp(b, "RIFF", 4) == 0, "read_wav: ", name, ": not a RIFF file (starts with ", chunk_name(b),
               ")");
  MINIDL_CHECK(std::memcmp(b + 8, "WAVE", 4) == 0, "read_wav: ", name, ": RIFF file of type ", chunk_name(b + 8),
               ", not WAVE");
  // The RIFF size (bytes 4..7) is not trusted: streaming writers leave it 0 or 0xFFFFFFFF and others get it
  // wrong. The walk goes by the file's own length and stops once fmt and data are found, so whatever
  // follows them (metadata, trailing junk) is never looked at.
  bool have_fmt = false, have_data = false;
  Format fmt;
  size_t data_at = 0, data_size = 0;
  size_t pos = 12;
  while (pos + 8 <= n && !(have_fmt && have_data)) {
    const uint8_t* head = b + pos;
    const uint32_t size = le32(head + 4);
    const size_t left = n - pos - 8;
    const bool is_data = std::memcmp(head, "data", 4) == 0;
    if (size > left) {
      MINIDL_CHECK(!is_data, "read_wav: ", name, ": truncated: data chunk claims ", size, " bytes, file has ", left);
      fail("read_wav: ", name, ": truncated: ", chunk_name(head), " chunk claims ", size, " bytes, file has ", left);
    }
    if (std::memcmp(head, "fmt ", 4) == 0 && !have_fmt) {
      fmt = parse_fmt(head + 8, size, name);
      have_fmt = true;
    } else if (is_data && !have_data) {
      data_at = pos + 8;
      data_size = size;
      have_data = true;
    }
    // Anything else (LIST, fact, cue , bext, JUNK, ...) is metadata and skipped. Chunks are padded to an even
    // size; the pad byte is not counted in `size`.
    pos += 8 + size + (size & 1);
  }
  MINIDL_CHECK(have_fmt, "read_wav: ", name, have_data ? ": no fmt chunk" : ": no fmt chunk and no data chunk");
  MINIDL_CHECK(have_data, "read_wav: ", name, ": no data chunk");

  // A trailing partial frame (a writer cut mid-frame) carries no complete sample and is dropped.
  const size_t frames = data_size / fmt.block_align;
  Audio audio;
  audio.sample_rate = static_cast<int>(fmt.rate);
  const uint8_t* data = b + data_at;
  if (fmt.tag == kTagFloat) {
    if (fmt.bits == 32)
      mix_down<32, true>(data, frames, fmt.channels, audio.samples);
    else
      mix_down<64, true>(data, frames, fmt.channels, audio.samples);
    for (size_t i = 0; i < frames; ++i)
      MINIDL_CHECK(std::isfinite(audio.samples[i]), "read_wav: ", name, ": float sample at frame ", i,
                   " is not finite (", audio.samples[i], ")");
  } else {
    switch (fmt.bits) {
      case 8: mix_down<8, false>(data, frames, fmt.channels, audio.samples); break;
      case 16: mix_down<16, false>(data, frames, fmt.channels, audio.samples); break;
      case 24: mix_down<24, false>(data, frames, fmt.channels, audio.samples); break;
      default: mix_down<32, false>(data, frames, fmt.channels, audio.samples); break;
    }
  }
  return audio;
}

std::vector<uint8_t> encode_wav(const std::vector<float>& samples, int sample_rate) {
  MINIDL_CHECK(sample_rate > 0, "encode_wav: sample rate must be positive, got ", sample_rate);
  // The RIFF size field (36 + data bytes) must fit in 32 bits.
  MINIDL_CHECK(samples.size() <= (uint64_t{0xFFFFFFFF} - 36) / 2, "encode_wav: ", samples.size(),
               " samples are too many for a WAV file (4 GiB limit)");
  const uint32_t data_bytes = static_cast<uint32_t>(samples.size() * 2);
  std::vector<uint8_t> out;
  out.reserve(44 + data_bytes);
  put_tag(out, "RIFF");
  put32(out, 36 + data_bytes);
  put_tag(out, "WAVE");
  put_tag(out, "fmt ");
  put32(out, 16);
  put16(out, kTagPcm);
  put16(out, 1);  // channels
  put32(out, static_cast<uint32_t>(sample_rate));
  put32(out, static_cast<uint32_t>(sample_rate) * 2);  // byte rate
  put16(out, 2);                                       // block align
  put16(out, 16);                                      // bits
  put_tag(out, "data");
  put32(out, data_bytes);
  for (size_t i = 0; i < samples.size(); ++i) {
    const float x = samples[i];
    // NaN or infinity means the caller's signal is broken; writing silence or full scale would hide it.
    MINIDL_CHECK(std::isfinite(x), "encode_wav: sample ", i, " is not finite (", x, ")");
    // Scaled by 32768 to mirror the reader's 1/32768, so a round trip is off by at most half a step (a full
    // step only at +1, which clips to 32767).
    const long q = std::lround(std::clamp(x, -1.0f, 1.0f) * 32768.0f);
    put16(out, static_cast<uint16_t>(static_cast<int16_t>(std::clamp(q, -32768L, 32767L))));
  }
  return out;
}

void write_wav(const std::string& path, const std::vector<float>& samples, int sample_rate) {
  MINIDL_CHECK(sample_rate > 0, "write_wav: ", path, ": sample rate must be positive, got ", sample_rate);
  write_file_atomically(path, encode_wav(samples, sample_rate), "write_wav");
}

std::vector<float> resample(const std::vector<float>& x, int from_rate, int to_rate) {
  MINIDL_CHECK(from_rate > 0 && to_rate > 0, "resample: rates must be positive, got from_rate=", from_rate,
               ", to_rate=", to_rate);
  if (from_rate == to_rate) return x;
  const int64_t n = static_cast<int64_t>(x.size());
  MINIDL_CHECK(n <= std::numeric_limits<int64_t>::max() / to_rate, "resample: ", n, " samples are too many");
  const int64_t n_out = (n * to_rate + from_rate / 2) / from_rate;
  std::vector<float> y(static_cast<size_t>(n_out));
  if (n_out == 0) return y;

  // Output k sits at input time k * from / to = k * M / L (in lowest terms) = n0 + p / L.
  const int g = std::gcd(from_rate, to_rate);
  const int64_t L = to_rate / g, M = from_rate / g;
  // The cutoff, in cycles per input sample, sits just below the lower Nyquist; `scale` turns a distance in
  // input samples into zero crossings of the sinc at that cutoff.
  const double scale = kRolloff * std::min(1.0, static_cast<double>(to_rate) / from_rate);
  const double half_exact = std::ceil(kZeroCrossings / scale);
  // Exact phases p / L when there are few, else kMaxPhases + 1 phases q / kMaxPhases (both ends included).
  const bool exact = L <= kMaxPhases;
  const int64_t phases = exact ? L : kMaxPhases + 1;
  MINIDL_CHECK(2 * half_exact * static_cast<double>(phases) <= kMaxCoefficients, "resample: ", from_rate, " -> ",
               to_rate, " Hz is too extreme a ratio (the filter would need ",
               2 * half_exact * static_cast<double>(phases), " coefficients)");
  const int half = static_cast<int>(half_exact);
  const int taps = 2 * half;

  std::vector<float> bank(static_cast<size_t>(phases) * taps);
  std::vector<double> work;
  for (int64_t q = 0; q < phases; ++q) {
    const double frac = static_cast<double>(q) / (exact ? L : kMaxPhases);
    fill_taps(frac, half, scale, work, bank.data() + q * taps);
  }

  // Zero-padded copy so every output reads a full window without bounds checks.
  std::vector<float> padded(static_cast<size_t>(n + 2 * taps), 0.0f);
  std::copy(x.begin(), x.end(), padded.begin() + taps);

  int64_t n0 = 0, p = 0;
  const int64_t step_whole = M / L, step_frac = M % L;
  for (int64_t k = 0; k < n_out; ++k) {
    const float* window = padded.data() + (n0 - half + 1 + taps);
    if (exact) {
      y[k] = dot(bank.data() + p * taps, window, taps);
    } else {
      const double pos = static_cast<double>(p) * kMaxPhases / L;
      const int64_t q = static_cast<int64_t>(pos);
      const float a = static_cast<float>(pos - static_cast<double>(q));
      const float lo = dot(bank.data() + q * taps, window, taps);
      y[k] = a == 0.0f ? lo : lo + a * (dot(bank.data() + (q + 1) * taps, window, taps) - lo);
    }
    n0 += step_whole;
    p += step_frac;
    if (p >= L) {
      p -= L;
      ++n0;
    }
  }
  return y;
}

}  // namespace minidl::data
