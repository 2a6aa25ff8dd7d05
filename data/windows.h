// Cutting videos into sequences of clips (MODEL.md §3), as the official Aff-Wild2 code does.
//
// A window is L clips; clip i ends at frame e_i = last - clip_frames * (L - 1 - i), so the window spans
// the L * clip_frames frames ending at `last`. Windows are enumerated in blocks of S = L * clip_frames
// frames: block b has the clip_frames windows whose last end runs from b S + S - clip_frames + 1 to b S + S.
// Over one block every frame b S + 1 ... b S + S is the end of exactly one clip of exactly one window.
//   evaluation windows: every block that reaches into the video, so every frame gets exactly one clip
//                       (clips that end past the last frame are padding: the loader masks them);
//   training windows:   only the windows whose every clip end is an annotated frame.
// A clip samples frames_per_clip frames from the frames with an image among the clip_frames frames ending
// at e_i, newest first, every `stride` frames when all are there, closer together when fewer are (stride
// = min(stride, available / frames_per_clip), at least 1), and repeats the newest available frame when
// fewer than frames_per_clip exist.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"

namespace minidl::data {

struct WindowConfig {
  int clips = 16;           // L
  int clip_frames = 32;     // frames one clip spans
  int frames_per_clip = 8;  // frames it samples
  int stride = 4;           // their spacing when all clip_frames frames are there
};

struct Window {
  int32_t video = 0;  // index into Dataset::videos
  int64_t last = 0;   // end frame (1-based) of the last clip
};

// Checks the config (all positive, frames_per_clip <= clip_frames); errors name the field.
void check_window_config(const WindowConfig& config);

std::vector<Window> evaluation_windows(const Dataset& dataset, const WindowConfig& config);
std::vector<Window> training_windows(const Dataset& dataset, const WindowConfig& config);

// End frame of clip i of the window.
int64_t clip_end(const Window& window, int clip, const WindowConfig& config);

// The frames (1-based, oldest first, exactly frames_per_clip of them) clip `end` shows; empty when none of
// its clip_frames frames has an image.
std::vector<int64_t> clip_frames(const VideoRecord& video, int64_t end, const WindowConfig& config);

// The audio a clip hears: the `count` samples at `sample_rate` that end where frame `end` ends, count =
// round(clip_frames / fps * sample_rate). `first` may be negative (before the start of the video): those
// samples, and any past the end of the audio, are zeros.
struct AudioSpan {
  int64_t first = 0;
  int64_t count = 0;
};
AudioSpan clip_audio_span(const VideoRecord& video, int64_t end, const WindowConfig& config, int sample_rate);

}  // namespace minidl::data
