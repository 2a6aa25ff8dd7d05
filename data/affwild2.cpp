// The Aff-Wild2 (ABAW VA track) reader: annotation files, optional frame time stamps, audio and frame
// folders, checked line by line so that a bad file is reported where it is bad rather than training on it.
#include "data/affwild2.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "autograd/error.h"

namespace minidl::data {

namespace fs = std::filesystem;
using detail::parse_real;
using detail::quoted;
using detail::split_lines;
using detail::trim;

namespace {

// ABAW values are in [-1, 1]; exactly -5 marks a frame nobody annotated. Anything else (1.7, -5.5, -4.999)
// is a corrupt file, not a marker, so it is rejected rather than guessed at.
bool valid_abaw_value(double v) { return v == static_cast<double>(kNotAnnotated) || (v >= -1.0 && v <= 1.0); }

// The frame start times of a `<base>_video_ts.txt` (mkvextract timestamps_v2: one header line, then one
// time in ms per frame).
std::vector<double> parse_timestamps(const std::string& text, const std::string& name) {
  const std::vector<std::string_view> lines = split_lines(text);
  if (lines.empty()) fail(name, ":1: empty file, expected a header line then one time in ms per frame");
  // A file without its header would still parse, one frame short; a header that is a number means just that.
  double ignored = 0;
  if (parse_real(lines[0], ignored))
    fail(name, ":1: expected a header line such as '# timestamp format v2', got the number ", quoted(lines[0]));
  std::vector<double> times;
  times.reserve(lines.size() - 1);
  for (size_t i = 1; i < lines.size(); ++i) {
    double t = 0;
    if (!parse_real(lines[i], t)) fail(name, ":", i + 1, ": expected a time in ms, got ", quoted(lines[i]));
    if (!times.empty() && t < times.back())
      fail(name, ":", i + 1, ": time ", t, " ms is before the previous frame's ", times.back(),
           " ms (time stamps must not decrease)");
    times.push_back(t);
  }
  return times;
}

struct VideoFiles {
  std::string name;             // video name, the annotation file's stem
  std::string annotation_path;  // <root>/<annotations_dir>/<split>/<name>.txt
};

// One video. Every problem is a minidl::Error naming the file; the caller decides whether it is fatal.
VideoRecord read_video(const AffWild2Layout& layout, const VideoFiles& files) {
  const fs::path root(layout.root);
  VideoRecord v;
  v.name = files.name;
  v.fps = layout.fps;
  parse_abaw_annotations(detail::read_text_file(files.annotation_path), files.annotation_path, v.valence, v.arousal);

  const std::string base = audio_base_name(v.name);
  const std::string ts_path = (root / layout.timestamps_dir / (base + "_video_ts.txt")).string();
  std::error_code ec;
  if (fs::exists(ts_path, ec)) {
    v.frame_time_ms = parse_timestamps(detail::read_text_file(ts_path), ts_path);
    const size_t frames = v.frame_time_ms.size();
    if (v.valence.size() > frames)
      fail(files.annotation_path, ":", frames + 2, ": ", v.valence.size(), " annotation lines, but ", ts_path,
           " has only ", frames, " frames");
    // The annotators may stop before the video does; those frames are there, just not annotated.
    v.valence.resize(frames, kNotAnnotated);
    v.arousal.resize(frames, kNotAnnotated);
  }
  if (v.num_frames() == 0)
    fail(files.annotation_path, ":2: no frames (no annotation lines after the header and no time stamps file)");

  // Only existence is checked here: decoding tens of gigabytes of audio belongs to the loader, per clip.
  v.wav_path = (root / layout.audio_dir / (base + ".wav")).string();
  if (!fs::is_regular_file(v.wav_path, ec)) fail(v.wav_path, ": audio file of video '", v.name, "' not found");

  // A missing folder (as opposed to missing frames in it) is a wrong frames_dir or an incomplete copy:
  // reading on would train on blank images without a word.
  v.frames_dir = (root / layout.frames_dir / v.name).string();
  v.has_image = detail::scan_frame_images(v.frames_dir, v.frame_pattern, v.num_frames());
  return v;
}

}  // namespace

VideoRecord read_video_folder(const std::string& frames_dir, const std::string& wav_path, double fps,
                              const std::string& timestamps_path) {
  MINIDL_CHECK(std::isfinite(fps) && fps > 0, "read_video_folder: fps must be positive, got ", fps);
  std::error_code ec;
  MINIDL_CHECK(fs::is_directory(frames_dir, ec), "read_video_folder: the frames folder ", frames_dir,
               " does not exist");
  MINIDL_CHECK(wav_path.empty() || fs::is_regular_file(wav_path, ec), "read_video_folder: the audio file ", wav_path,
               " does not exist");
  VideoRecord v;
  v.name = fs::path(frames_dir).lexically_normal().filename().string();
  if (v.name.empty()) v.name = fs::path(frames_dir).lexically_normal().parent_path().filename().string();
  v.frames_dir = frames_dir;
  v.wav_path = wav_path;
  v.fps = fps;
  // The frame count is the highest frame number among files named as the pattern names them (00001.jpg,
  // ..., 123456.jpg); a 1.jpg or 000001.jpg is not a frame the loader would read, so it does not count.
  int64_t n = 0;
  for (const auto& e : fs::directory_iterator(frames_dir, ec)) {
    const std::string stem = e.path().stem().string();
    if (e.path().extension() == ".jpg" && !stem.empty() && stem.size() <= 9 &&
        stem.find_first_not_of("0123456789") == std::string::npos) {
      const int64_t f = std::stoll(stem);
      if (f > 0 && fs::path(v.frame_path(f)).filename() == e.path().filename()) n = std::max(n, f);
    }
  }
  const bool any_named = n > 0;
  if (!timestamps_path.empty()) {
    v.frame_time_ms = parse_timestamps(detail::read_text_file(timestamps_path), timestamps_path);
    n = static_cast<int64_t>(v.frame_time_ms.size());
  }
  MINIDL_CHECK(n > 0, "read_video_folder: ",
               timestamps_path.empty() ? frames_dir + " holds no frames named like 00001.jpg"
                                       : "the timestamps file " + timestamps_path + " lists no frames");
  v.valence.assign(static_cast<size_t>(n), kNotAnnotated);
  v.arousal.assign(static_cast<size_t>(n), kNotAnnotated);
  v.has_image = detail::scan_frame_images(v.frames_dir, v.frame_pattern, n);
  MINIDL_CHECK(any_named && std::find(v.has_image.begin(), v.has_image.end(), 1) != v.has_image.end(),
               "read_video_folder: ", frames_dir, " holds none of the ", n, " frames named like 00001.jpg");
  return v;
}

std::string audio_base_name(const std::string& video) {
  for (const std::string_view suffix : {std::string_view("_left"), std::string_view("_right")})
    if (video.size() > suffix.size() && video.ends_with(suffix)) return video.substr(0, video.size() - suffix.size());
  return video;
}

void parse_abaw_annotations(const std::string& text, const std::string& name, std::vector<float>& valence,
                            std::vector<float>& arousal) {
  valence.clear();
  arousal.clear();
  const std::vector<std::string_view> lines = split_lines(text);
  if (lines.empty()) fail(name, ":1: empty file, expected the header 'valence,arousal'");
  const std::string_view header = lines[0];
  const size_t hc = header.find(',');
  if (hc == std::string_view::npos || trim(header.substr(0, hc)) != "valence" ||
      trim(header.substr(hc + 1)) != "arousal")
    fail(name, ":1: expected the header 'valence,arousal', got ", quoted(header));

  valence.reserve(lines.size() - 1);
  arousal.reserve(lines.size() - 1);
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    const size_t comma = line.find(',');
    const std::string_view vs = comma == std::string_view::npos ? line : line.substr(0, comma);
    const std::string_view as = comma == std::string_view::npos ? std::string_view() : line.substr(comma + 1);
    double v = 0, a = 0;
    if (comma == std::string_view::npos || !parse_real(vs, v) || !parse_real(as, a))
      fail(name, ":", i + 1, ": expected two numbers 'valence,arousal', got ", quoted(line));
    // The text, not the parsed number, goes into the message: -4.9999999 would print as -5.
    if (!valid_abaw_value(v))
      fail(name, ":", i + 1, ": valence ", quoted(trim(vs)), " is outside [-1, 1] and not the -5 marker");
    if (!valid_abaw_value(a))
      fail(name, ":", i + 1, ": arousal ", quoted(trim(as)), " is outside [-1, 1] and not the -5 marker");
    valence.push_back(static_cast<float>(v));
    arousal.push_back(static_cast<float>(a));
  }
}

Dataset read_affwild2(const AffWild2Layout& layout) {
  MINIDL_CHECK(!layout.root.empty(), "read_affwild2: AffWild2Layout.root is empty");
  MINIDL_CHECK(std::isfinite(layout.fps) && layout.fps > 0, "read_affwild2: AffWild2Layout.fps must be positive, got ",
               layout.fps);
  std::error_code ec;
  if (!fs::is_directory(layout.root, ec)) fail("read_affwild2: root folder '", layout.root, "' not found");
  const fs::path split_dir = fs::path(layout.root) / layout.annotations_dir / layout.split;
  if (!fs::is_directory(split_dir, ec))
    fail("read_affwild2: split folder '", split_dir.string(), "' not found (annotations_dir '", layout.annotations_dir,
         "', split '", layout.split, "')");

  std::vector<VideoFiles> files;
  fs::directory_iterator it(split_dir, ec), end;
  if (ec) fail("read_affwild2: '", split_dir.string(), "' cannot be listed (", ec.message(), ")");
  for (; it != end; it.increment(ec)) {
    if (ec) fail("read_affwild2: '", split_dir.string(), "' cannot be listed (", ec.message(), ")");
    const fs::path& p = it->path();
    std::error_code type_ec;
    if (p.extension() != ".txt" || !it->is_regular_file(type_ec)) continue;
    files.push_back({p.stem().string(), p.string()});
  }
  if (files.empty()) fail("read_affwild2: no annotation files (*.txt) in '", split_dir.string(), "'");
  std::sort(files.begin(), files.end(), [](const VideoFiles& a, const VideoFiles& b) { return a.name < b.name; });

  Dataset ds;
  ds.root = layout.root;
  ds.split = layout.split;
  for (const VideoFiles& f : files) {
    try {
      ds.videos.push_back(read_video(layout, f));
    } catch (const Error& e) {
      if (!layout.skip_bad_videos) throw;
      ds.warnings.push_back(std::string(e.what()) + " (video '" + f.name + "' skipped)");
    }
  }
  return ds;
}

}  // namespace minidl::data
