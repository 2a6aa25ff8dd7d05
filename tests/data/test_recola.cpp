// The RECOLA reader (data/recola.h) on layouts written into a fresh temporary folder per test: the delay
// shift, the CSV variants, and bad input named by file and line.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "data/recola.h"
#include "tests/data/data_test_helpers.h"

using namespace minidl;
using namespace minidl::data;
using namespace data_test;
namespace fs = std::filesystem;

namespace {

// Rows as text: one value per row, in column 0, with the given precision.
std::string column(const std::vector<float>& values, const std::string& header = "") {
  std::string text = header.empty() ? "" : header + "\n";
  for (float v : values) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f\n", v);
    text += buf;
  }
  return text;
}

struct Recola {
  TempDir dir;
  RecolaLayout layout;
  Recola() { layout.root = dir.path().string(); }
  fs::path root() const { return dir.path(); }
  fs::path ratings(const std::string& dim, const std::string& subject) const {
    return root() / "ratings_gold_standard" / dim / (subject + ".csv");
  }
  void valence(const std::string& subject, const std::string& text) { write_file(ratings("valence", subject), text); }
  void arousal(const std::string& subject, const std::string& text) { write_file(ratings("arousal", subject), text); }
  void media(const std::string& subject, std::initializer_list<int> frames) {
    write_file(root() / "audio" / (subject + ".wav"), "RIFF");
    fs::create_directories(root() / "frames" / subject);
    for (int k : frames) {
      char name[32];
      std::snprintf(name, sizeof name, "%05d.jpg", k);
      write_file(root() / "frames" / subject / name, "");
    }
  }
  void subject(const std::string& name, int rows) {
    valence(name, column(std::vector<float>(static_cast<size_t>(rows), 0.25f)));
    arousal(name, column(std::vector<float>(static_cast<size_t>(rows), -0.25f)));
    media(name, {1});
  }
};

std::vector<float> ramp(int n, float start, float step) {
  std::vector<float> v;
  for (int i = 0; i < n; ++i) v.push_back(start + step * static_cast<float>(i));
  return v;
}

// What read_recola must give: value k+delay for frame k+1, the marker where that row does not exist.
std::vector<float> shifted_text_values(const std::vector<float>& rows, int delay) {
  std::vector<float> out;
  for (size_t t = 0; t < rows.size(); ++t) {
    if (t + static_cast<size_t>(delay) >= rows.size()) {
      out.push_back(kNotAnnotated);
      continue;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", rows[t + static_cast<size_t>(delay)]);
    out.push_back(std::stof(buf));
  }
  return out;
}

}  // namespace

TEST(Recola, DelaysShiftLabelsEarlierAndLeaveTheLastFramesUnannotated) {
  Recola r;
  const std::vector<float> v = ramp(10, -0.5f, 0.1f), a = ramp(10, 0.45f, -0.05f);
  r.valence("train_1", column(v, "GoldStandard"));
  r.arousal("train_1", column(a, "GoldStandard"));
  r.media("train_1", {1, 2, 5});
  r.layout.delay_valence = 2;
  r.layout.delay_arousal = 3;
  const Dataset ds = read_recola(r.layout);
  EXPECT_TRUE(ds.warnings.empty());
  EXPECT_EQ(ds.root, r.layout.root);
  ASSERT_EQ(ds.videos.size(), 1u);
  const VideoRecord& s = ds.videos[0];
  EXPECT_EQ(s.name, "train_1");
  EXPECT_EQ(s.num_frames(), 10);
  EXPECT_DOUBLE_EQ(s.fps, 25.0);
  EXPECT_TRUE(s.frame_time_ms.empty());
  EXPECT_EQ(s.wav_path, (r.root() / "audio" / "train_1.wav").string());
  EXPECT_EQ(s.frames_dir, (r.root() / "frames" / "train_1").string());
  EXPECT_EQ(s.frame_pattern, "%05d.jpg");
  EXPECT_EQ(s.has_image, (std::vector<uint8_t>{1, 1, 0, 0, 1, 0, 0, 0, 0, 0}));
  // Frame t (1-based) gets row t + delay: frame 1 valence is row 3 = -0.3, arousal row 4 = 0.3.
  EXPECT_FLOAT_EQ(s.valence[0], -0.3f);
  EXPECT_FLOAT_EQ(s.arousal[0], 0.3f);
  EXPECT_EQ(s.valence, shifted_text_values(v, 2));
  EXPECT_EQ(s.arousal, shifted_text_values(a, 3));
  EXPECT_EQ(s.valence[7], 0.4f);
  EXPECT_EQ(s.valence[8], kNotAnnotated);
  EXPECT_EQ(s.arousal[6], 0.0f);
  EXPECT_EQ(s.arousal[7], kNotAnnotated);
  EXPECT_EQ(ds.annotated_frames(), 7);  // the larger delay decides
  EXPECT_TRUE(s.annotated(7));
  EXPECT_FALSE(s.annotated(8));

  r.layout.delay_valence = 0;
  r.layout.delay_arousal = 0;
  const Dataset plain = read_recola(r.layout);
  EXPECT_EQ(plain.videos[0].valence, shifted_text_values(v, 0));
  EXPECT_EQ(plain.annotated_frames(), 10);
}

TEST(Recola, DefaultDelaysAreTheAuthors) {
  Recola r;
  r.subject("dev_1", 100);
  const Dataset ds = read_recola(r.layout);
  ASSERT_EQ(ds.videos.size(), 1u);
  const VideoRecord& s = ds.videos[0];
  EXPECT_EQ(s.valence[41], 0.25f);
  EXPECT_EQ(s.valence[42], kNotAnnotated);  // 42 + 58 = 100 rows: no such row
  EXPECT_EQ(s.arousal[31], -0.25f);
  EXPECT_EQ(s.arousal[32], kNotAnnotated);
  EXPECT_EQ(ds.annotated_frames(), 32);
}

TEST(Recola, SemicolonSeparatorValueColumnAndHeaderRow) {
  Recola r;
  r.valence("s", "Instance_name;frameTime;GoldStandard\r\ns;0.00;0.10\r\ns;0.04;0.20\r\ns;0.08;-0.30\r\n");
  r.arousal("s", "Instance_name;frameTime;GoldStandard\ns;0.00;0.5\ns;0.04;0.6\ns;0.08;0.7\n\n");
  r.media("s", {});
  r.layout.value_column = 2;
  r.layout.delay_valence = 0;
  r.layout.delay_arousal = 1;
  const Dataset ds = read_recola(r.layout);
  ASSERT_EQ(ds.videos.size(), 1u);
  EXPECT_EQ(ds.videos[0].valence, (std::vector<float>{0.1f, 0.2f, -0.3f}));
  EXPECT_EQ(ds.videos[0].arousal, (std::vector<float>{0.6f, 0.7f, kNotAnnotated}));

  // No header, ',' separator, the value in column 1: the first row is data.
  Recola c;
  c.valence("s", "0.00,0.3\n0.04,0.4\n");
  c.arousal("s", "0.00,-0.3\n0.04,-0.4\n");
  c.media("s", {1, 2});
  c.layout.value_column = 1;
  c.layout.delay_valence = c.layout.delay_arousal = 0;
  const Dataset dc = read_recola(c.layout);
  EXPECT_EQ(dc.videos[0].valence, (std::vector<float>{0.3f, 0.4f}));
  EXPECT_EQ(dc.videos[0].arousal, (std::vector<float>{-0.3f, -0.4f}));
}

TEST(Recola, SubjectsDefaultToEveryValenceFileSorted) {
  Recola r;
  r.subject("train_1", 5);
  r.subject("dev_2", 5);
  r.subject("dev_10", 5);
  r.arousal("train_9", column({0.1f}));  // no valence file: not a subject
  write_file(r.root() / "ratings_gold_standard" / "valence" / "notes.txt", "not a rating file");
  const Dataset ds = read_recola(r.layout);
  ASSERT_EQ(ds.videos.size(), 3u);
  EXPECT_EQ(ds.videos[0].name, "dev_10");
  EXPECT_EQ(ds.videos[1].name, "dev_2");
  EXPECT_EQ(ds.videos[2].name, "train_1");

  r.layout.subjects = {"train_1", "dev_2"};  // an explicit list is read in its own order
  const Dataset some = read_recola(r.layout);
  ASSERT_EQ(some.videos.size(), 2u);
  EXPECT_EQ(some.videos[0].name, "train_1");
  EXPECT_EQ(some.videos[1].name, "dev_2");

  r.layout.subjects = {"nobody"};
  expect_error([&] { read_recola(r.layout); }, {"ratings_gold_standard/valence/nobody.csv", "not found"});
}

TEST(Recola, MismatchedRowCountsAreAnErrorNamingBothFiles) {
  Recola r;
  r.valence("s", column(std::vector<float>(10, 0.1f)));
  r.arousal("s", column(std::vector<float>(9, 0.1f)));
  r.media("s", {});
  expect_error([&] { read_recola(r.layout); }, {"ratings_gold_standard/arousal/s.csv", "9 rating rows",
                                                "ratings_gold_standard/valence/s.csv", "has 10"});
}

TEST(Recola, MissingArousalFileIsAnErrorOrASkippedSubject) {
  Recola r;
  r.subject("a", 4);
  r.valence("b", column({0.1f, 0.2f}));
  r.media("b", {});
  expect_error([&] { read_recola(r.layout); }, {"ratings_gold_standard/arousal/b.csv", "not found"});
  r.layout.skip_bad_videos = true;
  const Dataset ds = read_recola(r.layout);
  ASSERT_EQ(ds.videos.size(), 1u);
  EXPECT_EQ(ds.videos[0].name, "a");
  ASSERT_EQ(ds.warnings.size(), 1u);
  EXPECT_NE(ds.warnings[0].find("arousal/b.csv"), std::string::npos) << ds.warnings[0];
}

TEST(Recola, BadRowsAreNamedByFileAndLine) {
  const std::string vfile = "ratings_gold_standard/valence/s.csv";
  const auto check = [&](const std::string& valence_text, int value_column, std::initializer_list<std::string> frags) {
    Recola r;
    r.valence("s", valence_text);
    r.arousal("s", column({0.1f, 0.1f, 0.1f}));
    r.media("s", {});
    r.layout.value_column = value_column;
    expect_error([&] { read_recola(r.layout); }, frags);
  };
  check("GoldStandard\n0.1\n0.2\nabc\n", 0, {vfile + ":4:", "expected a number in column 0, got 'abc'"});
  check("a,b,c\n1,2,0.1\n1,2\n1,2,0.3\n", 2, {vfile + ":3:", "no column 2"});
  check("0.1\n1.5\n0.2\n", 0, {vfile + ":2:", "'1.5'", "outside [-1, 1]"});
  check("0.1\n-5\n0.2\n", 0, {vfile + ":2:", "'-5'"});
  check("0.1\n\n0.2\n", 0, {vfile + ":2:"});
  check("0.1;0.2\n0.1,0.2\n0.3;0.4\n", 0, {vfile + ":2:", "'0.1,0.2'"});  // the separator switches
  check("", 0, {vfile + ":1:", "empty file"});
  check("GoldStandard\n", 0, {vfile + ":2:", "no rating rows"});
}

TEST(Recola, LayoutProblems) {
  Recola r;
  r.subject("a", 3);
  std::error_code ec;
  fs::remove(r.root() / "audio" / "a.wav", ec);
  expect_error([&] { read_recola(r.layout); }, {(r.root() / "audio" / "a.wav").string(), "not found"});
  r.media("a", {});
  fs::remove_all(r.root() / "frames" / "a", ec);
  expect_error([&] { read_recola(r.layout); }, {(r.root() / "frames" / "a").string(), "frame folder not found"});

  RecolaLayout bad = r.layout;
  bad.root = (r.root() / "missing").string();
  expect_error([&] { read_recola(bad); }, {"root folder", bad.root});
  bad = r.layout;
  bad.value_column = -1;
  expect_error([&] { read_recola(bad); }, {"RecolaLayout.value_column"});
  bad = r.layout;
  bad.fps = -25;
  expect_error([&] { read_recola(bad); }, {"RecolaLayout.fps"});
  bad = r.layout;
  bad.ratings_dir = "elsewhere";
  expect_error([&] { read_recola(bad); }, {"elsewhere/valence", "not found"});
}
