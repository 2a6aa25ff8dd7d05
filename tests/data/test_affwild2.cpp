// The Aff-Wild2 reader (data/affwild2.h) and the VideoRecord helpers (data/dataset.h), on layouts written
// into a fresh temporary folder per test: every field of what is read, and every kind of bad input named
// by file and line.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "autograd/error.h"
#include "data/affwild2.h"
#include "data/dataset.h"
#include "tests/data/data_test_helpers.h"

using namespace minidl;
using namespace minidl::data;
using namespace data_test;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// An Aff-Wild2 layout under construction.
struct Layout {
  TempDir dir;
  AffWild2Layout layout;
  Layout() { layout.root = dir.path().string(); }
  fs::path root() const { return dir.path(); }
  fs::path annotation_path(const std::string& video, const std::string& split = "Train_Set") const {
    return root() / "VA_Estimation_Challenge" / split / (video + ".txt");
  }
  void annotation(const std::string& video, const std::string& text, const std::string& split = "Train_Set") {
    write_file(annotation_path(video, split), text);
  }
  fs::path timestamps_path(const std::string& base) const { return root() / "timestamps" / (base + "_video_ts.txt"); }
  void timestamps(const std::string& base, const std::string& text) { write_file(timestamps_path(base), text); }
  fs::path wav_path(const std::string& base) const { return root() / "audio" / (base + ".wav"); }
  void wav(const std::string& base) { write_file(wav_path(base), "RIFF not decoded here"); }
  fs::path frames_path(const std::string& video) const { return root() / "cropped_aligned" / video; }
  void frames(const std::string& video, std::initializer_list<int> present) {
    fs::create_directories(frames_path(video));
    for (int k : present) {
      char name[32];
      std::snprintf(name, sizeof name, "%05d.jpg", k);
      write_file(frames_path(video) / name, "");
    }
  }
  // One well-formed video of `lines` annotated frames, all images there.
  void good_video(const std::string& video, int lines = 3) {
    std::string text = "valence,arousal\n";
    for (int i = 0; i < lines; ++i) text += "0.1,0.2\n";
    annotation(video, text);
    wav(audio_base_name(video));
    frames(video, {1, 2, 3});
  }
};

std::string rel(const std::string& video, const std::string& split = "Train_Set") {
  return "VA_Estimation_Challenge/" + split + "/" + video + ".txt";
}

}  // namespace

// ---- the reader on a good layout --------------------------------------------------------------------------

TEST(AffWild2, ReadsLeftRightPairWithSharedWavTimestampsMissingFramesAndMarkers) {
  Layout t;
  t.layout.fps = 29.97;
  const std::string left = "10-60-1280x720_left", right = "10-60-1280x720_right", solo = "118-30-640x480";
  t.annotation(left, "valence,arousal\n0.1,0.2\n-5,-5\n0.3,-0.4\n1,-1\n-0.5,0.5\n");
  t.annotation(right, "valence,arousal\n0.25,0.75\n-1,1\n-5,-5\n");
  t.annotation(solo, "valence,arousal\n0,0\n0.5,-0.5\n-5,-5\n0.9,0.1\n");
  t.annotation("other-split-video", "valence,arousal\n0,0\n", "Validation_Set");
  t.wav("other-split-video");
  t.frames("other-split-video", {1});
  write_file(t.root() / "VA_Estimation_Challenge" / "Train_Set" / "readme.md", "not an annotation file");
  fs::create_directories(t.root() / "VA_Estimation_Challenge" / "Train_Set" / "old.txt");  // a folder, ignored
  // Six frames for both halves of the two-person video: more than either annotation file has lines.
  t.timestamps("10-60-1280x720", "# timestamp format v2\n0\n33.4\n66.7\n100\n133.4\n166.8\n");
  t.wav("10-60-1280x720");
  t.wav(solo);
  t.wav("unused");
  t.frames(left, {1, 2, 4, 6});
  // Names that look like frames 3, 5 and 7 but are not what "%05d.jpg" prints for a frame of this video.
  write_file(t.frames_path(left) / "0003.jpg", "");
  write_file(t.frames_path(left) / "000005.jpg", "");
  write_file(t.frames_path(left) / "00007.jpg", "");
  write_file(t.frames_path(left) / "notes.txt", "");
  fs::create_directories(t.frames_path(left) / "00005.jpg");  // a folder is not an image
  t.frames(right, {1, 2, 3, 4, 5, 6});
  t.frames(solo, {});

  const Dataset ds = read_affwild2(t.layout);
  EXPECT_EQ(ds.root, t.layout.root);
  EXPECT_EQ(ds.split, "Train_Set");
  EXPECT_TRUE(ds.warnings.empty());
  ASSERT_EQ(ds.videos.size(), 3u);

  const VideoRecord& l = ds.videos[0];
  EXPECT_EQ(l.name, left);
  EXPECT_EQ(l.frames_dir, (t.root() / "cropped_aligned" / left).string());
  EXPECT_EQ(l.frame_pattern, "%05d.jpg");
  EXPECT_EQ(l.wav_path, (t.root() / "audio" / "10-60-1280x720.wav").string());
  EXPECT_DOUBLE_EQ(l.fps, 29.97);
  EXPECT_EQ(l.frame_time_ms, (std::vector<double>{0, 33.4, 66.7, 100, 133.4, 166.8}));
  EXPECT_EQ(l.valence, (std::vector<float>{0.1f, -5, 0.3f, 1, -0.5f, -5}));
  EXPECT_EQ(l.arousal, (std::vector<float>{0.2f, -5, -0.4f, -1, 0.5f, -5}));
  EXPECT_EQ(l.has_image, (std::vector<uint8_t>{1, 1, 0, 1, 0, 1}));
  EXPECT_EQ(l.num_frames(), 6);
  EXPECT_EQ(l.frame_path(4), (t.frames_path(left) / "00004.jpg").string());
  EXPECT_TRUE(fs::exists(l.frame_path(4)));

  const VideoRecord& r = ds.videos[1];
  EXPECT_EQ(r.name, right);
  EXPECT_EQ(r.frames_dir, (t.root() / "cropped_aligned" / right).string());
  EXPECT_EQ(r.frame_pattern, "%05d.jpg");
  EXPECT_EQ(r.wav_path, l.wav_path);
  EXPECT_DOUBLE_EQ(r.fps, 29.97);
  EXPECT_EQ(r.frame_time_ms, l.frame_time_ms);
  EXPECT_EQ(r.valence, (std::vector<float>{0.25f, -1, -5, -5, -5, -5}));
  EXPECT_EQ(r.arousal, (std::vector<float>{0.75f, 1, -5, -5, -5, -5}));
  EXPECT_EQ(r.has_image, (std::vector<uint8_t>(6, 1)));

  const VideoRecord& s = ds.videos[2];
  EXPECT_EQ(s.name, solo);
  EXPECT_EQ(s.frames_dir, (t.root() / "cropped_aligned" / solo).string());
  EXPECT_EQ(s.wav_path, (t.root() / "audio" / (solo + ".wav")).string());
  EXPECT_DOUBLE_EQ(s.fps, 29.97);
  EXPECT_TRUE(s.frame_time_ms.empty());
  EXPECT_EQ(s.valence, (std::vector<float>{0, 0.5f, -5, 0.9f}));
  EXPECT_EQ(s.arousal, (std::vector<float>{0, -0.5f, -5, 0.1f}));
  EXPECT_EQ(s.has_image, (std::vector<uint8_t>(4, 0)));

  // Annotated: left 1, 3, 4, 5; right 1, 2; solo 1, 2, 4.
  EXPECT_EQ(ds.annotated_frames(), 9);
  EXPECT_NEAR(l.frame_start_s(2), 0.0334, 1e-12);
  EXPECT_NEAR(l.frame_start_s(7), 0.2002, 1e-12);  // one step of the last interval (33.4 ms) past the end
  EXPECT_NEAR(s.frame_start_s(5), 4 / 29.97, 1e-12);

  t.layout.split = "Validation_Set";
  const Dataset val = read_affwild2(t.layout);
  ASSERT_EQ(val.videos.size(), 1u);
  EXPECT_EQ(val.videos[0].name, "other-split-video");
  EXPECT_EQ(val.split, "Validation_Set");
}

TEST(AffWild2, AudioBaseName) {
  EXPECT_EQ(audio_base_name("10-60-1280x720_left"), "10-60-1280x720");
  EXPECT_EQ(audio_base_name("10-60-1280x720_right"), "10-60-1280x720");
  EXPECT_EQ(audio_base_name("118-30-640x480"), "118-30-640x480");
  EXPECT_EQ(audio_base_name("a_left_right"), "a_left");
  EXPECT_EQ(audio_base_name("_left"), "_left");
  EXPECT_EQ(audio_base_name("x_Left"), "x_Left");
  EXPECT_EQ(audio_base_name("x_left2"), "x_left2");
}

// ---- parse_abaw_annotations -----------------------------------------------------------------------------

TEST(AffWild2, ParserToleratesBlanksCrlfBomAndTrailingEmptyLines) {
  std::vector<float> v{9, 9, 9}, a{9};
  parse_abaw_annotations("\xEF\xBB\xBF valence , arousal \r\n0.5, -0.25\r\n +1 ,-5\r\n-5.0,-1e0\r\n\r\n  \n", "f.txt",
                         v, a);
  EXPECT_EQ(v, (std::vector<float>{0.5f, 1, -5}));
  EXPECT_EQ(a, (std::vector<float>{-0.25f, -5, -1}));
  parse_abaw_annotations("valence,arousal", "f.txt", v, a);  // a header alone: no frames, and no error here
  EXPECT_TRUE(v.empty());
  EXPECT_TRUE(a.empty());
}

TEST(AffWild2, ParserNamesFileAndLineOfEveryBadInput) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"", {"f.txt:1:", "empty file"}},
      {"\n \r\n", {"f.txt:1:", "empty file"}},
      {"valence;arousal\n0,0\n", {"f.txt:1:", "expected the header 'valence,arousal'", "'valence;arousal'"}},
      {"arousal,valence\n0,0\n", {"f.txt:1:", "'arousal,valence'"}},
      {"valence,arousal,extra\n", {"f.txt:1:"}},
      {"Valence,Arousal\n", {"f.txt:1:"}},
      {"0.1,0.2\n0.3,0.4\n", {"f.txt:1:", "'0.1,0.2'"}},
      {"valence,arousal\n0.3\n", {"f.txt:2:", "expected two numbers 'valence,arousal', got '0.3'"}},
      {"valence,arousal\n0.1,0.1\n0.3;x\n", {"f.txt:3:", "got '0.3;x'"}},
      {"valence,arousal\nabc,def\n", {"f.txt:2:", "'abc,def'"}},
      {"valence,arousal\n0.1 0.2\n", {"f.txt:2:"}},
      {"valence,arousal\n,0.2\n", {"f.txt:2:"}},
      {"valence,arousal\n0.1,0.2,0.3\n", {"f.txt:2:"}},
      {"valence,arousal\n0.1,0.2\n\n0.3,0.4\n", {"f.txt:3:", "got ''"}},
      {"valence,arousal\nnan,0\n", {"f.txt:2:"}},
      {"valence,arousal\n0,inf\n", {"f.txt:2:"}},
      {"valence,arousal\n0x1,0\n", {"f.txt:2:"}},
      {"valence,arousal\n1e400,0\n", {"f.txt:2:"}},
      {"valence,arousal\n0.3,1.7\n", {"f.txt:2:", "arousal '1.7' is outside [-1, 1]"}},
      {"valence,arousal\n0,0\n-1.2,0\n", {"f.txt:3:", "valence '-1.2' is outside [-1, 1]"}},
      {"valence,arousal\n-5.5,0\n", {"f.txt:2:", "valence '-5.5'"}},
      {"valence,arousal\n0,-4.9999999\n", {"f.txt:2:", "arousal '-4.9999999'"}},
      {"valence,arousal\n-5,5\n", {"f.txt:2:", "arousal '5'"}},
  };
  for (const auto& [text, fragments] : cases) {
    SCOPED_TRACE(text);
    std::vector<float> v, a;
    const std::vector<std::string>& f = fragments;
    try {
      parse_abaw_annotations(text, "f.txt", v, a);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      for (const std::string& part : f) EXPECT_TRUE(contains(e.what(), part)) << e.what() << " lacks " << part;
    }
  }
}

TEST(AffWild2, ParserOnRandomBytesFailsWithAPrintableMessage) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::string bytes(2000, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
    // Half the time behind a good header and a good line, so the junk is met past line 1.
    const bool headed = trial % 2 == 1;
    if (headed) bytes = "valence,arousal\n0.1,0.2\n" + bytes;
    std::vector<float> v, a;
    try {
      parse_abaw_annotations(bytes, "junk.txt", v, a);
      ADD_FAILURE() << "random bytes accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_TRUE(contains(what, headed ? "junk.txt:3:" : "junk.txt:1:")) << what;
      for (char c : what) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "unprintable byte in " << what;
      EXPECT_LT(what.size(), 400u);  // the line is cut short, not copied whole
    }
  }
}

// ---- bad files in a layout --------------------------------------------------------------------------------

TEST(AffWild2, ReaderNamesTheBadAnnotationFileAndLine) {
  {
    Layout t;
    t.good_video("a");
    t.annotation("b", "valence,arousal\n0.1,0.2\n0.3,1.7\n");
    t.wav("b");
    t.frames("b", {1});
    expect_error([&] { read_affwild2(t.layout); }, {rel("b") + ":3:", "arousal '1.7' is outside [-1, 1]"});
  }
  {
    Layout t;
    t.annotation("empty", "");
    t.wav("empty");
    t.frames("empty", {});
    expect_error([&] { read_affwild2(t.layout); }, {rel("empty") + ":1:", "empty file"});
  }
  {
    Layout t;
    t.annotation("headeronly", "valence,arousal\n");
    t.wav("headeronly");
    t.frames("headeronly", {});
    expect_error([&] { read_affwild2(t.layout); }, {rel("headeronly") + ":2:", "no frames"});
  }
  {
    Layout t;
    std::mt19937 rng(11);
    std::string bytes(4096, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
    t.annotation("junk", bytes);
    t.wav("junk");
    t.frames("junk", {});
    expect_error([&] { read_affwild2(t.layout); }, {rel("junk") + ":1:", "expected the header"});
  }
}

TEST(AffWild2, CrlfAnnotationFileIsRead) {
  Layout t;
  t.annotation("crlf", "valence,arousal\r\n0.1,0.2\r\n-5,-5\r\n0.3,0.4\r\n");
  t.wav("crlf");
  t.frames("crlf", {2});
  const Dataset ds = read_affwild2(t.layout);
  ASSERT_EQ(ds.videos.size(), 1u);
  EXPECT_EQ(ds.videos[0].valence, (std::vector<float>{0.1f, -5, 0.3f}));
  EXPECT_EQ(ds.videos[0].arousal, (std::vector<float>{0.2f, -5, 0.4f}));
  EXPECT_EQ(ds.videos[0].has_image, (std::vector<uint8_t>{0, 1, 0}));
}

TEST(AffWild2, TimestampProblemsNameTheirFiles) {
  const std::string ann = rel("v");
  const std::string ts = "timestamps/v_video_ts.txt";
  const auto with_timestamps = [&](const std::string& ann_text, const std::string& ts_text) {
    auto t = std::make_unique<Layout>();
    t->annotation("v", ann_text);
    t->timestamps("v", ts_text);
    t->wav("v");
    t->frames("v", {1, 2});
    return t;
  };
  const std::string five = "valence,arousal\n0,0\n0,0\n0,0\n0,0\n0,0\n";
  {  // more annotation lines than frames: both files named, and the first line without a frame
    auto t = with_timestamps(five, "# timestamp format v2\n0\n40\n80\n");
    expect_error([&] { read_affwild2(t->layout); }, {ann + ":5:", ts, "5 annotation lines", "only 3 frames"});
  }
  {
    auto t = with_timestamps(five, "# timestamp format v2\n0\n40\nabc\n80\n");
    expect_error([&] { read_affwild2(t->layout); }, {ts + ":4:", "expected a time in ms, got 'abc'"});
  }
  {
    auto t = with_timestamps(five, "# timestamp format v2\n0\n40\n30\n");
    expect_error([&] { read_affwild2(t->layout); }, {ts + ":4:", "must not decrease"});
  }
  {  // no header: the first time would be taken for it and every frame shifted by one
    auto t = with_timestamps(five, "0\n40\n80\n120\n160\n200\n");
    expect_error([&] { read_affwild2(t->layout); }, {ts + ":1:", "header"});
  }
  {
    auto t = with_timestamps(five, "");
    expect_error([&] { read_affwild2(t->layout); }, {ts + ":1:", "empty file"});
  }
  {  // equal times are allowed (non-decreasing), and frames beyond the annotations are not annotated
    auto t = with_timestamps("valence,arousal\n0.5,0.5\n", "# timestamp format v2\n0\n40\n40\n");
    const Dataset ds = read_affwild2(t->layout);
    ASSERT_EQ(ds.videos.size(), 1u);
    EXPECT_EQ(ds.videos[0].valence, (std::vector<float>{0.5f, -5, -5}));
    EXPECT_EQ(ds.videos[0].has_image, (std::vector<uint8_t>{1, 1, 0}));
  }
  {  // time stamps define the frames of a video whose annotation file has only its header
    auto t = with_timestamps("valence,arousal\n", "# timestamp format v2\n0\n40\n");
    const Dataset ds = read_affwild2(t->layout);
    ASSERT_EQ(ds.videos.size(), 1u);
    EXPECT_EQ(ds.videos[0].num_frames(), 2);
    EXPECT_EQ(ds.annotated_frames(), 0);
  }
}

TEST(AffWild2, MissingWavIsAnErrorOrASkippedVideoWithAWarning) {
  Layout t;
  t.good_video("a");
  t.annotation("b", "valence,arousal\n0,0\n");
  t.frames("b", {1});
  t.good_video("c");
  const std::string wav = (t.root() / "audio" / "b.wav").string();
  expect_error([&] { read_affwild2(t.layout); }, {wav, "audio file of video 'b' not found"});

  t.layout.skip_bad_videos = true;
  const Dataset ds = read_affwild2(t.layout);
  ASSERT_EQ(ds.videos.size(), 2u);
  EXPECT_EQ(ds.videos[0].name, "a");
  EXPECT_EQ(ds.videos[1].name, "c");
  ASSERT_EQ(ds.warnings.size(), 1u);
  EXPECT_TRUE(contains(ds.warnings[0], wav)) << ds.warnings[0];
  EXPECT_TRUE(contains(ds.warnings[0], "'b' skipped")) << ds.warnings[0];
}

TEST(AffWild2, SkipBadVideosRecordsFileAndLineOfMalformedFiles) {
  Layout t;
  t.good_video("a");
  t.annotation("b", "valence,arousal\n0,0\n0.3;x\n");
  t.wav("b");
  t.frames("b", {});
  t.good_video("c");
  t.timestamps("c", "# v2\n0\n40\n20\n");
  t.layout.skip_bad_videos = true;
  const Dataset ds = read_affwild2(t.layout);
  ASSERT_EQ(ds.videos.size(), 1u);
  EXPECT_EQ(ds.videos[0].name, "a");
  ASSERT_EQ(ds.warnings.size(), 2u);
  EXPECT_TRUE(contains(ds.warnings[0], rel("b") + ":3:")) << ds.warnings[0];
  EXPECT_TRUE(contains(ds.warnings[1], "timestamps/c_video_ts.txt:4:")) << ds.warnings[1];
}

TEST(AffWild2, MissingFrameFolderIsAnErrorOrASkippedVideo) {
  Layout t;
  t.good_video("a");
  t.annotation("b", "valence,arousal\n0,0\n");
  t.wav("b");
  const std::string dir = t.frames_path("b").string();
  expect_error([&] { read_affwild2(t.layout); }, {dir, "frame folder not found"});
  t.layout.skip_bad_videos = true;
  const Dataset ds = read_affwild2(t.layout);
  ASSERT_EQ(ds.videos.size(), 1u);
  ASSERT_EQ(ds.warnings.size(), 1u);
  EXPECT_TRUE(contains(ds.warnings[0], dir));
}

TEST(AffWild2, MissingRootSplitOrAnnotationsAreErrorsEvenWhenSkipping) {
  Layout t;
  t.good_video("a");
  t.layout.skip_bad_videos = true;
  AffWild2Layout missing_root = t.layout;
  missing_root.root = (t.root() / "nowhere").string();
  expect_error([&] { read_affwild2(missing_root); }, {"root folder", missing_root.root, "not found"});
  AffWild2Layout missing_split = t.layout;
  missing_split.split = "Validation_Set";
  expect_error([&] { read_affwild2(missing_split); },
               {"split folder", (t.root() / "VA_Estimation_Challenge" / "Validation_Set").string(), "not found"});
  fs::create_directories(t.root() / "VA_Estimation_Challenge" / "Test_Set");
  AffWild2Layout empty_split = t.layout;
  empty_split.split = "Test_Set";
  expect_error([&] { read_affwild2(empty_split); }, {"no annotation files", "Test_Set"});
  AffWild2Layout no_root = t.layout;
  no_root.root = "";
  expect_error([&] { read_affwild2(no_root); }, {"AffWild2Layout.root"});
  AffWild2Layout bad_fps = t.layout;
  bad_fps.fps = 0;
  expect_error([&] { read_affwild2(bad_fps); }, {"AffWild2Layout.fps"});
}

// ---- VideoRecord helpers -----------------------------------------------------------------------------------

TEST(VideoRecord, AnnotatedAndImageExistsAreFalseOutsideTheVideo) {
  VideoRecord v;
  v.valence = {0.1f, -5, 0.3f, 0.4f};
  v.arousal = {0.1f, 0.2f, -5, 0.4f};
  v.has_image = {1, 0, 1, 1};
  EXPECT_EQ(v.num_frames(), 4);
  EXPECT_TRUE(v.annotated(1));
  EXPECT_FALSE(v.annotated(2));  // valence missing
  EXPECT_FALSE(v.annotated(3));  // arousal missing
  EXPECT_TRUE(v.annotated(4));
  for (int64_t k : {-1, 0, 5, 1000}) {
    EXPECT_FALSE(v.annotated(k)) << k;
    EXPECT_FALSE(v.image_exists(k)) << k;
  }
  EXPECT_TRUE(v.image_exists(1));
  EXPECT_FALSE(v.image_exists(2));
  EXPECT_TRUE(v.image_exists(4));
  Dataset ds;
  ds.videos = {v, v};
  EXPECT_EQ(ds.annotated_frames(), 4);
}

TEST(VideoRecord, FramePathPrintsThePatternAndRejectsUnsafeOnes) {
  VideoRecord v;
  v.frames_dir = "/data/frames/vid";
  EXPECT_EQ(v.frame_path(7), "/data/frames/vid/00007.jpg");
  EXPECT_EQ(v.frame_path(123456), "/data/frames/vid/123456.jpg");
  v.frame_pattern = "img_%d.png";
  EXPECT_EQ(v.frame_path(7), "/data/frames/vid/img_7.png");
  v.frame_pattern = "%%_%03i";
  EXPECT_EQ(v.frame_path(7), "/data/frames/vid/%_007");
  for (const char* bad : {"%s.jpg", "%05d_%05d.jpg", "frame.jpg", "%ld.jpg", "%", "%05", "%n"}) {
    v.frame_pattern = bad;
    expect_error([&] { v.frame_path(1); }, {"frame pattern", bad});
  }
  v.frame_pattern = "%05d.jpg";
  expect_error([&] { v.frame_path(0); }, {"frame 0"});
}

TEST(VideoRecord, ScanFrameImagesUsesThePattern) {
  TempDir dir;
  for (const char* name : {"img_1.png", "img_01.png", "img_3.png", "img_4.jpg", "img_9.png", "img_-2.png"})
    write_file(dir.path() / name, "");
  EXPECT_EQ(data::detail::scan_frame_images(dir.path().string(), "img_%d.png", 4), (std::vector<uint8_t>{1, 0, 1, 0}));
  expect_error([&] { data::detail::scan_frame_images((dir.path() / "none").string(), "%05d.jpg", 4); },
               {"none", "frame folder not found"});
}

TEST(VideoRecord, FrameStartFromFpsOrTimestampsWithExtrapolation) {
  VideoRecord v;
  v.valence.assign(4, 0);
  v.arousal.assign(4, 0);
  v.fps = 25;
  EXPECT_DOUBLE_EQ(v.frame_start_s(1), 0);
  EXPECT_DOUBLE_EQ(v.frame_start_s(5), 0.16);
  EXPECT_DOUBLE_EQ(v.frame_start_s(0), -0.04);
  v.frame_time_ms = {10, 50, 90, 140};
  EXPECT_DOUBLE_EQ(v.frame_start_s(1), 0.01);
  EXPECT_DOUBLE_EQ(v.frame_start_s(4), 0.14);
  EXPECT_NEAR(v.frame_start_s(5), 0.19, 1e-12);  // the last interval, 50 ms, goes on
  EXPECT_NEAR(v.frame_start_s(7), 0.29, 1e-12);
  EXPECT_NEAR(v.frame_start_s(0), -0.03, 1e-12);  // the first interval, 40 ms, before the start
  v.frame_time_ms = {0, 40, 80, 80};              // no usable last interval: the nominal rate
  EXPECT_NEAR(v.frame_start_s(5), 0.12, 1e-12);
  v.frame_time_ms = {100};
  EXPECT_NEAR(v.frame_start_s(3), 0.18, 1e-12);
  v.fps = 0;
  expect_error([&] { v.frame_start_s(1); }, {"fps"});
}
