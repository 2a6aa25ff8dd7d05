// The loader's on-disk cache of decoded inputs, one file per video and kind:
//   <dir>/<video>.frames<size>.bin   every frame of the video decoded and resized to size x size RGB,
//                                    with a presence byte per frame, read back one frame at a time
//   <dir>/<wav name>.audio<rate>.bin the wav decoded, mixed down and resampled to `rate`, as float32
// Each file starts with a header: magic, format version, the parameters it was made with and a signature
// of its sources (file sizes and modification times). An entry whose header does not match what is asked
// for — older format, other size or rate, sources changed since — is rebuilt, never misread. Files are
// written under a temporary name and renamed into place, so a crash leaves no half-written entry.
// With an empty folder name the cache is off and every call simply decodes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace minidl::data {

class ClipCache {
 public:
  // Bump when what is stored changes meaning (decoder, resizer, resampler), so old entries are rebuilt.
  static constexpr uint32_t kFormatVersion = 1;

  explicit ClipCache(std::string dir);

  bool enabled() const { return !dir_.empty(); }
  int64_t hits() const { return hits_.load(); }

  // The track of `wav_path` at `rate`; `decode` makes it when there is no valid entry.
  std::shared_ptr<const std::vector<float>> audio(const std::string& wav_path, int rate,
                                                  const std::function<std::vector<float>()>& decode);

  // Frame `frame` (1-based) of the video as size * size * 3 bytes, or empty when it has no usable image.
  // `decode(f)` decodes frame f (empty for a bad file that is to be tolerated; it throws otherwise); with
  // the cache on, the first request for a video decodes all of its frames into the cache file.
  std::vector<uint8_t> frame(const VideoRecord& video, int64_t frame, int size,
                             const std::function<std::vector<uint8_t>(int64_t)>& decode);

 private:
  std::mutex& lock_for(const std::string& path);
  std::string dir_;
  std::atomic<int64_t> hits_{0};
  std::mutex locks_mutex_;
  std::map<std::string, std::unique_ptr<std::mutex>> locks_;  // one per cache file being made or checked
  std::map<std::string, bool> checked_;                       // cache files known valid in this process
};

}  // namespace minidl::data
