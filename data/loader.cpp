// The batched prefetching loader (data/loader.h).
//
// Work is a batch: worker threads take batch numbers in order, assemble them (decode frames, cut and
// transform audio, fill tensors) and park them in a map keyed by number; next() hands them out in order.
// At most `prefetch` batches are in flight ahead of the consumer. Restarting an epoch bumps a generation
// counter, so batches still being built for the old epoch are dropped when they finish.
//
// Sources per video, shared by the clips that need them:
//   audio  - the wav decoded and resampled to the model's rate once, kept in an in-memory LRU
//            (and in the on-disk cache when one is configured);
//   frames - decoded and resized per clip; with an on-disk cache, decoded once per video into one file of
//            fixed-size frames read back with pread.
//
// On a GPU a worker hands its finished batch to a cuda::Uploader (cuda/runtime.h), which copies it on
// a stream of its own through pinned memory while the consumer's step runs; next() makes the
// consumer's stream wait for that copy before handing the batch out.
#include "data/loader.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "autograd/error.h"
#include "autograd/philox.h"
#include "cuda/runtime.h"
#include "data/audio.h"
#include "data/clip_cache.h"
#include "data/image.h"

namespace minidl::data {
namespace {

// Decoded tracks kept in memory, by size. SynthAV's 192 training tracks (about 280 MB at 16 kHz) all fit,
// so after its first sequence no video's wav is read and parsed again: with 64 tracks, as before, two
// thirds of the sequences of a shuffled epoch re-read theirs, 15% of the loader's time. A data set of
// longer tracks keeps the most recently used ones.
constexpr size_t kAudioLruBytes = size_t{512} << 20;

void check_config(const LoaderConfig& c) {
  MINIDL_CHECK(c.batch_size > 0, "loader: batch_size must be positive, got ", c.batch_size);
  MINIDL_CHECK(c.workers >= 0, "loader: workers must be 0 or more, got ", c.workers);
  MINIDL_CHECK(c.prefetch > 0, "loader: prefetch must be positive, got ", c.prefetch);
  MINIDL_CHECK(c.image_size > 0, "loader: image_size must be positive, got ", c.image_size);
  for (int ch = 0; ch < 3; ++ch) MINIDL_CHECK(c.std[ch] > 0, "loader: std[", ch, "] must be positive, got ", c.std[ch]);
  MINIDL_CHECK(c.crop > 0.0f && c.crop <= 1.0f, "loader: crop must lie in (0, 1], got ", c.crop);
  MINIDL_CHECK(c.freq_mask >= 0 && c.freq_mask <= c.mel.n_mels,
               "loader: freq_mask must lie in [0, n_mels = ", c.mel.n_mels, "], got ", c.freq_mask);
  MINIDL_CHECK(c.time_mask >= 0, "loader: time_mask must be 0 or more, got ", c.time_mask);
  const std::string unavailable = device_unavailable(c.device);
  MINIDL_CHECK(unavailable.empty(), "loader: device ", c.device.str(), " is not available: ", unavailable);
  check_window_config(c.windows);
}

// A uniform double in [0, 1) from four Philox values' worth of counter space: (domain, a, b) name the
// draw, so every random choice is a pure function of the seed and its coordinates.
double unit(uint64_t seed, uint32_t domain, uint64_t a, uint64_t b) {
  const philox::Block blk =
      philox::philox4x32_10(static_cast<uint32_t>(a), static_cast<uint32_t>(a >> 32), static_cast<uint32_t>(b), domain,
                            static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return philox::to_unit_double(blk.v[0], blk.v[1]);
}

constexpr uint32_t kShuffleDomain = 1, kAugmentDomain = 2, kNoiseDomain = 3, kSpecMaskDomain = 4;

// A built batch and, on a GPU, the copy that is still filling its device tensors. The upload is
// declared last, so it is destroyed first: a batch dropped before delivery (its epoch restarted, the
// loader destroyed) waits for its copy before its device memory goes back to the allocator.
struct Pending {
  Batch batch;
  cuda::Upload upload;
};

}  // namespace

struct Loader::Impl {
  const Dataset& dataset;
  LoaderConfig config;
  std::vector<Window> windows;
  // Window index of each position in the current epoch. Replaced, never modified, when an epoch starts, so
  // a worker still building a batch of the previous epoch keeps reading a consistent order.
  std::shared_ptr<const std::vector<int64_t>> order;
  int64_t clip_samples = 0, mel_frames = 0;
  ClipCache cache;
  std::unique_ptr<cuda::Uploader> uploader;  // on a GPU; outlives the pending batches below

  // Prefetch state, guarded by mutex.
  std::mutex mutex;
  std::condition_variable changed;
  uint64_t generation = 0;
  int64_t epoch = 0, next_assign = 0, next_deliver = 0, end = 0;
  std::map<int64_t, Pending> ready;
  std::map<int64_t, std::exception_ptr> failed;
  bool stopping = false;
  std::vector<std::thread> threads;
  LoaderStats stats;

  // Decoded audio tracks, most recently used first.
  std::mutex audio_mutex;
  std::list<std::pair<std::string, std::shared_ptr<const std::vector<float>>>> audio_lru;
  size_t audio_lru_bytes = 0;

  Impl(const Dataset& d, LoaderConfig c) : dataset(d), config(std::move(c)), cache(config.cache_dir) {
    check_config(config);
    windows =
        config.evaluation ? evaluation_windows(dataset, config.windows) : training_windows(dataset, config.windows);
    const LogMel probe(config.mel);  // validates the mel config now, not in a worker
    clip_samples = std::llround(config.windows.clip_frames / (dataset.videos.empty() ? 30.0 : dataset.videos[0].fps) *
                                config.mel.sample_rate);
    mel_frames = probe.frames(clip_samples);
    // One staging buffer per worker and one spare: a worker waits for a buffer only when the copies
    // fall more than a batch behind.
    if (config.device.is_cuda())
      uploader = std::make_unique<cuda::Uploader>(config.device.index, std::max(2, config.workers + 1));
  }

  int64_t batches() const {
    const int64_t n = static_cast<int64_t>(windows.size()), b = config.batch_size;
    return config.drop_last ? n / b : (n + b - 1) / b;
  }

  void warn(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex);
    ++stats.skipped_files;
    stats.warnings.push_back(what);
  }

  // The epoch's window order: identity in evaluation or without shuffling, else a Fisher-Yates
  // permutation drawn from (seed, epoch).
  std::shared_ptr<const std::vector<int64_t>> make_order(int64_t e) const {
    auto o = std::make_shared<std::vector<int64_t>>(windows.size());
    for (size_t i = 0; i < o->size(); ++i) (*o)[i] = static_cast<int64_t>(i);
    if (!config.evaluation && config.shuffle)
      for (int64_t i = static_cast<int64_t>(o->size()) - 1; i > 0; --i) {
        const double u = unit(config.seed, kShuffleDomain, static_cast<uint64_t>(e), static_cast<uint64_t>(i));
        std::swap((*o)[i], (*o)[static_cast<int64_t>(u * static_cast<double>(i + 1))]);
      }
    return o;
  }

  // The video's track at the model's rate (empty when it has none, or a bad file was tolerated).
  std::shared_ptr<const std::vector<float>> audio_of(const VideoRecord& v) {
    if (v.wav_path.empty()) return std::make_shared<std::vector<float>>();
    {
      std::lock_guard<std::mutex> lock(audio_mutex);
      for (auto it = audio_lru.begin(); it != audio_lru.end(); ++it)
        if (it->first == v.wav_path) {
          audio_lru.splice(audio_lru.begin(), audio_lru, it);
          return it->second;
        }
    }
    std::shared_ptr<const std::vector<float>> track;
    try {
      track = cache.audio(v.wav_path, config.mel.sample_rate, [&] {
        Audio a = read_wav(v.wav_path);
        return resample(a.samples, a.sample_rate, config.mel.sample_rate);
      });
    } catch (const Error& e) {
      if (!config.skip_bad_files) throw;
      warn(e.what());
      track = std::make_shared<std::vector<float>>();
    }
    std::lock_guard<std::mutex> lock(audio_mutex);
    for (const auto& [path, kept] : audio_lru)
      if (path == v.wav_path) return kept;  // another worker decoded it meanwhile
    audio_lru.emplace_front(v.wav_path, track);
    audio_lru_bytes += track->size() * sizeof(float);
    while (audio_lru_bytes > kAudioLruBytes && audio_lru.size() > 1) {
      audio_lru_bytes -= audio_lru.back().second->size() * sizeof(float);
      audio_lru.pop_back();
    }
    return track;
  }

  // Frame `frame` of the video as image_size^2 RGB, or empty when its file is bad and skipping is on.
  std::vector<uint8_t> frame_pixels(const VideoRecord& v, int64_t frame) {
    return cache.frame(v, frame, config.image_size, [&](int64_t f) -> std::vector<uint8_t> {
      try {
        Image img = read_image(v.frame_path(f));
        if (img.width != config.image_size || img.height != config.image_size)
          img = resize_image(img, config.image_size, config.image_size);
        return std::move(img.rgb);
      } catch (const Error& e) {
        if (!config.skip_bad_files) throw;
        warn(e.what());
        return {};
      }
    });
  }

  // Fills clip `c` of batch row `b`: frames, log-mel image, label.
  void fill_clip(Batch& batch, int64_t b, int c, const Window& w, int64_t position, const LogMel& mel) {
    const int64_t epoch = batch.epoch;
    const VideoRecord& v = dataset.videos[w.video];
    const WindowConfig& wc = config.windows;
    const int64_t end = clip_end(w, c, wc), L = wc.clips, T = wc.frames_per_clip, S = config.image_size;
    const bool inside = end >= 1 && end <= v.num_frames();

    // Labels and mask: only clips that end on an annotated frame count.
    const bool valid = inside && v.annotated(end);
    batch.labels.data<float>()[(b * L + c) * 2] = valid ? v.valence[end - 1] : 0.0f;
    batch.labels.data<float>()[(b * L + c) * 2 + 1] = valid ? v.arousal[end - 1] : 0.0f;
    batch.mask.data<bool>()[b * L + c] = valid;
    batch.frame_ids.data<int64_t>()[b * L + c] = end;

    // Training augmentation, one set of draws per clip from (seed, epoch, position, clip): brightness,
    // contrast, flip, crop size and crop corner.
    const bool training = !config.evaluation;
    const uint64_t where = static_cast<uint64_t>(position * config.windows.clips + c);
    auto draw = [&](int k) { return unit(config.seed, kAugmentDomain, static_cast<uint64_t>(epoch), 8 * where + k); };
    float brightness = 1.0f, contrast = 1.0f;
    if (training && config.augment) {
      brightness = static_cast<float>(0.8 + 0.4 * draw(0));
      contrast = static_cast<float>(0.8 + 0.4 * draw(1));
    }
    const bool flip = training && config.flip && draw(2) < 0.5;
    int64_t side = S, x0 = 0, y0 = 0;
    if (training && config.crop < 1.0f) {
      side = std::clamp<int64_t>(std::llround(S * (config.crop + (1.0 - config.crop) * draw(3))), 1, S);
      x0 = std::min<int64_t>(S - side, static_cast<int64_t>(draw(4) * static_cast<double>(S - side + 1)));
      y0 = std::min<int64_t>(S - side, static_cast<int64_t>(draw(5) * static_cast<double>(S - side + 1)));
    }

    // Frames: [3, T, S, S] of this clip, normalised; a clip with no usable frame stays 0 (the mean colour).
    float* out = batch.video.data<float>() + (b * L + c) * 3 * T * S * S;
    std::vector<std::vector<uint8_t>> pixels;
    for (int64_t f : inside ? clip_frames(v, end, wc) : std::vector<int64_t>{}) {
      auto p = frame_pixels(v, f);
      if (!p.empty()) pixels.push_back(std::move(p));
    }
    std::fill(out, out + 3 * T * S * S, 0.0f);
    if (!pixels.empty()) {
      // A bad frame tolerated under skip_bad_files is replaced by its newest good neighbour in the clip.
      while (static_cast<int64_t>(pixels.size()) < T) pixels.push_back(pixels.back());
      if (side < S || flip)
        for (auto& p : pixels) p = crop_and_flip(p, S, x0, y0, side, flip);
      double grey = 0;  // contrast pivots on the clip's mean grey level, as torchvision's adjust_contrast
      if (contrast != 1.0f) {
        for (const auto& p : pixels)
          for (int64_t i = 0; i < S * S; ++i) grey += 0.299 * p[3 * i] + 0.587 * p[3 * i + 1] + 0.114 * p[3 * i + 2];
        grey /= 255.0 * static_cast<double>(T * S * S);
      }
      for (int64_t t = 0; t < T; ++t)
        for (int ch = 0; ch < 3; ++ch) {
          float* dst = out + (ch * T + t) * S * S;
          const uint8_t* src = pixels[t].data();
          const float m = config.mean[ch], inv = 1.0f / config.std[ch];
          for (int64_t i = 0; i < S * S; ++i) {
            float x = src[3 * i + ch] * (1.0f / 255.0f) * brightness;
            if (contrast != 1.0f) x = static_cast<float>((x - grey) * contrast + grey);
            x = std::clamp(x, 0.0f, 1.0f);
            dst[i] = (x - m) * inv;
          }
        }
    }

    // Audio: the clip_samples ending where the clip ends, zeros outside the track.
    const auto track = audio_of(v);
    const AudioSpan span = clip_audio_span(v, end, wc, config.mel.sample_rate);
    std::vector<float> samples(static_cast<size_t>(clip_samples), 0.0f);
    const int64_t shift = span.count - clip_samples;  // the span is clip_samples long except for rounding
    for (int64_t i = 0; i < clip_samples; ++i) {
      const int64_t s = span.first + shift + i;
      if (s >= 0 && s < static_cast<int64_t>(track->size())) samples[i] = (*track)[s];
    }
    if (std::isfinite(config.audio_snr_db)) add_noise(samples, position, c);
    std::vector<float> image = mel.compute(samples.data(), clip_samples);
    const int64_t M = config.mel.n_mels;
    if (training && (config.freq_mask > 0 || config.time_mask > 0)) mask_spectrogram(image, epoch, where);
    std::copy(image.begin(), image.end(), batch.audio.data<float>() + (b * L + c) * M * mel_frames);
  }

  // SpecAugment's frequency and time masking (Park et al. 2019) on one clip's [n_mels, mel_frames] image:
  // a band of adjacent bins and a run of adjacent frames, widths uniform in 0..freq_mask / time_mask and
  // positions uniform, drawn from (seed, epoch, clip). The masked cells take the image's mean rather than
  // 0, which in the paper's normalised dB is an arbitrary level, so the clip's loudness (an arousal cue of
  // SynthAV's voices) stays what it was.
  void mask_spectrogram(std::vector<float>& image, int64_t epoch, uint64_t where) const {
    const int64_t M = config.mel.n_mels, F = mel_frames;
    if (image.empty()) return;
    double mean = 0;
    for (float x : image) mean += x;
    const float fill = static_cast<float>(mean / static_cast<double>(image.size()));
    auto draw = [&](int k) { return unit(config.seed, kSpecMaskDomain, static_cast<uint64_t>(epoch), 4 * where + k); };
    // A width in 0..most and a first index such that the run fits in n.
    auto run = [&](int64_t most, int64_t n, int k) {
      const int64_t width = std::min<int64_t>(n, static_cast<int64_t>(draw(k) * static_cast<double>(most + 1)));
      const int64_t first = std::min<int64_t>(n - width, static_cast<int64_t>(draw(k + 1) * (n - width + 1)));
      return std::pair<int64_t, int64_t>{first, first + width};
    };
    if (config.freq_mask > 0) {
      const auto [lo, hi] = run(config.freq_mask, M, 0);
      for (int64_t m = lo; m < hi; ++m) std::fill(image.begin() + m * F, image.begin() + (m + 1) * F, fill);
    }
    if (config.time_mask > 0) {
      const auto [lo, hi] = run(config.time_mask, F, 2);
      for (int64_t m = 0; m < M; ++m) std::fill(image.begin() + m * F + lo, image.begin() + m * F + hi, fill);
    }
  }

  // White Gaussian noise at config.audio_snr_db below the clip's own power (evaluation under noise), drawn
  // from (seed, position, clip) so every run hears the same noise. A silent clip stays silent.
  void add_noise(std::vector<float>& samples, int64_t position, int clip) const {
    double power = 0;
    for (float s : samples) power += static_cast<double>(s) * s / static_cast<double>(samples.size());
    if (power <= 0) return;
    const double sigma = std::sqrt(power / std::pow(10.0, config.audio_snr_db / 10.0));
    const uint64_t where = static_cast<uint64_t>(position * config.windows.clips + clip);
    for (size_t i = 0; i < samples.size(); i += 2) {
      const double u1 = unit(config.seed, kNoiseDomain, where, i), u2 = unit(config.seed, kNoiseDomain, where, i + 1);
      const double r = std::sqrt(-2.0 * std::log(1.0 - u1)), t = 6.283185307179586 * u2;
      samples[i] += static_cast<float>(sigma * r * std::cos(t));
      if (i + 1 < samples.size()) samples[i + 1] += static_cast<float>(sigma * r * std::sin(t));
    }
  }

  // The side x side square at (x0, y0) of an S x S RGB frame, resized back to S x S, mirrored if asked.
  static std::vector<uint8_t> crop_and_flip(const std::vector<uint8_t>& rgb, int64_t S, int64_t x0, int64_t y0,
                                            int64_t side, bool flip) {
    Image img;
    img.width = img.height = static_cast<int>(side);
    img.rgb.resize(static_cast<size_t>(side * side * 3));
    for (int64_t y = 0; y < side; ++y)
      for (int64_t x = 0; x < side; ++x)
        for (int ch = 0; ch < 3; ++ch)
          img.rgb[(y * side + x) * 3 + ch] = rgb[((y0 + y) * S + (flip ? x0 + side - 1 - x : x0 + x)) * 3 + ch];
    if (side != S) img = resize_image(img, static_cast<int>(S), static_cast<int>(S));
    return std::move(img.rgb);
  }

  // Replaces the batch's tensors by device tensors that the uploader fills.
  cuda::Upload to_device(Batch& batch) {
    std::vector<cuda::Uploader::Part> parts;
    std::vector<Tensor> host;  // the sources, alive until upload() has packed them
    for (Tensor* t : {&batch.video, &batch.audio, &batch.labels, &batch.mask}) {
      host.push_back(*t);
      *t = Tensor::empty(t->shape(), t->dtype(), config.device);
      parts.push_back(
          {t->raw_data(), host.back().raw_data(), static_cast<size_t>(t->numel()) * dtype_size(t->dtype())});
    }
    return uploader->upload(parts);
  }

  Pending build(int64_t k, int64_t e, const std::vector<int64_t>& order, const LogMel& mel) {
    const int64_t first = k * config.batch_size;
    const int64_t B = std::min<int64_t>(config.batch_size, static_cast<int64_t>(windows.size()) - first);
    const int64_t L = config.windows.clips, T = config.windows.frames_per_clip, S = config.image_size;
    Pending out;
    Batch& batch = out.batch;
    batch.epoch = e;
    batch.index = k;
    batch.video = Tensor::empty({B, L, 3, T, S, S});
    batch.audio = Tensor::empty({B, L, 1, config.mel.n_mels, mel_frames});
    batch.labels = Tensor::empty({B, L, 2});
    batch.mask = Tensor::empty({B, L}, kBool);
    batch.frame_ids = Tensor::empty({B, L}, kInt64);
    for (int64_t b = 0; b < B; ++b) {
      const Window& w = windows[order[first + b]];
      batch.video_index.push_back(w.video);
      for (int c = 0; c < L; ++c) fill_clip(batch, b, c, w, first + b, mel);
    }
    // frame_ids stay on the host: only the scorer reads them, there.
    if (config.device.is_cuda()) out.upload = to_device(batch);
    std::lock_guard<std::mutex> lock(mutex);
    stats.clips += B * L;
    return out;
  }

  void worker() {
    const LogMel mel(config.mel);  // per thread: the FFT plan keeps scratch space
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      changed.wait(lock,
                   [&] { return stopping || (next_assign < end && next_assign < next_deliver + config.prefetch); });
      if (stopping) return;
      const int64_t k = next_assign++, e = epoch;
      const uint64_t gen = generation;
      const auto ord = order;
      lock.unlock();
      Pending batch;
      std::exception_ptr error;
      try {
        batch = build(k, e, *ord, mel);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (gen != generation) {  // the epoch was restarted meanwhile: drop the batch, unlocked, since
        lock.unlock();          // dropping it may wait for its upload
        batch = Pending();
        lock.lock();
        continue;
      }
      if (error)
        failed[k] = error;
      else
        ready[k] = std::move(batch);
      changed.notify_all();
    }
  }
};

Loader::Loader(const Dataset& dataset, LoaderConfig config)
    : impl_(std::make_unique<Impl>(dataset, std::move(config))) {
  for (int i = 0; i < impl_->config.workers; ++i) impl_->threads.emplace_back([this] { impl_->worker(); });
  start_epoch(0);
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->changed.notify_all();
  for (auto& t : impl_->threads) t.join();
}

int64_t Loader::windows() const { return static_cast<int64_t>(impl_->windows.size()); }
int64_t Loader::batches() const { return impl_->batches(); }

void Loader::start_epoch(int64_t epoch, int64_t first) {
  MINIDL_CHECK(epoch >= 0 && first >= 0 && first <= batches(), "loader: cannot start epoch ", epoch, " at batch ",
               first, " of ", batches());
  std::map<int64_t, Pending> dropped;  // destroyed after the lock is released: each may wait for its upload
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->generation;
  dropped.swap(impl_->ready);
  impl_->failed.clear();
  impl_->epoch = epoch;
  impl_->order = impl_->make_order(epoch);
  impl_->next_assign = impl_->next_deliver = first;
  impl_->end = impl_->batches();
  impl_->changed.notify_all();
}

bool Loader::next(Batch& batch) {
  Impl& d = *impl_;
  std::unique_lock<std::mutex> lock(d.mutex);
  if (d.next_deliver >= d.end) return false;
  const int64_t k = d.next_deliver;
  if (d.threads.empty()) {  // no workers: build here
    d.next_assign = k + 1;
    const int64_t e = d.epoch;
    const auto ord = d.order;
    lock.unlock();
    const LogMel mel(d.config.mel);
    Pending p = d.build(k, e, *ord, mel);
    p.upload.wait_on_current_stream();
    batch = std::move(p.batch);
    lock.lock();
    ++d.next_deliver;
    return true;
  }
  d.changed.wait(lock, [&] { return d.ready.count(k) || d.failed.count(k); });
  if (auto it = d.failed.find(k); it != d.failed.end()) std::rethrow_exception(it->second);
  Pending p = std::move(d.ready[k]);
  d.ready.erase(k);
  ++d.next_deliver;
  d.changed.notify_all();
  lock.unlock();
  p.upload.wait_on_current_stream();  // the consumer's kernels on this batch come after its copy
  batch = std::move(p.batch);
  return true;
}

LoaderStats Loader::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  LoaderStats s = impl_->stats;
  s.cache_hits = impl_->cache.hits();
  return s;
}

}  // namespace minidl::data
