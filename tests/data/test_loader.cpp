// The batched prefetching loader: shapes, values (frames, log-mel images, labels), evaluation coverage,
// determinism across worker counts, resuming, the on-disk cache and its invalidation, bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "autograd/minidl.h"
#include "data/audio.h"
#include "data/image.h"
#include "data/loader.h"
#include "tests/cuda/cuda_test_helpers.h"
#include "tests/data/data_test_helpers.h"

using namespace minidl;
using namespace minidl::data;
using namespace data_test;
namespace fs = std::filesystem;

namespace {

// The colour of frame f of a test video: distinct per frame, so a test can tell which frame it got.
uint8_t colour(int64_t f, int ch) { return static_cast<uint8_t>((f * 7 + ch * 50) % 256); }

// A video of n frames at `fps` with PNG frames (lossless, so pixel values can be checked exactly) of
// size x size, labels valence = f / (2n), arousal = -f / (2n), and a 1 kHz tone, written under dir.
VideoRecord make_video(const fs::path& dir, const std::string& name, int64_t n, int size = 8, double fps = 30,
                       int rate = 8000, std::vector<int64_t> unannotated = {}, std::vector<int64_t> missing = {}) {
  VideoRecord v;
  v.name = name;
  v.frames_dir = (dir / name).string();
  v.frame_pattern = "%05d.png";
  v.fps = fps;
  fs::create_directories(v.frames_dir);
  for (int64_t f = 1; f <= n; ++f) {
    const bool absent = std::find(missing.begin(), missing.end(), f) != missing.end();
    v.has_image.push_back(absent ? 0 : 1);
    const bool unlabelled = std::find(unannotated.begin(), unannotated.end(), f) != unannotated.end();
    v.valence.push_back(unlabelled ? kNotAnnotated : static_cast<float>(f) / (2 * n));
    v.arousal.push_back(unlabelled ? kNotAnnotated : -static_cast<float>(f) / (2 * n));
    if (absent) continue;
    Image img;
    img.width = img.height = size;
    for (int i = 0; i < size * size; ++i)
      for (int ch = 0; ch < 3; ++ch) img.rgb.push_back(colour(f, ch));
    write_png(v.frame_path(f), img);
  }
  std::vector<float> audio(static_cast<size_t>(std::llround(n / fps * rate)));
  for (size_t i = 0; i < audio.size(); ++i) audio[i] = 0.5f * std::sin(2 * M_PI * 1000.0 * i / rate);
  v.wav_path = (dir / (name + ".wav")).string();
  write_wav(v.wav_path, audio, rate);
  return v;
}

LoaderConfig small_config() {
  LoaderConfig c;
  c.batch_size = 3;
  c.image_size = 8;
  c.workers = 2;
  c.windows = {.clips = 2, .clip_frames = 4, .frames_per_clip = 2, .stride = 2};
  c.mel.sample_rate = 8000;
  c.mel.n_fft = 256;
  c.mel.win_length = 160;
  c.mel.hop_length = 80;
  c.mel.n_mels = 16;
  return c;
}

std::vector<Batch> epoch_batches(Loader& loader, int64_t epoch, int64_t first = 0) {
  loader.start_epoch(epoch, first);
  std::vector<Batch> out;
  for (Batch b; loader.next(b);) out.push_back(b);
  return out;
}

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].video_index, b[i].video_index) << "batch " << i;
    EXPECT_EQ(a[i].video.values<float>(), b[i].video.values<float>()) << "batch " << i;
    EXPECT_EQ(a[i].audio.values<float>(), b[i].audio.values<float>()) << "batch " << i;
    EXPECT_EQ(a[i].labels.values<float>(), b[i].labels.values<float>()) << "batch " << i;
    EXPECT_EQ(a[i].mask.values<bool>(), b[i].mask.values<bool>()) << "batch " << i;
    EXPECT_EQ(a[i].frame_ids.values<int64_t>(), b[i].frame_ids.values<int64_t>()) << "batch " << i;
  }
}

}  // namespace

TEST(Loader, BatchShapesAndLabels) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 20));
  LoaderConfig cfg = small_config();
  Loader loader(ds, cfg);
  // Training windows: blocks of 8 frames, 4 windows per block whose clip ends are all annotated: 20
  // frames hold blocks [1,8], [9,16] fully and [17,24] only partly (ends past 20 are not annotated).
  EXPECT_EQ(loader.windows(), 8);
  EXPECT_EQ(loader.batches(), 3);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(b.video.shape(), (Shape{3, 2, 3, 2, 8, 8}));
  EXPECT_EQ(b.audio.shape()[0], 3);
  EXPECT_EQ(b.audio.shape()[2], 1);
  EXPECT_EQ(b.audio.shape()[3], 16);
  EXPECT_EQ(b.labels.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(b.mask.shape(), (Shape{3, 2}));
  const auto ids = b.frame_ids.values<int64_t>();
  const auto labels = b.labels.values<float>();
  const auto mask = b.mask.values<bool>();
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_TRUE(mask[i]);
    EXPECT_FLOAT_EQ(labels[2 * i], static_cast<float>(ids[i]) / 40) << "valence of frame " << ids[i];
    EXPECT_FLOAT_EQ(labels[2 * i + 1], -static_cast<float>(ids[i]) / 40);
  }
}

TEST(Loader, FramesAreTheSampledFramesNormalised) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 16));
  LoaderConfig cfg = small_config();
  cfg.evaluation = true;
  Loader loader(ds, cfg);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  const Tensor video = b.video;  // [B, L, 3, T, S, S]
  for (int64_t row = 0; row < video.size(0); ++row)
    for (int64_t clip = 0; clip < 2; ++clip) {
      const int64_t end = b.frame_ids.values<int64_t>()[row * 2 + clip];
      const auto frames = clip_frames(ds.videos[0], end, cfg.windows);
      ASSERT_EQ(frames.size(), 2u);
      for (int64_t t = 0; t < 2; ++t)
        for (int ch = 0; ch < 3; ++ch) {
          const float want = (colour(frames[t], ch) / 255.0f - cfg.mean[ch]) / cfg.std[ch];
          const float got =
              video.select(0, row).select(0, clip).select(0, ch).select(0, t).select(0, 3).select(0, 5).item();
          EXPECT_NEAR(got, want, 1e-6) << "clip ending at " << end << ", frame " << frames[t] << ", channel " << ch;
        }
    }
}

TEST(Loader, AudioIsTheLogMelOfTheClipSpan) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 16));
  LoaderConfig cfg = small_config();
  cfg.evaluation = true;
  Loader loader(ds, cfg);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  const Audio track = read_wav(ds.videos[0].wav_path);
  const LogMel mel(cfg.mel);
  const int64_t end = b.frame_ids.values<int64_t>()[1];  // row 0, clip 1
  const AudioSpan span = clip_audio_span(ds.videos[0], end, cfg.windows, cfg.mel.sample_rate);
  std::vector<float> samples(span.count, 0.0f);
  for (int64_t i = 0; i < span.count; ++i)
    if (span.first + i >= 0 && span.first + i < static_cast<int64_t>(track.samples.size()))
      samples[i] = track.samples[span.first + i];
  const auto want = mel.compute(samples.data(), span.count);
  const auto got = b.audio.select(0, 0).select(0, 1).contiguous().values<float>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_FLOAT_EQ(got[i], want[i]) << "element " << i;
}

TEST(Loader, EvaluationCoversEveryAnnotatedFrameOnce) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 19, 8, 30, 8000, {3, 11}));
  ds.videos.push_back(make_video(tmp.path(), "b", 7));
  LoaderConfig cfg = small_config();
  cfg.evaluation = true;
  Loader loader(ds, cfg);
  std::map<std::pair<int32_t, int64_t>, int> seen;
  for (const Batch& b : epoch_batches(loader, 0)) {
    const auto ids = b.frame_ids.values<int64_t>();
    const auto mask = b.mask.values<bool>();
    for (size_t i = 0; i < ids.size(); ++i)
      if (mask[i]) ++seen[{b.video_index[i / 2], ids[i]}];
  }
  int64_t expected = 0;
  for (int32_t v = 0; v < 2; ++v)
    for (int64_t f = 1; f <= ds.videos[v].num_frames(); ++f)
      if (ds.videos[v].annotated(f)) {
        ++expected;
        EXPECT_EQ((seen[{v, f}]), 1) << "video " << v << " frame " << f;
      }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), expected);
}

TEST(Loader, SameBatchesWithAnyNumberOfWorkers) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 24));
  ds.videos.push_back(make_video(tmp.path(), "b", 17));
  LoaderConfig cfg = small_config();
  cfg.augment = true;
  cfg.seed = 99;
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 3}) {
    cfg.workers = workers;
    Loader loader(ds, cfg);
    runs.push_back(epoch_batches(loader, 2));
  }
  expect_same_batches(runs[0], runs[1]);
  expect_same_batches(runs[0], runs[2]);
}

TEST(Loader, EpochsShuffleDifferentlyAndResumeExactly) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 32));
  LoaderConfig cfg = small_config();
  cfg.augment = true;
  Loader loader(ds, cfg);
  const auto e0 = epoch_batches(loader, 0), e1 = epoch_batches(loader, 1);
  std::vector<int64_t> ids0, ids1;
  for (const auto& b : e0)
    for (int64_t x : b.frame_ids.values<int64_t>()) ids0.push_back(x);
  for (const auto& b : e1)
    for (int64_t x : b.frame_ids.values<int64_t>()) ids1.push_back(x);
  EXPECT_NE(ids0, ids1) << "two epochs must not share an order";
  std::sort(ids0.begin(), ids0.end());
  std::sort(ids1.begin(), ids1.end());
  EXPECT_EQ(ids0, ids1) << "but they cover the same clips";
  // Resuming epoch 1 at batch 2 gives exactly its batches 2, 3, ...
  const auto resumed = epoch_batches(loader, 1, 2);
  expect_same_batches(resumed, std::vector<Batch>(e1.begin() + 2, e1.end()));
  EXPECT_EQ(resumed.front().index, 2);
  EXPECT_EQ(resumed.front().epoch, 1);
}

TEST(Loader, DropLastAndPartialBatches) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 16));  // 8 training windows
  LoaderConfig cfg = small_config();
  Loader keep(ds, cfg);
  const auto all = epoch_batches(keep, 0);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all.back().video.size(0), 2) << "8 windows = 3 + 3 + 2";
  cfg.drop_last = true;
  Loader drop(ds, cfg);
  EXPECT_EQ(drop.batches(), 2);
  EXPECT_EQ(epoch_batches(drop, 0).size(), 2u);
}

TEST(Loader, CacheServesTheSameDataAndNoticesChangedSources) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 16));
  LoaderConfig cfg = small_config();
  cfg.evaluation = true;
  cfg.cache_dir = (tmp.path() / "cache").string();
  std::vector<Batch> first, second;
  {
    cfg.workers = 0;  // one thread: no second thread finds the entry the first one just wrote
    Loader loader(ds, cfg);
    first = epoch_batches(loader, 0);
    EXPECT_EQ(loader.stats().cache_hits, 0);
  }
  cfg.workers = 2;
  {
    Loader loader(ds, cfg);
    second = epoch_batches(loader, 0);
    EXPECT_GT(loader.stats().cache_hits, 0) << "a second loader must read the cache";
  }
  expect_same_batches(first, second);
  // Rewrite frame 4 with another colour: the cache must be rebuilt, not misread.
  Image img = read_image(ds.videos[0].frame_path(4));
  for (auto& p : img.rgb) p = 200;
  fs::remove(ds.videos[0].frame_path(4));
  write_png(ds.videos[0].frame_path(4), img);
  fs::last_write_time(ds.videos[0].frame_path(4),
                      fs::last_write_time(ds.videos[0].frame_path(4)) + std::chrono::seconds(5));
  Loader loader(ds, cfg);
  const auto third = epoch_batches(loader, 0);
  bool saw_new_colour = false;
  for (const auto& b : third)
    for (float x : b.video.values<float>())
      saw_new_colour |= std::fabs(x - (200 / 255.0f - cfg.mean[0]) / cfg.std[0]) < 1e-5;
  EXPECT_TRUE(saw_new_colour) << "the changed frame was served from a stale cache entry";
}

TEST(Loader, CorruptFrameIsAnErrorNamingItOrACountedWarning) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 16));
  const std::string bad = ds.videos[0].frame_path(6);
  std::ofstream(bad, std::ios::binary | std::ios::trunc) << "not a png at all";
  LoaderConfig cfg = small_config();
  cfg.evaluation = true;
  {
    Loader loader(ds, cfg);
    try {
      epoch_batches(loader, 0);
      FAIL() << "a corrupt frame must be reported";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
  cfg.skip_bad_files = true;
  Loader loader(ds, cfg);
  EXPECT_NO_THROW(epoch_batches(loader, 0));
  const LoaderStats s = loader.stats();
  EXPECT_GE(s.skipped_files, 1);
  ASSERT_FALSE(s.warnings.empty());
  EXPECT_NE(s.warnings[0].find(bad), std::string::npos) << s.warnings[0];
}

TEST(Loader, CorruptWavIsAnErrorNamingItOrSilence) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 16));
  std::ofstream(ds.videos[0].wav_path, std::ios::binary | std::ios::trunc) << "RIFF";
  LoaderConfig cfg = small_config();
  {
    Loader loader(ds, cfg);
    EXPECT_THROW(epoch_batches(loader, 0), Error);
  }
  cfg.skip_bad_files = true;
  Loader loader(ds, cfg);
  const auto batches = epoch_batches(loader, 0);
  EXPECT_GE(loader.stats().skipped_files, 1);
  // Silence everywhere: every log-mel value sits at the floor of an all-zero signal.
  const auto a = batches[0].audio.values<float>();
  EXPECT_EQ(*std::min_element(a.begin(), a.end()), *std::max_element(a.begin(), a.end()));
}

TEST(Loader, BadConfigNamesTheField) {
  Dataset ds;
  LoaderConfig cfg = small_config();
  cfg.batch_size = 0;
  try {
    Loader loader(ds, cfg);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch_size"), std::string::npos) << e.what();
  }
  cfg = small_config();
  cfg.prefetch = 0;
  EXPECT_THROW(Loader(ds, cfg), Error);
  cfg = small_config();
  cfg.windows.frames_per_clip = 9;
  EXPECT_THROW(Loader(ds, cfg), Error);
}

TEST(Loader, EmptyDatasetHasNoBatches) {
  Dataset ds;
  Loader loader(ds, small_config());
  EXPECT_EQ(loader.batches(), 0);
  Batch b;
  EXPECT_FALSE(loader.next(b));
}

TEST(Loader, FlipMirrorsWholeClipsAndCropStaysInRange) {
  TempDir tmp;
  Dataset ds;
  VideoRecord v = make_video(tmp.path(), "a", 16);
  // Frames with a left-to-right ramp, so a mirrored clip is recognisable.
  for (int64_t f = 1; f <= v.num_frames(); ++f) {
    Image img;
    img.width = img.height = 8;
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x)
        for (int ch = 0; ch < 3; ++ch) img.rgb.push_back(static_cast<uint8_t>(x * 30));
    fs::remove(v.frame_path(f));
    write_png(v.frame_path(f), img);
  }
  ds.videos.push_back(v);
  LoaderConfig cfg = small_config();
  cfg.flip = true;
  int mirrored = 0, plain = 0;
  Loader loader(ds, cfg);
  for (const Batch& b : epoch_batches(loader, 0)) {
    const auto x = b.video.values<float>();  // [B, L, 3, T, 8, 8]
    for (size_t clip = 0; clip < x.size() / (3 * 2 * 64); ++clip) {
      const float* p = x.data() + clip * 3 * 2 * 64;
      const bool left_dark = p[0] < p[7];
      (left_dark ? plain : mirrored)++;
      for (int c = 1; c < 3 * 2; ++c) EXPECT_EQ(p[c * 64] < p[c * 64 + 7], left_dark) << "a clip is flipped as a whole";
    }
  }
  EXPECT_GT(mirrored, 0);
  EXPECT_GT(plain, 0);
  cfg.flip = false;
  cfg.crop = 0.5f;
  Loader cropped(ds, cfg);
  for (const Batch& b : epoch_batches(cropped, 0))
    for (float x : b.video.values<float>()) {
      EXPECT_GE(x, (0.0f - cfg.mean[0]) / cfg.std[0] - 1e-4f);
      EXPECT_LE(x, (1.0f - cfg.mean[2]) / cfg.std[2] + 1e-4f);
    }
  cfg.evaluation = true;
  cfg.flip = true;
  Loader eval(ds, cfg);  // evaluation never augments: every clip keeps its left-to-right ramp
  for (const Batch& b : epoch_batches(eval, 0)) {
    const auto x = b.video.values<float>();
    for (size_t clip = 0; clip < x.size() / 64; ++clip) EXPECT_LT(x[clip * 64], x[clip * 64 + 7]);
  }
}

// SpecAugment: with masks on, a training clip's log-mel image differs from the unmasked one only in a
// band of at most freq_mask adjacent rows and a run of at most time_mask adjacent columns, every changed
// cell holding the image's mean; the masks move from clip to clip, and evaluation never masks.
TEST(Loader, SpectrogramMasksAreABandAndARunFilledWithTheMean) {
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 40));
  ds.videos.push_back(make_video(tmp.path(), "b", 31));
  LoaderConfig cfg = small_config();
  cfg.seed = 5;
  Loader plain(ds, cfg);
  const std::vector<Batch> want = epoch_batches(plain, 1);
  cfg.freq_mask = 3;
  cfg.time_mask = 4;
  Loader masked(ds, cfg);
  const std::vector<Batch> got = epoch_batches(masked, 1);
  ASSERT_EQ(got.size(), want.size());
  const int64_t M = cfg.mel.n_mels;
  std::set<int64_t> band_starts;
  int bands = 0, runs = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].video_index, want[i].video_index);
    EXPECT_EQ(got[i].video.values<float>(), want[i].video.values<float>()) << "frames are not masked";
    const auto g = got[i].audio.values<float>(), w = want[i].audio.values<float>();
    const int64_t F = got[i].audio.size(-1), clips = static_cast<int64_t>(g.size()) / (M * F);
    for (int64_t clip = 0; clip < clips; ++clip) {
      const float* gc = g.data() + clip * M * F;
      const float* wc = w.data() + clip * M * F;
      double mean = 0;
      for (int64_t k = 0; k < M * F; ++k) mean += wc[k];
      const float fill = static_cast<float>(mean / static_cast<double>(M * F));
      std::vector<bool> row_masked(M, true), col_masked(F, true);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t t = 0; t < F; ++t) {
          const float x = gc[m * F + t];
          if (x != wc[m * F + t]) {
            ASSERT_EQ(x, fill) << "batch " << i << " clip " << clip << " cell " << m << "," << t;
          }
          if (x != fill) row_masked[m] = col_masked[t] = false;
        }
      for (int64_t m = 0; m < M; ++m)
        for (int64_t t = 0; t < F; ++t)
          if (gc[m * F + t] != wc[m * F + t]) {
            ASSERT_TRUE(row_masked[m] || col_masked[t]) << "a changed cell outside the band and the run";
          }
      // The masked rows and columns are each one contiguous stretch, no longer than allowed.
      auto stretch = [](const std::vector<bool>& on) {
        const auto first = std::find(on.begin(), on.end(), true);
        const auto last = std::find(first, on.end(), false);
        EXPECT_EQ(std::find(last, on.end(), true), on.end()) << "masked cells in two stretches";
        return std::pair<int64_t, int64_t>{first - on.begin(), last - first};
      };
      const auto [band_first, band] = stretch(row_masked);
      const auto [run_first, run] = stretch(col_masked);
      EXPECT_LE(band, cfg.freq_mask);
      EXPECT_LE(run, cfg.time_mask);
      if (band > 0) ++bands, band_starts.insert(band_first);
      if (run > 0) ++runs;
    }
  }
  EXPECT_GT(bands, 0);
  EXPECT_GT(runs, 0);
  EXPECT_GT(band_starts.size(), 1u) << "the band should move between clips";

  cfg.evaluation = true;
  Loader eval_masked(ds, cfg);
  cfg.freq_mask = cfg.time_mask = 0;
  Loader eval_plain(ds, cfg);
  expect_same_batches(epoch_batches(eval_masked, 0), epoch_batches(eval_plain, 0));

  cfg.evaluation = false;
  cfg.freq_mask = M + 1;
  try {
    Loader bad(ds, cfg);
    FAIL() << "a band wider than the image";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("freq_mask"), std::string::npos) << e.what();
  }
}

// The GPU path: workers upload on a copy stream of their own (cuda::Uploader), and next() orders the
// consumer's stream after the copy. The batches must be the CPU loader's, value for value, also when
// an epoch restarts or the loader goes away while uploads are still in flight. (These batches are too
// small for a missing stream wait to show; tests/cuda/test_cuda_runtime.cpp tests the ordering.)
TEST(Loader, BatchesOnTheGpuAreTheCpusBatches) {
  REQUIRE_GPU();
  TempDir tmp;
  Dataset ds;
  ds.videos.push_back(make_video(tmp.path(), "a", 40));
  ds.videos.push_back(make_video(tmp.path(), "b", 23));
  LoaderConfig cfg = small_config();
  cfg.augment = true;
  cfg.seed = 5;
  Loader on_cpu(ds, cfg);
  const auto expected = epoch_batches(on_cpu, 1);
  ASSERT_GE(expected.size(), 3u) << "enough batches to have some in flight";
  for (int workers : {0, 1, 3}) {
    cfg.workers = workers;
    cfg.device = Device::cuda(0);
    Loader on_gpu(ds, cfg);
    const auto got = epoch_batches(on_gpu, 1);
    for (const Batch& b : got) {
      EXPECT_TRUE(b.video.device().is_cuda() && b.audio.device().is_cuda() && b.labels.device().is_cuda() &&
                  b.mask.device().is_cuda());
      EXPECT_TRUE(b.frame_ids.device().is_cpu()) << "frame ids stay on the host";
    }
    expect_same_batches(got, expected);
    // Restarting with uploads in flight drops them; the restarted epoch is still right.
    on_gpu.start_epoch(1);
    Batch first;
    ASSERT_TRUE(on_gpu.next(first));
    const auto rest = epoch_batches(on_gpu, 1, 1);
    expect_same_batches({expected.begin() + 1, expected.end()}, rest);
    on_gpu.start_epoch(0);  // and the destructor meets batches still being uploaded
  }
}

TEST(Loader, AnUnavailableDeviceIsAnErrorNamingIt) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  Dataset ds;
  LoaderConfig cfg = small_config();
  cfg.device = Device::cuda(0);
  try {
    Loader loader(ds, cfg);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}
