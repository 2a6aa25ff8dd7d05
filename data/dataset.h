// The in-memory description of a data set, whatever layout it was read from (Aff-Wild2, RECOLA, SynthAV,
// which uses the Aff-Wild2 layout): per video, where its frames and audio are, and a valence/arousal label
// per frame. Readers fill it (affwild2.h, recola.h); windows.h and the loader consume it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace minidl::data {

// The ABAW marker of a frame with no annotation.
inline constexpr float kNotAnnotated = -5.0f;

struct VideoRecord {
  std::string name;                        // e.g. "118-30-640x480", "10-60-1280x720_left"
  std::string frames_dir;                  // folder of the frame images
  std::string frame_pattern = "%05d.jpg";  // printf pattern of frame k's file name (k is 1-based)
  std::string wav_path;                    // "" when the video has no audio file
  double fps = 30.0;                       // frame rate, used where frame_time_ms is empty
  std::vector<double> frame_time_ms;       // optional: start time of frame k at index k - 1
  std::vector<float> valence, arousal;     // one per frame; kNotAnnotated where missing
  std::vector<uint8_t> has_image;          // one per frame: 1 where the image file exists

  int64_t num_frames() const { return static_cast<int64_t>(valence.size()); }
  bool annotated(int64_t frame) const;     // 1-based; false outside [1, num_frames]
  bool image_exists(int64_t frame) const;  // 1-based; false outside [1, num_frames]
  std::string frame_path(int64_t frame) const;
  // Start of frame k in seconds (from frame_time_ms when present, else (k - 1) / fps); frames after the
  // last continue at the last frame interval, so the end of the last frame is frame_start_s(n + 1).
  double frame_start_s(int64_t frame) const;
};

struct Dataset {
  std::string root;
  std::string split;
  std::vector<VideoRecord> videos;
  // Files that were skipped because the reader was allowed to skip bad input, one line each
  // ("<path>:<line>: <what was wrong>"); empty when nothing was skipped.
  std::vector<std::string> warnings;

  int64_t annotated_frames() const;
};

// Text and folder helpers the layout readers (affwild2.cpp, recola.cpp) share so that both report bad
// input the same way; not meant for other callers.
namespace detail {
// The whole file; a minidl::Error naming it when it cannot be read.
std::string read_text_file(const std::string& path);
// The lines of a text file, line k at index k - 1, without '\n' / "\r\n"; a leading UTF-8 byte-order mark
// and trailing blank lines are dropped.
std::vector<std::string_view> split_lines(std::string_view text);
std::string_view trim(std::string_view s);
// The whole field (blanks around it allowed) as a finite number; false for anything else.
bool parse_real(std::string_view field, double& value);
// `s` for an error message: quoted, cut to 60 characters, bytes that are not printable ASCII as \xNN.
std::string quoted(std::string_view s);
// has_image of frames 1..num_frames: `dir` is listed once and a file counts when its name is exactly
// `pattern` printed with its frame number. A missing or unreadable folder is a minidl::Error naming it.
std::vector<uint8_t> scan_frame_images(const std::string& dir, const std::string& pattern, int64_t num_frames);
}  // namespace detail

}  // namespace minidl::data
