// VideoRecord and Dataset helpers, and the text / folder helpers both layout readers share.
#include "data/dataset.h"

#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "autograd/error.h"

namespace minidl::data {

namespace fs = std::filesystem;

namespace {

// A frame pattern split around its one integer conversion. frame_pattern comes from data (a caller, a
// config file), and it is handed to snprintf as a format string, so it is checked before every use: a
// stray "%s" would otherwise read memory that is not there.
struct FramePattern {
  std::string prefix, suffix;  // literal text around the conversion, "%%" already turned into '%'
};

FramePattern parse_frame_pattern(const std::string& pattern) {
  FramePattern parts;
  bool seen = false;
  auto bad = [&](const char* why) {
    fail("frame pattern '", pattern, "': ", why, " (expected one integer conversion such as %05d)");
  };
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%') {
      (seen ? parts.suffix : parts.prefix) += pattern[i];
      continue;
    }
    if (i + 1 < pattern.size() && pattern[i + 1] == '%') {
      (seen ? parts.suffix : parts.prefix) += '%';
      ++i;
      continue;
    }
    if (seen) bad("more than one conversion");
    size_t j = i + 1;
    while (j < pattern.size() && std::string_view("-+ #0").find(pattern[j]) != std::string_view::npos) ++j;
    while (j < pattern.size() && pattern[j] >= '0' && pattern[j] <= '9') ++j;
    if (j < pattern.size() && pattern[j] == '.') {
      ++j;
      while (j < pattern.size() && pattern[j] >= '0' && pattern[j] <= '9') ++j;
    }
    if (j >= pattern.size() || (pattern[j] != 'd' && pattern[j] != 'i')) bad("a conversion other than %d / %i");
    seen = true;
    i = j;
  }
  if (!seen) bad("no conversion");
  return parts;
}

// Only called with a pattern parse_frame_pattern accepted, whose one conversion takes an int.
std::string format_frame_name(const std::string& pattern, int64_t frame) {
  MINIDL_CHECK(frame >= 1 && frame <= INT_MAX, "frame_path: frame ", frame, " is outside [1, ", INT_MAX, "]");
  const int k = static_cast<int>(frame);
  const int size = std::snprintf(nullptr, 0, pattern.c_str(), k);
  MINIDL_CHECK(size >= 0, "frame pattern '", pattern, "': cannot be printed");
  std::string name(static_cast<size_t>(size) + 1, '\0');
  std::snprintf(name.data(), name.size(), pattern.c_str(), k);
  name.resize(static_cast<size_t>(size));
  return name;
}

}  // namespace

bool VideoRecord::annotated(int64_t frame) const {
  if (frame < 1 || frame > num_frames() || frame > static_cast<int64_t>(arousal.size())) return false;
  // A clip's label needs both dimensions, so a frame missing either one does not count.
  return valence[frame - 1] != kNotAnnotated && arousal[frame - 1] != kNotAnnotated;
}

bool VideoRecord::image_exists(int64_t frame) const {
  if (frame < 1 || frame > num_frames() || frame > static_cast<int64_t>(has_image.size())) return false;
  return has_image[frame - 1] != 0;
}

std::string VideoRecord::frame_path(int64_t frame) const {
  parse_frame_pattern(frame_pattern);
  return (fs::path(frames_dir) / format_frame_name(frame_pattern, frame)).string();
}

double VideoRecord::frame_start_s(int64_t frame) const {
  MINIDL_CHECK(std::isfinite(fps) && fps > 0, "video '", name, "': fps must be positive, got ", fps);
  const int64_t n = static_cast<int64_t>(frame_time_ms.size());
  if (n == 0) return static_cast<double>(frame - 1) / fps;
  const std::vector<double>& t = frame_time_ms;
  if (frame >= 1 && frame <= n) return t[frame - 1] / 1000.0;
  // Past either end the frames continue at the interval of the nearest pair; a video of one frame, or one
  // whose end frames share a time stamp, has no usable interval there, so the nominal rate stands in.
  if (frame > n) {
    const double step = n >= 2 && t[n - 1] > t[n - 2] ? (t[n - 1] - t[n - 2]) / 1000.0 : 1.0 / fps;
    return t[n - 1] / 1000.0 + static_cast<double>(frame - n) * step;
  }
  const double step = n >= 2 && t[1] > t[0] ? (t[1] - t[0]) / 1000.0 : 1.0 / fps;
  return t[0] / 1000.0 - static_cast<double>(1 - frame) * step;
}

int64_t Dataset::annotated_frames() const {
  int64_t total = 0;
  for (const VideoRecord& v : videos)
    for (int64_t k = 1; k <= v.num_frames(); ++k) total += v.annotated(k) ? 1 : 0;
  return total;
}

namespace detail {

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) fail(path, ": is a folder, expected a text file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot be opened");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(path, ": read error");
  return text;
}

std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // Windows tools write a BOM before CSV text
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (line.ends_with('\r')) line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  while (!lines.empty() && trim(lines.back()).empty()) lines.pop_back();
  return lines;
}

bool parse_real(std::string_view field, double& value) {
  field = trim(field);
  // from_chars rejects a leading '+', which spreadsheet exports sometimes write.
  if (field.size() > 1 && field[0] == '+' && field[1] != '-' && field[1] != '+') field.remove_prefix(1);
  if (field.empty()) return false;
  double v = 0;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
  if (ec != std::errc() || end != field.data() + field.size() || !std::isfinite(v)) return false;
  value = v;
  return true;
}

std::string quoted(std::string_view s) {
  constexpr size_t kMax = 60;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    }
  }
  out += s.size() > kMax ? "'..." : "'";
  return out;
}

std::vector<uint8_t> scan_frame_images(const std::string& dir, const std::string& pattern, int64_t num_frames) {
  const FramePattern parts = parse_frame_pattern(pattern);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, ": frame folder not found");
  std::vector<uint8_t> has(static_cast<size_t>(num_frames > 0 ? num_frames : 0), 0);
  // One listing instead of one stat per frame: a video has tens of thousands of frames, and missing ones
  // (no face found) are normal, so most of those stats would only confirm absence.
  fs::directory_iterator it(dir, ec), end;
  if (ec) fail(dir, ": frame folder cannot be listed (", ec.message(), ")");
  for (; it != end; it.increment(ec)) {
    if (ec) fail(dir, ": frame folder cannot be listed (", ec.message(), ")");
    const std::string name = it->path().filename().string();
    if (name.size() <= parts.prefix.size() + parts.suffix.size() || !name.starts_with(parts.prefix) ||
        !name.ends_with(parts.suffix))
      continue;
    const std::string_view digits =
        std::string_view(name).substr(parts.prefix.size(), name.size() - parts.prefix.size() - parts.suffix.size());
    int64_t k = 0;
    const auto [p, err] = std::from_chars(digits.data(), digits.data() + digits.size(), k);
    if (err != std::errc() || p != digits.data() + digits.size() || k < 1 || k > num_frames) continue;
    // "0001.jpg" or "000001.jpg" parse as frame 1 too, but frame_path would never open them.
    if (format_frame_name(pattern, k) != name) continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    has[static_cast<size_t>(k - 1)] = 1;
  }
  return has;
}

}  // namespace detail

}  // namespace minidl::data
