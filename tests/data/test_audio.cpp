// WAV reading and writing against hand-assembled RIFF byte streams, every malformed-file error, and the
// band-limited resampler's length, passband, stopband and round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>

#include "autograd/error.h"
#include "data/audio.h"
#include "tests/data/data_test_helpers.h"

using namespace minidl;
using namespace minidl::data;
using namespace data_test;

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

void put(Bytes& b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_id(Bytes& b, const char* id) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(id[i]));
}

// A chunk with its pad byte when the payload size is odd.
Bytes chunk(const char* id, const Bytes& payload) {
  Bytes b;
  put_id(b, id);
  put(b, payload.size(), 4);
  b.insert(b.end(), payload.begin(), payload.end());
  if (payload.size() % 2) b.push_back(0);
  return b;
}

Bytes fmt_payload(uint16_t tag, uint16_t channels, uint32_t rate, uint16_t bits) {
  Bytes b;
  put(b, tag, 2);
  put(b, channels, 2);
  put(b, rate, 4);
  put(b, uint64_t{rate} * channels * bits / 8, 4);
  put(b, channels * bits / 8, 2);
  put(b, bits, 2);
  return b;
}

// WAVE_FORMAT_EXTENSIBLE wrapping the plain tag `sub` (1 = PCM, 3 = float).
Bytes extensible_payload(uint16_t sub, uint16_t channels, uint32_t rate, uint16_t bits) {
  Bytes b = fmt_payload(0xFFFE, channels, rate, bits);
  put(b, 22, 2);    // cbSize
  put(b, bits, 2);  // valid bits
  put(b, 3, 4);     // channel mask
  put(b, sub, 2);
  const uint8_t tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
  b.insert(b.end(), tail, tail + 14);
  return b;
}

Bytes riff(const std::vector<Bytes>& chunks) {
  Bytes body;
  put_id(body, "WAVE");
  for (const Bytes& c : chunks) body.insert(body.end(), c.begin(), c.end());
  Bytes b;
  put_id(b, "RIFF");
  put(b, body.size(), 4);
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

// Little-endian integer samples of `bits` bits (two's complement; 8-bit values are passed as stored).
Bytes ints(const std::vector<int64_t>& v, int bits) {
  Bytes b;
  for (int64_t x : v) put(b, static_cast<uint64_t>(x), bits / 8);
  return b;
}
Bytes floats32(const std::vector<float>& v) {
  Bytes b;
  for (float x : v) put(b, std::bit_cast<uint32_t>(x), 4);
  return b;
}
Bytes floats64(const std::vector<double>& v) {
  Bytes b;
  for (double x : v) put(b, std::bit_cast<uint64_t>(x), 8);
  return b;
}

Bytes simple_wav(uint16_t tag, uint16_t channels, uint32_t rate, uint16_t bits, const Bytes& data) {
  return riff({chunk("fmt ", fmt_payload(tag, channels, rate, bits)), chunk("data", data)});
}

void expect_samples(const Audio& a, const std::vector<float>& want, double tol = 0.0) {
  ASSERT_EQ(a.samples.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(a.samples[i], want[i], tol) << "sample " << i;
}

// Parsing must fail with a minidl::Error naming the source and containing `what`.
void expect_wav_error(const Bytes& bytes, const std::string& what) {
  const std::string name = "clip-test.wav";
  try {
    parse_wav(bytes, name);
    ADD_FAILURE() << "no error for a file that should give '" << what << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

std::vector<float> sine(double freq, int rate, double seconds, double amplitude = 0.5) {
  std::vector<float> x(static_cast<size_t>(seconds * rate));
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>(amplitude * std::sin(2 * std::numbers::pi * freq * static_cast<double>(i) / rate));
  return x;
}

// Least-squares fit of a sinusoid of the given frequency on y[begin, end): its amplitude, and the RMS of
// what is left (large when the frequency is wrong or the signal carries anything else).
struct Fit {
  double amplitude, residual;
};
Fit fit_sine(const std::vector<float>& y, double freq, int rate, size_t begin, size_t end) {
  double ss = 0, cc = 0, sc = 0, ys = 0, yc = 0;
  for (size_t i = begin; i < end; ++i) {
    const double ph = 2 * std::numbers::pi * freq * static_cast<double>(i) / rate;
    const double s = std::sin(ph), c = std::cos(ph);
    ss += s * s;
    cc += c * c;
    sc += s * c;
    ys += y[i] * s;
    yc += y[i] * c;
  }
  const double det = ss * cc - sc * sc;
  const double a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
  double r = 0;
  for (size_t i = begin; i < end; ++i) {
    const double ph = 2 * std::numbers::pi * freq * static_cast<double>(i) / rate;
    const double e = y[i] - a * std::sin(ph) - b * std::cos(ph);
    r += e * e;
  }
  return {std::hypot(a, b), std::sqrt(r / static_cast<double>(end - begin))};
}

double rms(const std::vector<float>& y, size_t begin, size_t end) {
  double s = 0;
  for (size_t i = begin; i < end; ++i) s += static_cast<double>(y[i]) * y[i];
  return std::sqrt(s / static_cast<double>(end - begin));
}

}  // namespace

// ---- writing ---------------------------------------------------------------------------------------

TEST(Wav, EncodeParseRoundTripWithinHalfAStep) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x = {0.0f, 1.0f, -1.0f, 0.5f, -0.5f, 1.0f / 32768, 1.7f, -3.0f};
  for (int i = 0; i < 1000; ++i) x.push_back(u(rng));
  const Bytes bytes = encode_wav(x, 22050);
  ASSERT_EQ(bytes.size(), 44 + 2 * x.size());
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 4), "RIFF");
  const Audio a = parse_wav(bytes, "mem");
  EXPECT_EQ(a.sample_rate, 22050);
  ASSERT_EQ(a.samples.size(), x.size());
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_LE(std::abs(a.samples[i] - std::clamp(x[i], -1.0f, 1.0f)), 1.0f / 32768) << "sample " << i;
  EXPECT_EQ(a.samples[0], 0.0f);
  EXPECT_EQ(a.samples[2], -1.0f);
  EXPECT_EQ(a.samples[7], -1.0f) << "clipped to -1";
  EXPECT_NEAR(a.seconds(), x.size() / 22050.0, 1e-12);
}

TEST(Wav, EncodeRejectsBadInput) {
  EXPECT_THROW(encode_wav({0.1f}, 0), Error);
  EXPECT_THROW(encode_wav({0.1f}, -16000), Error);
  EXPECT_THROW(encode_wav({0.1f, std::nanf("")}, 16000), Error) << "NaN must not become silence";
  EXPECT_THROW(encode_wav({INFINITY}, 16000), Error);
  EXPECT_EQ(parse_wav(encode_wav({}, 8000), "empty").samples.size(), 0u) << "an empty signal is a valid file";
}

TEST(Wav, WriteReadFileIsAtomicAndOverwrites) {
  TempDir dir;
  const std::string path = dir.file("voice.wav");
  write_wav(path, {0.25f, -0.25f}, 16000);
  write_wav(path, {0.5f, 0.0f, -0.5f}, 44100);
  const Audio a = read_wav(path);
  EXPECT_EQ(a.sample_rate, 44100);
  expect_samples(a, {0.5f, 0.0f, -0.5f});
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "voice.wav");
  }
  EXPECT_EQ(entries, 1) << "no temporary file may be left behind";
}

TEST(Wav, WriteIntoMissingFolderNamesIt) {
  TempDir dir;
  const std::string folder = dir.file("no-such-folder");
  try {
    write_wav(folder + "/x.wav", {0.0f}, 16000);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(folder), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(folder));
  EXPECT_THROW(write_wav(dir.file("bad-rate.wav"), {0.0f}, 0), Error);
}

// ---- every sample layout ----------------------------------------------------------------------------

TEST(Wav, Pcm8IsUnsignedAroundTheMiddle) {
  const Audio a = parse_wav(simple_wav(1, 1, 8000, 8, ints({0, 128, 255, 64}, 8)), "u8");
  EXPECT_EQ(a.sample_rate, 8000);
  expect_samples(a, {-1.0f, 0.0f, 127.0f / 128, -0.5f});
}

TEST(Wav, Pcm16And24And32AreSigned) {
  expect_samples(parse_wav(simple_wav(1, 1, 16000, 16, ints({-32768, 32767, 16384, -1}, 16)), "s16"),
                 {-1.0f, 32767.0f / 32768, 0.5f, -1.0f / 32768});
  expect_samples(parse_wav(simple_wav(1, 1, 16000, 24, ints({-8388608, 8388607, 4194304, -1}, 24)), "s24"),
                 {-1.0f, 8388607.0f / 8388608, 0.5f, -1.0f / 8388608});
  expect_samples(parse_wav(simple_wav(1, 1, 16000, 32, ints({INT32_MIN, INT32_MAX, 1 << 30, -(1 << 29)}, 32)), "s32"),
                 {-1.0f, 1.0f, 0.5f, -0.25f}, 1e-7);
}

TEST(Wav, FloatSamplesPassThrough) {
  expect_samples(parse_wav(simple_wav(3, 1, 48000, 32, floats32({0.125f, -0.75f, 1.5f})), "f32"),
                 {0.125f, -0.75f, 1.5f});
  expect_samples(parse_wav(simple_wav(3, 1, 48000, 64, floats64({0.125, -0.75, 1e-3})), "f64"),
                 {0.125f, -0.75f, 1e-3f});
  expect_wav_error(simple_wav(3, 1, 48000, 32, floats32({0.0f, std::nanf("")})), "not finite");
}

TEST(Wav, ExtensiblePcmAndFloat) {
  const Bytes pcm = riff({chunk("fmt ", extensible_payload(1, 2, 32000, 16)), chunk("data", ints({1000, 3000}, 16))});
  const Audio a = parse_wav(pcm, "ext-pcm");
  EXPECT_EQ(a.sample_rate, 32000);
  expect_samples(a, {2000.0f / 32768});
  const Bytes flt = riff({chunk("fmt ", extensible_payload(3, 1, 96000, 32)), chunk("data", floats32({0.3f}))});
  expect_samples(parse_wav(flt, "ext-float"), {0.3f});
  Bytes odd_guid = extensible_payload(1, 1, 8000, 16);
  odd_guid.back() ^= 0xFF;
  expect_wav_error(riff({chunk("fmt ", odd_guid), chunk("data", ints({0}, 16))}), "sub-format GUID");
  Bytes short_ext = fmt_payload(0xFFFE, 1, 8000, 16);
  expect_wav_error(riff({chunk("fmt ", short_ext), chunk("data", ints({0}, 16))}), "EXTENSIBLE");
}

TEST(Wav, ChannelsAreAveragedToMono) {
  expect_samples(parse_wav(simple_wav(1, 2, 16000, 16, ints({16384, -8192, 0, 32767}, 16)), "stereo"),
                 {0.125f, 32767.0f / 65536});
  // Six channels of 24-bit: 0.5 + 0.25 + 0 + 0 - 0.5 + 0.75 = 1.0 over 6.
  const Bytes six = simple_wav(1, 6, 48000, 24, ints({4194304, 2097152, 0, 0, -4194304, 6291456}, 24));
  expect_samples(parse_wav(six, "5.1"), {1.0f / 6}, 1e-7);
}

TEST(Wav, UnknownChunksAndPadBytesAreSkipped) {
  // LIST before fmt, an odd-sized chunk (pad byte) between fmt and data, an odd-sized 8-bit data chunk
  // followed by another chunk.
  const Bytes b =
      riff({chunk("LIST", Bytes(26, 'x')), chunk("fmt ", fmt_payload(1, 1, 11025, 8)), chunk("odd!", Bytes(3, 0xEE)),
            chunk("data", ints({128, 192, 64}, 8)), chunk("cue ", Bytes(4, 0))});
  ASSERT_EQ(b.size() % 2, 0u);
  const Audio a = parse_wav(b, "chunks");
  EXPECT_EQ(a.sample_rate, 11025);
  expect_samples(a, {0.0f, 0.5f, -0.5f});
  // A writer that put fmt after data is still read (the walk finds both before decoding).
  expect_samples(
      parse_wav(riff({chunk("data", ints({256}, 16)), chunk("fmt ", fmt_payload(1, 1, 8000, 16))}), "late-fmt"),
      {256.0f / 32768});
  // A partial trailing frame (3 bytes of 16-bit stereo) carries no whole sample and is dropped.
  expect_samples(parse_wav(simple_wav(1, 2, 8000, 16, Bytes{0, 0, 0, 0, 1, 2, 3}), "partial"), {0.0f});
}

TEST(Wav, RiffSizeIsAdvisory) {
  const Bytes good = simple_wav(1, 1, 8000, 16, ints({100, -100}, 16));
  // Streaming writers leave the RIFF size unset; junk after the RIFF body is ignored.
  Bytes streamed = good;
  for (int i = 4; i < 8; ++i) streamed[i] = 0xFF;
  expect_samples(parse_wav(streamed, "streamed"), {100.0f / 32768, -100.0f / 32768});
  Bytes junk = good;
  junk.insert(junk.end(), {'j', 'u', 'n', 'k', 0x7F});
  expect_samples(parse_wav(junk, "junk"), {100.0f / 32768, -100.0f / 32768});
  // An understated RIFF size does not make a complete data chunk "truncated".
  Bytes understated = good;
  understated[4] = 30;
  understated[5] = understated[6] = understated[7] = 0;
  expect_samples(parse_wav(understated, "understated"), {100.0f / 32768, -100.0f / 32768});
}

// ---- malformed files --------------------------------------------------------------------------------

TEST(Wav, MalformedFilesAreErrorsNamingTheFile) {
  const Bytes good = simple_wav(1, 1, 16000, 16, ints({1, 2, 3, 4, 5, 6, 7, 8}, 16));
  expect_wav_error({}, "empty file");
  expect_wav_error({'R', 'I', 'F'}, "truncated");
  Bytes rifx = good;
  rifx[3] = 'X';
  expect_wav_error(rifx, "not a RIFF file");
  Bytes avi = good;
  std::memcpy(avi.data() + 8, "AVI ", 4);
  expect_wav_error(avi, "not WAVE");
  expect_wav_error(Bytes(good.begin(), good.begin() + 30), "truncated: 'fmt ' chunk claims 16 bytes, file has 10");
  expect_wav_error(Bytes(good.begin(), good.end() - 6), "truncated: data chunk claims 16 bytes, file has 10");
  expect_wav_error(riff({chunk("data", ints({1}, 16))}), "no fmt chunk");
  expect_wav_error(riff({chunk("fmt ", fmt_payload(1, 1, 8000, 16))}), "no data chunk");
  expect_wav_error(riff({}), "no fmt chunk and no data chunk");
  expect_wav_error(simple_wav(1, 0, 16000, 16, {}), "0 channels");
  expect_wav_error(simple_wav(1, 1, 0, 16, ints({0}, 16)), "sample rate of 0");
  expect_wav_error(simple_wav(2, 1, 16000, 4, ints({0}, 16)), "unsupported format tag 2");
  expect_wav_error(simple_wav(1, 1, 16000, 12, ints({0}, 16)), "unsupported bit depth 12");
  expect_wav_error(simple_wav(3, 1, 16000, 16, ints({0}, 16)), "unsupported bit depth 16");
  Bytes misaligned = good;
  misaligned[12 + 8 + 12] = 4;  // block_align of a mono 16-bit file must be 2
  expect_wav_error(misaligned, "block_align 4 is inconsistent");
  expect_wav_error(riff({chunk("fmt ", Bytes(12, 0)), chunk("data", {})}), "fmt chunk has 12 bytes");
}

TEST(Wav, RandomBytesAreErrorsNeverCrashes) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 200; ++trial) {
    Bytes b(rng() % 300);
    for (auto& v : b) v = static_cast<uint8_t>(rng());
    // Half the trials keep a valid RIFF/WAVE preamble so the chunk walk itself sees garbage.
    if (trial % 2 && b.size() >= 12) std::memcpy(b.data(), "RIFF\xff\xff\xff\xffWAVE", 12);
    try {
      parse_wav(b, "noise.wav");
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("noise.wav"), std::string::npos) << e.what();
    }
  }
  expect_wav_error(Bytes{0x13, 0x37, 0x00, 0xFF, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42}, "not a RIFF");
}

TEST(Wav, MissingAndEmptyFilesNameThePath) {
  TempDir dir;
  const std::string missing = dir.file("missing.wav");
  try {
    read_wav(missing);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos) << e.what();
  }
  const std::string empty = dir.file("empty.wav");
  std::ofstream(empty).close();
  EXPECT_THROW(read_wav(empty), Error);
  EXPECT_THROW(read_wav(dir.path().string()), Error) << "a folder is not a file";
}

// ---- resampling -------------------------------------------------------------------------------------

TEST(Resample, OutputLengthIsRoundedRatio) {
  EXPECT_EQ(resample(std::vector<float>(44100), 44100, 16000).size(), 16000u);
  EXPECT_EQ(resample(std::vector<float>(1000), 16000, 44100).size(), 2756u);  // 2756.25
  EXPECT_EQ(resample(std::vector<float>(3), 2, 3).size(), 5u);                // 4.5 rounds up
  EXPECT_EQ(resample(std::vector<float>(1), 48000, 16000).size(), 0u);        // 1/3 rounds down
  EXPECT_TRUE(resample({}, 8000, 16000).empty());
}

TEST(Resample, EqualRatesAreIdentityAndBadRatesAreErrors) {
  const std::vector<float> x = {0.1f, -0.2f, 0.3f};
  EXPECT_EQ(resample(x, 16000, 16000), x);
  EXPECT_THROW(resample(x, 0, 16000), Error);
  EXPECT_THROW(resample(x, 16000, -1), Error);
}

TEST(Resample, ConstantStaysConstantAwayFromTheEdges) {
  const std::vector<float> y = resample(std::vector<float>(8000, 0.3f), 22050, 16000);
  for (size_t i = 200; i + 200 < y.size(); ++i) ASSERT_NEAR(y[i], 0.3f, 1e-6) << i;
}

TEST(Resample, PassbandSineKeepsAmplitudeAndFrequency) {
  // Common ratios (exact polyphase bank) and one with no useful common divisor (interpolated kernel).
  for (const auto& [from, to, freq] : {std::tuple{48000, 16000, 1000.0}, std::tuple{44100, 16000, 6500.0},
                                       std::tuple{16000, 44100, 3000.0}, std::tuple{48000, 44101, 12000.0}}) {
    const std::vector<float> y = resample(sine(freq, from, 0.5), from, to);
    const Fit f = fit_sine(y, freq, to, y.size() / 5, y.size() * 4 / 5);
    EXPECT_NEAR(f.amplitude, 0.5, 0.005) << from << " -> " << to << " at " << freq << " Hz";
    EXPECT_LT(f.residual, 1e-3) << from << " -> " << to << " at " << freq << " Hz";
  }
}

TEST(Resample, AboveTheNewNyquistIsAttenuatedBy60dB) {
  for (double freq : {8600.0, 10000.0, 15000.0, 23000.0}) {
    const std::vector<float> y = resample(sine(freq, 48000, 0.5, 1.0), 48000, 16000);
    const double db = 20 * std::log10(rms(y, y.size() / 5, y.size() * 4 / 5) / std::sqrt(0.5));
    EXPECT_LT(db, -60.0) << freq << " Hz";
  }
}

TEST(Resample, UpAndDownAgainIsCloseInThePassband) {
  std::vector<float> x(16000);
  for (size_t i = 0; i < x.size(); ++i) {
    const double t = static_cast<double>(i) / 16000;
    x[i] = static_cast<float>(0.3 * std::sin(2 * std::numbers::pi * 440 * t) +
                              0.2 * std::sin(2 * std::numbers::pi * 2500 * t + 1) +
                              0.1 * std::sin(2 * std::numbers::pi * 6000 * t + 2));
  }
  const std::vector<float> y = resample(resample(x, 16000, 44100), 44100, 16000);
  ASSERT_EQ(y.size(), x.size());
  double err = 0;
  for (size_t i = 1000; i < x.size() - 1000; ++i) err = std::max(err, static_cast<double>(std::abs(y[i] - x[i])));
  EXPECT_LT(err, 1e-4);  // measured 5e-6
}
