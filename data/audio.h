// Audio files and sample-rate conversion: WAV in (every common PCM and float layout, any channel count,
// mixed down to mono), WAV out (PCM16), and a band-limited resampler.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minidl::data {

struct Audio {
  std::vector<float> samples;  // mono, full scale = [-1, 1]
  int sample_rate = 0;
  double seconds() const { return sample_rate > 0 ? static_cast<double>(samples.size()) / sample_rate : 0.0; }
};

// Reads a RIFF/WAVE file: PCM 8-bit (unsigned), 16, 24 and 32-bit (signed), IEEE float 32 and 64-bit, plain
// or WAVE_FORMAT_EXTENSIBLE, any number of channels (averaged into one). A missing file, a truncated or
// malformed header, a data chunk shorter than it claims, or an unsupported format is a minidl::Error naming
// the file and what is wrong with it.
Audio read_wav(const std::string& path);
// The same from bytes in memory; `name` is what errors call the source.
Audio parse_wav(const std::vector<uint8_t>& bytes, const std::string& name);

// Writes mono 16-bit PCM (samples clipped to [-1, 1]). The file appears atomically: written to a
// temporary name beside it, then renamed, so a reader never sees half a file.
void write_wav(const std::string& path, const std::vector<float>& samples, int sample_rate);
// The bytes write_wav would write.
std::vector<uint8_t> encode_wav(const std::vector<float>& samples, int sample_rate);

// Band-limited resampling from from_rate to to_rate (any two positive rates): a windowed-sinc
// (Kaiser) interpolator whose cutoff sits just below the lower of the two Nyquist frequencies, so
// downsampling does not alias. The output has round(n * to_rate / from_rate) samples. Equal rates return
// the input unchanged.
std::vector<float> resample(const std::vector<float>& x, int from_rate, int to_rate);

}  // namespace minidl::data
