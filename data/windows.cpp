// Windows of clips and what each clip shows and hears, following the official Aff-Wild2 code's geometry
// (windows.h, MODEL.md §3).
#include "data/windows.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "autograd/error.h"

namespace minidl::data {

namespace {

int64_t block_frames(const WindowConfig& c) { return static_cast<int64_t>(c.clips) * c.clip_frames; }

// Calls fn(last) for every window of every block that reaches into a video of n frames, in order. Block b
// covers frames bS+1 .. bS+S; its windows end at bS+S-clip_frames+1 .. bS+S, so that clip i of window j is
// the j-th of the clip_frames consecutive ends of its stretch and the block's clips tile it exactly.
template <class Fn>
void for_each_window_end(int64_t n, const WindowConfig& c, Fn&& fn) {
  const int64_t s = block_frames(c);
  for (int64_t start = 0; start < n; start += s)
    for (int64_t j = 0; j < c.clip_frames; ++j) fn(start + s - c.clip_frames + 1 + j);
}

int32_t video_index(const Dataset& dataset, size_t v) {
  MINIDL_CHECK(dataset.videos.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()),
               "windows: ", dataset.videos.size(), " videos do not fit Window::video (int32)");
  return static_cast<int32_t>(v);
}

}  // namespace

void check_window_config(const WindowConfig& c) {
  MINIDL_CHECK(c.clips > 0, "WindowConfig.clips must be positive, got ", c.clips);
  MINIDL_CHECK(c.clip_frames > 0, "WindowConfig.clip_frames must be positive, got ", c.clip_frames);
  MINIDL_CHECK(c.frames_per_clip > 0, "WindowConfig.frames_per_clip must be positive, got ", c.frames_per_clip);
  MINIDL_CHECK(c.stride > 0, "WindowConfig.stride must be positive, got ", c.stride);
  MINIDL_CHECK(c.frames_per_clip <= c.clip_frames, "WindowConfig.frames_per_clip (", c.frames_per_clip,
               ") must not exceed WindowConfig.clip_frames (", c.clip_frames, ")");
}

std::vector<Window> evaluation_windows(const Dataset& dataset, const WindowConfig& config) {
  check_window_config(config);
  std::vector<Window> out;
  for (size_t v = 0; v < dataset.videos.size(); ++v) {
    const int32_t index = video_index(dataset, v);
    // Windows of the last block whose clips all end past the video are kept too: dropping them would
    // leave the frames of that block that they do cover without a prediction.
    for_each_window_end(dataset.videos[v].num_frames(), config, [&](int64_t last) { out.push_back({index, last}); });
  }
  return out;
}

std::vector<Window> training_windows(const Dataset& dataset, const WindowConfig& config) {
  check_window_config(config);
  std::vector<Window> out;
  for (size_t v = 0; v < dataset.videos.size(); ++v) {
    const int32_t index = video_index(dataset, v);
    const VideoRecord& video = dataset.videos[v];
    for_each_window_end(video.num_frames(), config, [&](int64_t last) {
      const Window w{index, last};
      // annotated() is false past the last frame, so this also drops every window that needs padding.
      for (int i = 0; i < config.clips; ++i)
        if (!video.annotated(clip_end(w, i, config))) return;
      out.push_back(w);
    });
  }
  return out;
}

int64_t clip_end(const Window& window, int clip, const WindowConfig& config) {
  MINIDL_CHECK(clip >= 0 && clip < config.clips, "clip_end: clip ", clip, " is outside [0, ", config.clips, ")");
  return window.last - static_cast<int64_t>(config.clip_frames) * (config.clips - 1 - clip);
}

std::vector<int64_t> clip_frames(const VideoRecord& video, int64_t end, const WindowConfig& config) {
  check_window_config(config);
  const int64_t lo = std::max<int64_t>(1, end - config.clip_frames + 1), hi = std::min(video.num_frames(), end);
  std::vector<int64_t> available;
  for (int64_t k = lo; k <= hi; ++k)
    if (video.image_exists(k)) available.push_back(k);
  if (available.empty()) return {};

  const int64_t m = static_cast<int64_t>(available.size()), want = config.frames_per_clip;
  // The widest spacing, up to `stride`, at which `want` frames still fit among those available.
  const int64_t stride = std::max<int64_t>(1, std::min<int64_t>(config.stride, m / want));
  std::vector<int64_t> picked;
  picked.reserve(static_cast<size_t>(want));
  for (int64_t i = 0; i < want && i < m; ++i) picked.push_back(available[static_cast<size_t>(m - 1 - i * stride)]);
  std::reverse(picked.begin(), picked.end());
  // Fewer frames than wanted: the newest one stands in for the rest, as the official loader does.
  while (static_cast<int64_t>(picked.size()) < want) picked.push_back(available.back());
  return picked;
}

AudioSpan clip_audio_span(const VideoRecord& video, int64_t end, const WindowConfig& config, int sample_rate) {
  check_window_config(config);
  MINIDL_CHECK(sample_rate > 0, "clip_audio_span: sample_rate must be positive, got ", sample_rate);
  MINIDL_CHECK(std::isfinite(video.fps) && video.fps > 0, "clip_audio_span: video '", video.name,
               "': fps must be positive, got ", video.fps);
  // The length is the nominal one even with time stamps, so every clip's log-mel image has the same width.
  const int64_t count = std::llround(config.clip_frames / video.fps * sample_rate);
  const int64_t stop = std::llround(video.frame_start_s(end + 1) * sample_rate);
  return {stop - count, count};
}

}  // namespace minidl::data
