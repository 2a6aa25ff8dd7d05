// Predicts valence and arousal for every frame of one video, in the ABAW results format.
//
//   predict --run DIR --frames DIR [--wav FILE] [--timestamps FILE] [--fps 30] [--checkpoint best|last|FILE]
//           [--device cpu|cuda[:N]] [--out FILE] [--raw]
//
// The frames folder holds 00001.jpg, 00002.jpg, ... (missing numbers are frames without a face); the video
// has as many frames as the highest number (or as the timestamps file, when given). Without --wav the
// model hears silence. Output, to --out or standard output: a "valence,arousal" header, then one
// "%.5f,%.5f" line per frame, clipped to [-1, 1] and smoothed as in scoring (20 frames valence, 50
// arousal) unless --raw. Exit status: 0 done, 1 prediction failed, 2 bad command line.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "autograd/error.h"
#include "data/affwild2.h"
#include "data/audio.h"
#include "data/file_io.h"
#include "models/emotion_model.h"
#include "models/evaluation.h"
#include "models/trainer.h"

namespace {

int usage(const char* prog, int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: %s --run DIR --frames DIR [--wav FILE] [--timestamps FILE] [--fps 30]\n"
               "          [--checkpoint best|last|FILE] [--device cpu|cuda[:N]] [--out FILE] [--raw]\n"
               "Writes per-frame valence and arousal of one video in the ABAW results format.\n",
               prog);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace minidl;
  using namespace minidl::models;
  std::string run, frames, wav, timestamps, checkpoint = "best", out, device_name = "cpu";
  double fps = 30;
  bool raw = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") return usage(argv[0], 0);
      if (a == "--raw") {
        raw = true;
        continue;
      }
      static const std::set<std::string> options{"--run", "--frames",     "--wav",    "--timestamps",
                                                 "--fps", "--checkpoint", "--device", "--out"};
      if (!options.count(a)) throw std::invalid_argument("unknown argument " + a);
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      const std::string v = argv[++i];
      if (a == "--run") {
        run = v;
      } else if (a == "--frames") {
        frames = v;
      } else if (a == "--wav") {
        wav = v;
      } else if (a == "--timestamps") {
        timestamps = v;
      } else if (a == "--fps") {
        char* end = nullptr;
        fps = std::strtod(v.c_str(), &end);
        if (end != v.c_str() + v.size() || !(fps > 0) || !std::isfinite(fps))
          throw std::invalid_argument("--fps needs a positive number, got " + v);
      } else if (a == "--checkpoint") {
        checkpoint = v;
      } else if (a == "--device") {
        device_name = v;
      } else if (a == "--out") {
        out = v;
      } else {
        throw std::invalid_argument("unknown argument " + a);
      }
    }
    if (run.empty() || frames.empty()) throw std::invalid_argument("--run DIR and --frames DIR are required");
    if (const std::string why = device_unavailable(parse_device(device_name)); !why.empty())
      throw std::invalid_argument("--device " + device_name + ": " + why);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "predict: %s\n", e.what());
    return usage(argv[0], 2);
  }
  try {
    const Device device = parse_device(device_name);
    const data::VideoRecord video = data::read_video_folder(frames, wav, fps, timestamps);
    const auto missing = std::count(video.has_image.begin(), video.has_image.end(), 0);
    if (missing > 0)
      std::fprintf(stderr,
                   "predict: warning: frames without an image in %s: %lld of %lld; their clips are made of "
                   "the frames near them that have one\n",
                   frames.c_str(), static_cast<long long>(missing), static_cast<long long>(video.num_frames()));
    if (!timestamps.empty() && std::filesystem::exists(video.frame_path(video.num_frames() + 1)))
      std::fprintf(stderr, "predict: warning: %s holds frames after the %lld that %s lists; they are not predicted\n",
                   frames.c_str(), static_cast<long long>(video.num_frames()), timestamps.c_str());
    if (!wav.empty()) {  // a track much shorter than the video leaves its later frames to silence
      const double audio_s = data::read_wav(wav).seconds();
      const double video_s = video.frame_start_s(video.num_frames() + 1);
      if (audio_s + 1.0 < video_s)
        std::fprintf(stderr,
                     "predict: warning: %s lasts %.1f s, the video %.1f s; the frames after the audio's end are "
                     "predicted with silence\n",
                     wav.c_str(), audio_s, video_s);
    }
    TrainConfig config;
    auto model = load_run_model(run, checkpoint, &config);
    if (device.is_cuda()) model->to(device);
    data::LoaderConfig loader = loader_config(config.model);
    loader.batch_size = static_cast<int>(config.batch_size);
    loader.workers = config.workers;
    const FramePredictions p = predict_video(*model, video, loader, device, !raw);
    std::string text = "valence,arousal\n";
    char line[64];
    for (size_t i = 0; i < p.valence.size(); ++i) {
      std::snprintf(line, sizeof line, "%.5f,%.5f\n", p.valence[i], p.arousal[i]);
      text += line;
    }
    if (out.empty()) {
      std::fputs(text.c_str(), stdout);
    } else {
      data::write_file_atomically(out, std::vector<uint8_t>(text.begin(), text.end()), "predict");
      std::fprintf(stderr, "wrote %zu frames of %s to %s\n", p.valence.size(), video.name.c_str(), out.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "predict: %s\n", e.what());
    return 1;
  }
  return 0;
}
