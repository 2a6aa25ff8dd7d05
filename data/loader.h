// The batched, prefetching loader: windows of clips (windows.h) -> decoded, resized, normalised frames and
// log-mel images (logmel.h), grouped into batches of tensors, prepared by worker threads ahead of use.
//
// Determinism: which windows form batch k of epoch e, and every random choice made for them (shuffling,
// augmentation), depend only on (seed, e, k): they are drawn from the Philox stream, never from a shared
// generator, so the batches are the same with any number of workers, and resuming at batch k of epoch e
// continues exactly.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/device.h"
#include "autograd/tensor.h"
#include "data/dataset.h"
#include "data/logmel.h"
#include "data/windows.h"

namespace minidl::data {

struct LoaderConfig {
  int batch_size = 8;
  bool evaluation = false;  // evaluation windows, no shuffling, no augmentation (else training windows)
  bool shuffle = true;
  bool drop_last = false;  // drop a final partial batch
  uint64_t seed = 0;
  int workers = 2;                 // decoding threads; 0 decodes on the calling thread
  int prefetch = 4;                // batches prepared ahead of the consumer (bounded queue)
  int image_size = 112;            // frames are resized to image_size x image_size
  bool augment = false;            // training only: brightness and contrast factors from U[0.8, 1.2] per clip
  bool flip = false;               // training only: mirror a clip left-right with probability 1/2
  float crop = 1.0f;               // training only, in (0, 1]: below 1, each clip shows a random square of side
                                   // U[crop, 1] times the frame's, resized back to image_size
  int freq_mask = 0;               // training only, SpecAugment: a band of U{0..freq_mask} adjacent mel bins of
                                   // each clip's log-mel image is set to the image's mean
  int time_mask = 0;               // training only, likewise a run of U{0..time_mask} adjacent frames
  double audio_snr_db = INFINITY;  // evaluation under noise: white noise this many dB below each clip's power
  Device device = Device::cpu();   // where batches are delivered; on a GPU workers upload them on a
                                   // copy stream, overlapping the consumer's kernels (cuda::Uploader)
  bool skip_bad_files = false;     // a corrupt frame or wav: error naming it (false) or a counted warning,
                                   // the frame treated as missing / the audio as silent (true)
  std::array<float, 3> mean{0.43216f, 0.394666f, 0.37645f};  // per RGB channel, after / 255
  std::array<float, 3> std{0.22803f, 0.22145f, 0.216989f};
  WindowConfig windows;
  LogMelConfig mel;       // mel.sample_rate is the model's rate: wavs are resampled to it
  std::string cache_dir;  // "" = no cache; else decoded, resized frames and resampled audio per video
};

struct Batch {
  Tensor video;                      // [B, L, 3, T, H, W] float32, normalised per channel
  Tensor audio;                      // [B, L, 1, n_mels, frames] float32 log-mel images
  Tensor labels;                     // [B, L, 2] float32: valence, arousal of each clip's end frame (0 where masked)
  Tensor mask;                       // [B, L] bool: the clip ends at an annotated frame of its video
  Tensor frame_ids;                  // [B, L] int64: 1-based end frame of each clip (always on the CPU)
  std::vector<int32_t> video_index;  // [B]: index into Dataset::videos
  int64_t epoch = 0, index = 0;      // which batch of which epoch this is
};

struct LoaderStats {
  int64_t clips = 0;                  // clips assembled
  int64_t cache_hits = 0;             // videos whose decoded data came from the cache
  int64_t skipped_files = 0;          // bad files tolerated because skip_bad_files is on
  std::vector<std::string> warnings;  // one line per tolerated file (path and reason)
};

class Loader {
 public:
  // Keeps a reference to the dataset: it must outlive the loader. A bad config is a minidl::Error naming
  // the field.
  Loader(const Dataset& dataset, LoaderConfig config);
  ~Loader();  // stops and joins the workers
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t windows() const;  // windows per epoch
  int64_t batches() const;  // batches per epoch
  // Starts (or restarts) epoch `epoch` at batch `first` (0 for a fresh epoch; a resumed run passes the
  // batch it stopped at). A new loader is at epoch 0, batch 0.
  void start_epoch(int64_t epoch, int64_t first = 0);
  // The next batch of the current epoch; false when the epoch is over. An error in a worker (a corrupt
  // file with skip_bad_files off) is rethrown here, naming the file. On a GPU the calling thread's
  // current stream is made to wait for the batch's upload; the batch's memory belongs to the device's
  // shared stream, so a consumer working under a cuda::StreamGuard must synchronise that stream before
  // it lets the batch go.
  bool next(Batch& batch);
  LoaderStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace minidl::data
