// The model's configuration and its presets (MODEL.md §2): paper (full size, for a GPU), small, tiny (the
// CPU and the tests). Every field has a default; JSON in and out, with unknown keys and wrong types named
// in the error.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "autograd/error.h"
#include "data/loader.h"

namespace minidl::models {

struct ModelConfig {
  std::string preset = "tiny";
  // ---- inputs (the loader is configured to produce exactly these) ----
  int64_t clips = 8;            // L: clips per sequence (the JCA's time-mixing weights are L x L)
  int64_t frames_per_clip = 4;  // T
  int64_t image_size = 48;      // frames are image_size x image_size RGB (at 32 the mouth is 2 px of change)
  int64_t mel_bins = 32;
  int64_t mel_hop = 356;  // samples at 16 kHz between log-mel frames (160 = 10 ms)
  int64_t mel_fft = 512;
  // ---- backbones ----
  std::vector<int64_t> visual_widths{8, 16, 32, 64};  // R(2+1)D stages; the feature is the last width
  int64_t visual_blocks = 1;                          // basic blocks per stage (2 in R(2+1)D-18)
  std::vector<int64_t> audio_widths{8, 16, 32, 64};   // ResNet stages
  int64_t audio_blocks = 1;                           // (2 in ResNet-18)
  // ---- temporal model per modality ----
  std::string temporal = "lstm";  // lstm, tcn or none
  int64_t lstm_hidden = 32;       // per direction; the temporal feature is 2 x lstm_hidden
  int64_t lstm_layers = 2;
  std::vector<int64_t> tcn_channels{64, 64};
  int64_t tcn_kernel = 5;
  double tcn_dropout = 0.1;
  // ---- fusion and heads ----
  std::string fusion = "jca";  // audio, visual, concat, cross_attention, jca or recursive_jca
  int64_t encoded = 32;        // d: width of the encoded features X_a, X_v
  int64_t attention = 16;      // k: width of the joint attention maps
  int64_t recursions = 2;      // recursive_jca: how many times the JCA block is applied
  int64_t head_hidden = 128;
  double head_dropout = 0.6;
};

// "paper", "small" or "tiny"; anything else is a minidl::Error listing the presets.
ModelConfig model_preset(const std::string& name);
// Checks values (positive sizes, known kinds) and their consistency; errors name the field.
void validate(const ModelConfig& config);

// The R(2+1)D stem's middle width: torchvision's 45 for a first stage of 64, scaled with the widths.
int64_t visual_stem_width(const ModelConfig& config);

// A loader configuration that produces exactly this model's inputs (clips per sequence, frames per
// clip, image size, log-mel bins and frames at 16 kHz); batch size, workers and augmentation are the
// caller's.
data::LoaderConfig loader_config(const ModelConfig& config);

nlohmann::json to_json(const ModelConfig& config);
// Starts from `base` and overrides the keys present in `json`.
ModelConfig model_config_from_json(const nlohmann::json& json, const ModelConfig& base);

namespace detail {
// Whether a JSON value holds a T without loss: integers for integer fields (no 1.7 for an epoch count, no
// -1 for a seed, nothing past the type's range), any number for a floating field, element by element for
// a list. nlohmann's get<T> alone converts between number types silently.
template <class T>
bool json_fits(const nlohmann::json& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v.is_boolean();
  } else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
    if (!v.is_number_integer()) return false;
    const int64_t x = v.get<int64_t>();  // signed storage, which JSON built in code uses for any integer
    if constexpr (std::is_signed_v<T>)
      return x >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
             x <= static_cast<int64_t>(std::numeric_limits<T>::max());
    else
      return x >= 0 && static_cast<uint64_t>(x) <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  } else if constexpr (std::is_floating_point_v<T>) {
    return v.is_number();
  } else if constexpr (std::is_same_v<T, std::string>) {
    return v.is_string();
  } else {  // a std::vector
    if (!v.is_array()) return false;
    for (const auto& e : v)
      if (!json_fits<typename T::value_type>(e)) return false;
    return true;
  }
}

// Reads json[key] into `field` when present; a value that does not fit is a minidl::Error naming `what`
// (the config), the key and the value.
template <class T>
void read_json_field(const nlohmann::json& j, const char* key, T& field, const char* what) {
  if (!j.contains(key)) return;
  const nlohmann::json& v = j.at(key);
  if (!json_fits<T>(v)) {
    const char* expected = std::is_same_v<T, bool>          ? "true or false"
                           : std::is_unsigned_v<T>          ? "a non-negative integer"
                           : std::is_integral_v<T>          ? "an integer"
                           : std::is_floating_point_v<T>    ? "a number"
                           : std::is_same_v<T, std::string> ? "a string"
                                                            : "a list of integers";
    fail(what, ": \"", key, "\" must be ", expected, ", got ", v.dump());
  }
  field = v.get<T>();
}
}  // namespace detail

}  // namespace minidl::models
