// Presets and JSON for the model configuration.
#include "models/config.h"

#include <cmath>

#include "autograd/error.h"

namespace minidl::models {

ModelConfig model_preset(const std::string& name) {
  ModelConfig c;
  c.preset = name;
  if (name == "tiny") return c;  // the defaults in config.h are the tiny preset
  if (name == "small") {
    // Half the paper's resolution and a quarter of its widths: trains on a GPU in minutes.
    c.clips = 16;
    c.frames_per_clip = 8;
    c.image_size = 64;
    c.mel_bins = 64;
    c.mel_hop = 160;
    c.mel_fft = 1024;
    c.visual_widths = {16, 32, 64, 128};
    c.visual_blocks = 2;
    c.audio_widths = {16, 32, 64, 128};
    c.audio_blocks = 2;
    c.lstm_hidden = 128;
    c.tcn_channels = {256, 256, 256, 256};
    c.encoded = 64;
    c.attention = 32;
    return c;
  }
  if (name == "paper") {
    // MODEL.md §1-2: R(2+1)D-18 and ResNet-18 at full width, 16 clips of 8 frames at 112 x 112, 64 mels at
    // 10 ms hops, 2-layer BiLSTMs of 256 per direction, d = 128, k = 32.
    c.clips = 16;
    c.frames_per_clip = 8;
    c.image_size = 112;
    c.mel_bins = 64;
    c.mel_hop = 160;
    c.mel_fft = 1024;
    c.visual_widths = {64, 128, 256, 512};
    c.visual_blocks = 2;
    c.audio_widths = {64, 128, 256, 512};
    c.audio_blocks = 2;
    c.lstm_hidden = 256;
    c.tcn_channels = {512, 512, 512, 512};
    c.encoded = 128;
    c.attention = 32;
    return c;
  }
  fail("model_preset: unknown preset '", name, "' (presets: paper, small, tiny)");
}

int64_t visual_stem_width(const ModelConfig& c) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::llround(45.0 * c.visual_widths.front() / 64.0)));
}

void validate(const ModelConfig& c) {
  auto positive = [](const char* field, int64_t v) {
    MINIDL_CHECK(v > 0, "model config: ", field, " must be positive, got ", v);
  };
  positive("clips", c.clips);
  positive("frames_per_clip", c.frames_per_clip);
  positive("image_size", c.image_size);
  positive("mel_bins", c.mel_bins);
  positive("mel_hop", c.mel_hop);
  positive("mel_fft", c.mel_fft);
  positive("visual_blocks", c.visual_blocks);
  positive("audio_blocks", c.audio_blocks);
  positive("lstm_hidden", c.lstm_hidden);
  positive("lstm_layers", c.lstm_layers);
  positive("tcn_kernel", c.tcn_kernel);
  positive("encoded", c.encoded);
  positive("attention", c.attention);
  positive("recursions", c.recursions);
  positive("head_hidden", c.head_hidden);
  MINIDL_CHECK(c.visual_widths.size() == 4, "model config: visual_widths needs 4 stage widths, got ",
               c.visual_widths.size());
  MINIDL_CHECK(c.audio_widths.size() == 4, "model config: audio_widths needs 4 stage widths, got ",
               c.audio_widths.size());
  for (size_t i = 0; i < c.visual_widths.size(); ++i)
    positive(("visual_widths[" + std::to_string(i) + "]").c_str(), c.visual_widths[i]);
  for (size_t i = 0; i < c.audio_widths.size(); ++i)
    positive(("audio_widths[" + std::to_string(i) + "]").c_str(), c.audio_widths[i]);
  MINIDL_CHECK(!c.tcn_channels.empty() || c.temporal != "tcn", "model config: temporal \"tcn\" needs tcn_channels");
  for (size_t i = 0; i < c.tcn_channels.size(); ++i)
    positive(("tcn_channels[" + std::to_string(i) + "]").c_str(), c.tcn_channels[i]);
  MINIDL_CHECK(c.temporal == "lstm" || c.temporal == "tcn" || c.temporal == "none", "model config: temporal must be ",
               "lstm, tcn or none, got \"", c.temporal, "\"");
  static const char* kinds[] = {"audio", "visual", "concat", "cross_attention", "jca", "recursive_jca"};
  bool known = false;
  for (const char* k : kinds) known |= c.fusion == k;
  MINIDL_CHECK(known, "model config: fusion must be audio, visual, concat, cross_attention, jca or recursive_jca, ",
               "got \"", c.fusion, "\"");
  MINIDL_CHECK(c.head_dropout >= 0 && c.head_dropout < 1, "model config: head_dropout must lie in [0, 1), got ",
               c.head_dropout);
  MINIDL_CHECK(c.tcn_dropout >= 0 && c.tcn_dropout < 1, "model config: tcn_dropout must lie in [0, 1), got ",
               c.tcn_dropout);
  MINIDL_CHECK(c.mel_fft >= 320, "model config: mel_fft must be at least the 320-sample (20 ms) window, got ",
               c.mel_fft);
}

data::LoaderConfig loader_config(const ModelConfig& c) {
  data::LoaderConfig l;
  l.image_size = static_cast<int>(c.image_size);
  l.windows.clips = static_cast<int>(c.clips);
  l.windows.clip_frames = 32;
  l.windows.frames_per_clip = static_cast<int>(c.frames_per_clip);
  l.windows.stride = std::max(1, static_cast<int>(32 / c.frames_per_clip));
  l.mel.sample_rate = 16000;
  l.mel.n_fft = static_cast<int>(c.mel_fft);
  l.mel.win_length = 320;  // 20 ms
  l.mel.hop_length = static_cast<int>(c.mel_hop);
  l.mel.n_mels = static_cast<int>(c.mel_bins);
  return l;
}

nlohmann::json to_json(const ModelConfig& c) {
  return {{"preset", c.preset},
          {"clips", c.clips},
          {"frames_per_clip", c.frames_per_clip},
          {"image_size", c.image_size},
          {"mel_bins", c.mel_bins},
          {"mel_hop", c.mel_hop},
          {"mel_fft", c.mel_fft},
          {"visual_widths", c.visual_widths},
          {"visual_blocks", c.visual_blocks},
          {"audio_widths", c.audio_widths},
          {"audio_blocks", c.audio_blocks},
          {"temporal", c.temporal},
          {"lstm_hidden", c.lstm_hidden},
          {"lstm_layers", c.lstm_layers},
          {"tcn_channels", c.tcn_channels},
          {"tcn_kernel", c.tcn_kernel},
          {"tcn_dropout", c.tcn_dropout},
          {"fusion", c.fusion},
          {"encoded", c.encoded},
          {"attention", c.attention},
          {"recursions", c.recursions},
          {"head_hidden", c.head_hidden},
          {"head_dropout", c.head_dropout}};
}

namespace {

// Reads json[key] into `field` when present, naming the key and the expected type when it does not fit.
template <class T>
void read(const nlohmann::json& j, const char* key, T& field) {
  detail::read_json_field(j, key, field, "model config");
}

}  // namespace

ModelConfig model_config_from_json(const nlohmann::json& j, const ModelConfig& base) {
  MINIDL_CHECK(j.is_object(), "model config: expected a JSON object, got ", j.type_name());
  const nlohmann::json known = to_json(base);
  for (const auto& [key, value] : j.items())
    MINIDL_CHECK(known.contains(key), "model config: unknown key \"", key, "\"");
  ModelConfig c = base;
  read(j, "preset", c.preset);
  read(j, "clips", c.clips);
  read(j, "frames_per_clip", c.frames_per_clip);
  read(j, "image_size", c.image_size);
  read(j, "mel_bins", c.mel_bins);
  read(j, "mel_hop", c.mel_hop);
  read(j, "mel_fft", c.mel_fft);
  read(j, "visual_widths", c.visual_widths);
  read(j, "visual_blocks", c.visual_blocks);
  read(j, "audio_widths", c.audio_widths);
  read(j, "audio_blocks", c.audio_blocks);
  read(j, "temporal", c.temporal);
  read(j, "lstm_hidden", c.lstm_hidden);
  read(j, "lstm_layers", c.lstm_layers);
  read(j, "tcn_channels", c.tcn_channels);
  read(j, "tcn_kernel", c.tcn_kernel);
  read(j, "tcn_dropout", c.tcn_dropout);
  read(j, "fusion", c.fusion);
  read(j, "encoded", c.encoded);
  read(j, "attention", c.attention);
  read(j, "recursions", c.recursions);
  read(j, "head_hidden", c.head_hidden);
  read(j, "head_dropout", c.head_dropout);
  validate(c);
  return c;
}

}  // namespace minidl::models
