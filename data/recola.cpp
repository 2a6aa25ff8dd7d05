// The RECOLA reader: gold-standard rating CSVs per dimension, shifted by the annotation delay, with each
// subject's frame folder and wav.
#include "data/recola.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <vector>

#include "autograd/error.h"

namespace minidl::data {

namespace fs = std::filesystem;
using detail::parse_real;
using detail::quoted;
using detail::split_lines;

namespace {

std::vector<std::string_view> split_fields(std::string_view line, char sep) {
  std::vector<std::string_view> fields;
  while (true) {
    const size_t p = line.find(sep);
    fields.push_back(line.substr(0, p));
    if (p == std::string_view::npos) return fields;
    line.remove_prefix(p + 1);
  }
}

// One rating per data row, from column `column`.
std::vector<float> read_ratings(const std::string& path, int column) {
  const std::string text = detail::read_text_file(path);
  const std::vector<std::string_view> lines = split_lines(text);
  if (lines.empty()) fail(path, ":1: empty file, expected one rating per row");
  // The separator is the file's, not the row's: a row that switches separator is malformed and must show
  // up as an unparsable value, not be quietly split another way.
  const char sep = lines[0].find(';') != std::string_view::npos ? ';' : ',';
  const size_t col = static_cast<size_t>(column);

  size_t first = 0;
  {
    const std::vector<std::string_view> fields = split_fields(lines[0], sep);
    double ignored = 0;
    if (col >= fields.size() || !parse_real(fields[col], ignored)) first = 1;  // a header row
  }
  std::vector<float> values;
  values.reserve(lines.size() - first);
  for (size_t i = first; i < lines.size(); ++i) {
    const std::vector<std::string_view> fields = split_fields(lines[i], sep);
    if (col >= fields.size())
      fail(path, ":", i + 1, ": no column ", column, " (the row has ", fields.size(), " fields separated by '", sep,
           "'): ", quoted(lines[i]));
    double v = 0;
    if (!parse_real(fields[col], v))
      fail(path, ":", i + 1, ": expected a number in column ", column, ", got ", quoted(fields[col]));
    // Gold-standard ratings are means of ratings in [-1, 1]; a value outside is a wrong column or a
    // corrupt file (and -5 would be taken for the "not annotated" marker).
    if (v < -1.0 || v > 1.0)
      fail(path, ":", i + 1, ": rating ", quoted(detail::trim(fields[col])), " in column ", column,
           " is outside [-1, 1]");
    values.push_back(static_cast<float>(v));
  }
  if (values.empty()) fail(path, ":", lines.size() + 1, ": no rating rows");
  return values;
}

// labels[t] = rows[t + delay] for the frames whose shifted row exists, else not annotated.
std::vector<float> shifted(const std::vector<float>& rows, int64_t delay) {
  const int64_t n = static_cast<int64_t>(rows.size());
  std::vector<float> out(rows.size(), kNotAnnotated);
  for (int64_t t = 0; t < n; ++t)
    if (t + delay >= 0 && t + delay < n) out[static_cast<size_t>(t)] = rows[static_cast<size_t>(t + delay)];
  return out;
}

VideoRecord read_subject(const RecolaLayout& layout, const std::string& subject) {
  const fs::path root(layout.root), ratings = root / layout.ratings_dir;
  const std::string valence_path = (ratings / "valence" / (subject + ".csv")).string();
  const std::string arousal_path = (ratings / "arousal" / (subject + ".csv")).string();
  std::error_code ec;
  if (!fs::exists(valence_path, ec)) fail(valence_path, ": valence ratings of subject '", subject, "' not found");
  if (!fs::exists(arousal_path, ec)) fail(arousal_path, ": arousal ratings of subject '", subject, "' not found");
  const std::vector<float> valence = read_ratings(valence_path, layout.value_column);
  const std::vector<float> arousal = read_ratings(arousal_path, layout.value_column);
  // Both dimensions rate the same recording frame by frame; different lengths mean the files do not
  // belong together, and no alignment of them would be right.
  if (valence.size() != arousal.size())
    fail(arousal_path, ": ", arousal.size(), " rating rows, but ", valence_path, " has ", valence.size());

  VideoRecord v;
  v.name = subject;
  v.fps = layout.fps;
  v.valence = shifted(valence, layout.delay_valence);
  v.arousal = shifted(arousal, layout.delay_arousal);
  v.wav_path = (root / layout.audio_dir / (subject + ".wav")).string();
  if (!fs::is_regular_file(v.wav_path, ec)) fail(v.wav_path, ": audio file of subject '", subject, "' not found");
  v.frames_dir = (root / layout.frames_dir / subject).string();
  v.has_image = detail::scan_frame_images(v.frames_dir, v.frame_pattern, v.num_frames());
  return v;
}

}  // namespace

Dataset read_recola(const RecolaLayout& layout) {
  MINIDL_CHECK(!layout.root.empty(), "read_recola: RecolaLayout.root is empty");
  MINIDL_CHECK(std::isfinite(layout.fps) && layout.fps > 0, "read_recola: RecolaLayout.fps must be positive, got ",
               layout.fps);
  MINIDL_CHECK(layout.value_column >= 0, "read_recola: RecolaLayout.value_column must be >= 0, got ",
               layout.value_column);
  std::error_code ec;
  if (!fs::is_directory(layout.root, ec)) fail("read_recola: root folder '", layout.root, "' not found");

  std::vector<std::string> subjects = layout.subjects;
  if (subjects.empty()) {
    const fs::path dir = fs::path(layout.root) / layout.ratings_dir / "valence";
    if (!fs::is_directory(dir, ec)) fail("read_recola: valence ratings folder '", dir.string(), "' not found");
    fs::directory_iterator it(dir, ec), end;
    if (ec) fail("read_recola: '", dir.string(), "' cannot be listed (", ec.message(), ")");
    for (; it != end; it.increment(ec)) {
      if (ec) fail("read_recola: '", dir.string(), "' cannot be listed (", ec.message(), ")");
      std::error_code type_ec;
      if (it->path().extension() == ".csv" && it->is_regular_file(type_ec))
        subjects.push_back(it->path().stem().string());
    }
    if (subjects.empty()) fail("read_recola: no rating files (*.csv) in '", dir.string(), "'");
    std::sort(subjects.begin(), subjects.end());
  }

  Dataset ds;
  ds.root = layout.root;
  for (const std::string& subject : subjects) {
    try {
      ds.videos.push_back(read_subject(layout, subject));
    } catch (const Error& e) {
      if (!layout.skip_bad_videos) throw;
      ds.warnings.push_back(std::string(e.what()) + " (subject '" + subject + "' skipped)");
    }
  }
  return ds;
}

}  // namespace minidl::data
