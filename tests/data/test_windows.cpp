// Windows of clips (data/windows.h): the official Aff-Wild2 geometry, which windows training keeps, which
// frames a clip samples, and which audio it hears.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "data/windows.h"
#include "tests/data/data_test_helpers.h"

using namespace minidl;
using namespace minidl::data;
using namespace data_test;

namespace {

VideoRecord make_video(int64_t n, double fps = 30.0) {
  VideoRecord v;
  v.name = std::to_string(n) + "-frames";
  v.fps = fps;
  v.valence.assign(static_cast<size_t>(n), 0.5f);
  v.arousal.assign(static_cast<size_t>(n), -0.5f);
  v.has_image.assign(static_cast<size_t>(n), 1);
  return v;
}

Dataset make_dataset(std::initializer_list<int64_t> lengths) {
  Dataset ds;
  for (int64_t n : lengths) ds.videos.push_back(make_video(n));
  return ds;
}

WindowConfig official() { return WindowConfig{16, 32, 8, 4}; }
WindowConfig small() { return WindowConfig{2, 4, 2, 2}; }

std::vector<int64_t> lasts(const std::vector<Window>& windows, int32_t video = 0) {
  std::vector<int64_t> out;
  for (const Window& w : windows)
    if (w.video == video) out.push_back(w.last);
  return out;
}

std::vector<int64_t> range(int64_t from, int64_t to) {  // from..to inclusive
  std::vector<int64_t> out;
  for (int64_t k = from; k <= to; ++k) out.push_back(k);
  return out;
}

std::vector<int64_t> concat(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST(Windows, ConfigErrorsNameTheField) {
  check_window_config(official());
  check_window_config(small());
  check_window_config(WindowConfig{1, 1, 1, 1});
  const auto bad = [](auto change, const std::string& field) {
    WindowConfig c = official();
    change(c);
    expect_error([&] { check_window_config(c); }, {field});
    const Dataset ds = make_dataset({100});
    expect_error([&] { evaluation_windows(ds, c); }, {field});
    expect_error([&] { training_windows(ds, c); }, {field});
    expect_error([&] { clip_frames(ds.videos[0], 10, c); }, {field});
    expect_error([&] { clip_audio_span(ds.videos[0], 10, c, 16000); }, {field});
  };
  bad([](WindowConfig& c) { c.clips = 0; }, "WindowConfig.clips");
  bad([](WindowConfig& c) { c.clip_frames = -32; }, "WindowConfig.clip_frames");
  bad([](WindowConfig& c) { c.frames_per_clip = 0; }, "WindowConfig.frames_per_clip");
  bad([](WindowConfig& c) { c.stride = 0; }, "WindowConfig.stride");
  bad([](WindowConfig& c) { c.frames_per_clip = 33; }, "WindowConfig.frames_per_clip (33)");
}

TEST(Windows, OfficialGeometryGivesEveryFrameExactlyOneClip) {
  const WindowConfig c = official();
  const Dataset ds = make_dataset({1000});
  const std::vector<Window> eval = evaluation_windows(ds, c);
  // Two blocks of 512 frames reach into 1000 frames: ends 481..512, then 993..1024, as the official code.
  EXPECT_EQ(lasts(eval), concat(range(481, 512), range(993, 1024)));
  std::map<int64_t, int> clips_ending_at;
  for (const Window& w : eval) {
    EXPECT_EQ(w.video, 0);
    for (int i = 0; i < c.clips; ++i) ++clips_ending_at[clip_end(w, i, c)];
  }
  ASSERT_EQ(clips_ending_at.size(), 1024u);
  EXPECT_EQ(clips_ending_at.begin()->first, 1);
  EXPECT_EQ(clips_ending_at.rbegin()->first, 1024);
  int padding = 0;
  for (const auto& [frame, count] : clips_ending_at) {
    EXPECT_EQ(count, 1) << "frame " << frame;
    if (!ds.videos[0].annotated(frame)) ++padding;
  }
  EXPECT_EQ(padding, 24);  // clips ending at 1001..1024, which the loader masks
  EXPECT_EQ(clip_end(eval[0], 0, c), 1);
  EXPECT_EQ(clip_end(eval[0], 15, c), 481);
  EXPECT_EQ(clip_end(eval[63], 0, c), 544);
  EXPECT_EQ(clip_end(eval[63], 15, c), 1024);

  // Training keeps only the windows that end inside the video: block 0, and 993..1000 of block 1.
  EXPECT_EQ(lasts(training_windows(ds, c)), concat(range(481, 512), range(993, 1000)));
}

TEST(Windows, BlockCountFollowsTheVideoLength) {
  const WindowConfig c = official();
  const Dataset ds = make_dataset({0, 1, 512, 513, 1024});
  const std::vector<Window> eval = evaluation_windows(ds, c);
  EXPECT_TRUE(lasts(eval, 0).empty());
  EXPECT_EQ(lasts(eval, 1), range(481, 512));  // one frame: a whole block, all but one clip padding
  EXPECT_EQ(lasts(eval, 2), range(481, 512));
  EXPECT_EQ(lasts(eval, 3), concat(range(481, 512), range(993, 1024)));
  EXPECT_EQ(lasts(eval, 4), concat(range(481, 512), range(993, 1024)));
  EXPECT_EQ(eval.size(), 32u + 32 + 64 + 64);
  for (size_t i = 1; i < eval.size(); ++i) EXPECT_LE(eval[i - 1].video, eval[i].video);

  const std::vector<Window> train = training_windows(ds, c);
  EXPECT_TRUE(lasts(train, 0).empty());
  EXPECT_TRUE(lasts(train, 1).empty());
  EXPECT_EQ(lasts(train, 2), range(481, 512));
  EXPECT_EQ(lasts(train, 3), range(481, 512));
  EXPECT_EQ(lasts(train, 4), concat(range(481, 512), range(993, 1024)));
}

TEST(Windows, TrainingDropsExactlyTheWindowsWithAnUnannotatedClipEnd) {
  const WindowConfig c = official();
  Dataset ds = make_dataset({1000, 600});
  VideoRecord& v = ds.videos[0];
  v.valence[0] = kNotAnnotated;    // frame 1 = 1 mod 32: the window ending at 481
  v.arousal[1] = kNotAnnotated;    // frame 2, arousal only: 482
  v.valence[99] = kNotAnnotated;   // frame 100 = 4 mod 32: 484
  v.valence[544] = kNotAnnotated;  // frame 545 = 1 mod 32, block 1: 993
  v.arousal[544] = kNotAnnotated;
  v.has_image[2] = 0;  // a missing image does not make frame 3 unannotated: 483 stays
  std::vector<int64_t> expected = {483};
  for (int64_t k : range(485, 512)) expected.push_back(k);
  for (int64_t k : range(994, 1000)) expected.push_back(k);
  const std::vector<Window> train = training_windows(ds, c);
  EXPECT_EQ(lasts(train, 0), expected);
  EXPECT_EQ(lasts(train, 1), range(481, 512));
  // Evaluation keeps them all.
  EXPECT_EQ(lasts(evaluation_windows(ds, c), 0), concat(range(481, 512), range(993, 1024)));
}

TEST(Windows, SmallConfigByHand) {
  const WindowConfig c = small();  // L = 2, 4 frames per clip, S = 8
  Dataset ds = make_dataset({10});
  const std::vector<Window> eval = evaluation_windows(ds, c);
  EXPECT_EQ(lasts(eval), (std::vector<int64_t>{5, 6, 7, 8, 13, 14, 15, 16}));
  const std::vector<std::pair<int64_t, int64_t>> ends = {{1, 5},  {2, 6},   {3, 7},   {4, 8},
                                                         {9, 13}, {10, 14}, {11, 15}, {12, 16}};
  for (size_t i = 0; i < eval.size(); ++i) {
    EXPECT_EQ(clip_end(eval[i], 0, c), ends[i].first);
    EXPECT_EQ(clip_end(eval[i], 1, c), ends[i].second);
  }
  expect_error([&] { clip_end(eval[0], 2, c); }, {"clip 2"});
  expect_error([&] { clip_end(eval[0], -1, c); }, {"clip -1"});
  EXPECT_EQ(lasts(training_windows(ds, c)), (std::vector<int64_t>{5, 6, 7, 8}));
  ds.videos[0].valence[2] = kNotAnnotated;  // frame 3: the window (3, 7)
  EXPECT_EQ(lasts(training_windows(ds, c)), (std::vector<int64_t>{5, 6, 8}));

  const VideoRecord& v = ds.videos[0];
  using F = std::vector<int64_t>;
  EXPECT_EQ(clip_frames(v, 4, c), (F{2, 4}));  // 4 there: stride 2
  EXPECT_EQ(clip_frames(v, 8, c), (F{6, 8}));
  EXPECT_EQ(clip_frames(v, 3, c), (F{2, 3}));  // 3 there: 3 / 2 = 1, stride 1
  EXPECT_EQ(clip_frames(v, 2, c), (F{1, 2}));
  EXPECT_EQ(clip_frames(v, 1, c), (F{1, 1}));     // 1 there: repeated
  EXPECT_EQ(clip_frames(v, 13, c), (F{10, 10}));  // past the end: only frame 10 is in the video
  EXPECT_EQ(clip_frames(v, 14, c), F{});
  VideoRecord holes = v;
  holes.has_image[3] = 0;  // frame 4
  EXPECT_EQ(clip_frames(holes, 4, c), (F{2, 3}));
  EXPECT_EQ(clip_frames(holes, 5, c), (F{3, 5}));  // 2, 3, 5 there: stride 1
  holes.has_image[2] = holes.has_image[4] = 0;     // frames 3 and 5 too
  EXPECT_EQ(clip_frames(holes, 6, c), (F{6, 6}));
  holes.has_image[5] = 0;
  EXPECT_EQ(clip_frames(holes, 6, c), F{});
}

// The stride rule of the official loader: 32 frames there -> every 4th, 24..31 -> every 3rd, 16..23 -> every
// 2nd, 8..15 -> the last 8, fewer -> all of them and the newest repeated.
TEST(Windows, ClipFramesStrideRuleForEveryAvailableCount) {
  const WindowConfig c = official();
  const std::map<int, int64_t> rule = {{32, 4}, {31, 3}, {24, 3}, {23, 2}, {16, 2}, {15, 1}, {8, 1}};
  std::mt19937 rng(5);
  for (int count : {32, 31, 24, 23, 16, 15, 8, 7, 1, 0}) {
    SCOPED_TRACE(count);
    // Frames 33..64 form the clip ending at 64; frames 1..32 are all there but outside it.
    VideoRecord v = make_video(64);
    std::vector<int64_t> clip = range(33, 64);
    std::shuffle(clip.begin(), clip.end(), rng);
    for (int i = count; i < 32; ++i) v.has_image[static_cast<size_t>(clip[static_cast<size_t>(i)] - 1)] = 0;
    std::vector<int64_t> available(clip.begin(), clip.begin() + count);
    std::sort(available.begin(), available.end());

    std::vector<int64_t> expected;
    if (count >= 8) {
      const int64_t s = rule.at(count);
      for (int i = 7; i >= 0; --i) expected.push_back(available[static_cast<size_t>(count - 1 - i * s)]);
    } else if (count > 0) {
      expected = available;
      expected.resize(8, available.back());
    }
    const std::vector<int64_t> got = clip_frames(v, 64, c);
    EXPECT_EQ(got, expected);
    if (count > 0) {
      EXPECT_EQ(got.size(), 8u);
      EXPECT_EQ(got.back(), available.back());  // always ends at the newest frame there
      EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));
    }
  }

  // The same, written out, with the missing frames at the old end of the clip.
  const auto keep_last = [](int count) {
    VideoRecord v = make_video(64);
    for (int64_t k = 33; k <= 64 - count; ++k) v.has_image[static_cast<size_t>(k - 1)] = 0;
    return v;
  };
  using F = std::vector<int64_t>;
  EXPECT_EQ(clip_frames(keep_last(32), 64, c), (F{36, 40, 44, 48, 52, 56, 60, 64}));
  EXPECT_EQ(clip_frames(keep_last(24), 64, c), (F{43, 46, 49, 52, 55, 58, 61, 64}));
  EXPECT_EQ(clip_frames(keep_last(16), 64, c), (F{50, 52, 54, 56, 58, 60, 62, 64}));
  EXPECT_EQ(clip_frames(keep_last(8), 64, c), (F{57, 58, 59, 60, 61, 62, 63, 64}));
  EXPECT_EQ(clip_frames(keep_last(3), 64, c), (F{62, 63, 64, 64, 64, 64, 64, 64}));
  VideoRecord newest_missing = make_video(64);
  newest_missing.has_image[63] = 0;  // 31 there, 33..63
  EXPECT_EQ(clip_frames(newest_missing, 64, c), (F{42, 45, 48, 51, 54, 57, 60, 63}));

  // At the start of the video and past its end the clip holds fewer frames.
  const VideoRecord v = make_video(64);
  EXPECT_EQ(clip_frames(v, 5, c), (F{1, 2, 3, 4, 5, 5, 5, 5}));
  EXPECT_EQ(clip_frames(v, 70, c), (F{43, 46, 49, 52, 55, 58, 61, 64}));  // 39..64: 26 there
  EXPECT_EQ(clip_frames(v, 100, c), F{});
}

TEST(Windows, ClipAudioSpanWithFps) {
  const WindowConfig c = official();
  const VideoRecord v = make_video(1000, 30.0);
  // 32 frames at 30 fps = 1.0667 s = 17066.67 samples at 16 kHz -> 17067.
  const AudioSpan first = clip_audio_span(v, 1, c, 16000);
  EXPECT_EQ(first.count, 17067);
  EXPECT_EQ(first.first, 533 - 17067);  // frame 1 ends at 1/30 s = sample 533.3 -> 533
  EXPECT_LT(first.first, 0);
  const AudioSpan full = clip_audio_span(v, 32, c, 16000);
  EXPECT_EQ(full.first, 0);
  EXPECT_EQ(full.count, 17067);
  EXPECT_EQ(clip_audio_span(v, 100, c, 16000).first, 53333 - 17067);
  const AudioSpan cd = clip_audio_span(v, 30, c, 44100);  // exactly 1 s in
  EXPECT_EQ(cd.count, 47040);
  EXPECT_EQ(cd.first, 44100 - 47040);
  // Past the last frame the video goes on at its frame rate.
  EXPECT_EQ(clip_audio_span(v, 1024, c, 16000).first, std::llround(1024 / 30.0 * 16000) - 17067);
  expect_error([&] { clip_audio_span(v, 1, c, 0); }, {"sample_rate"});
  VideoRecord no_rate = v;
  no_rate.fps = 0;
  expect_error([&] { clip_audio_span(no_rate, 1, c, 16000); }, {"fps"});
}

TEST(Windows, ClipAudioSpanWithTimestamps) {
  const WindowConfig c = official();
  VideoRecord v = make_video(4, 25.0);
  v.frame_time_ms = {0, 40, 80, 130};
  // The length stays 32 frames at the nominal 25 fps: 1.28 s = 20480 samples.
  EXPECT_EQ(clip_audio_span(v, 2, c, 16000).count, 20480);
  EXPECT_EQ(clip_audio_span(v, 2, c, 16000).first, 1280 - 20480);  // frame 2 ends at 80 ms
  EXPECT_EQ(clip_audio_span(v, 3, c, 16000).first, 2080 - 20480);  // frame 3 ends at 130 ms
  EXPECT_EQ(clip_audio_span(v, 4, c, 16000).first, 2880 - 20480);  // the last frame lasts 50 ms too
  EXPECT_EQ(clip_audio_span(v, 6, c, 16000).first, 4480 - 20480);  // padding clips continue at 50 ms
}
