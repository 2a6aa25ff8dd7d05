// The Aff-Wild2 (ABAW valence-arousal track) layout, MODEL.md §5, which SynthAV also uses:
//   <root>/<frames_dir>/<video>/<%05d>.jpg          frames, 1-based; some missing (no face found)
//   <root>/<annotations_dir>/<split>/<video>.txt    "valence,arousal" header, then one "v,a" line per frame,
//                                                   -5 where a frame is not annotated
//   <root>/<audio_dir>/<base>.wav                   audio; <base>_left and <base>_right share <base>.wav
//   <root>/<timestamps_dir>/<base>_video_ts.txt     optional: one header line, then one time in ms per
//                                                   frame; without it frames are 1 / fps apart
// The number of frames of a video is the number of lines of its timestamps file minus one when there is
// one, else the number of annotation lines.
#pragma once

#include <string>

#include "data/dataset.h"

namespace minidl::data {

struct AffWild2Layout {
  std::string root;
  std::string split = "Train_Set";  // Train_Set, Validation_Set or Test_Set
  std::string frames_dir = "cropped_aligned";
  std::string annotations_dir = "VA_Estimation_Challenge";
  std::string audio_dir = "audio";
  std::string timestamps_dir = "timestamps";
  double fps = 30.0;
  // false: a malformed annotation or timestamps file, or a video without its audio file, is a
  // minidl::Error naming the file (and line). true: that video is skipped and the reason recorded in
  // Dataset::warnings.
  bool skip_bad_videos = false;
};

// Reads the split's videos, sorted by name. A missing root or split folder is an error naming it.
Dataset read_affwild2(const AffWild2Layout& layout);

// One video outside any split, for prediction (apps/predict): a folder of frames named like 00001.jpg
// (1-based; gaps are frames without a face), an optional wav ("" = none: the model hears silence) and
// an optional timestamps file ("" = frames 1 / fps apart). The video is as long as the highest frame
// number, or as the timestamps file when there is one; no frame is annotated. A missing folder or file,
// or a folder without frames, is a minidl::Error naming it.
VideoRecord read_video_folder(const std::string& frames_dir, const std::string& wav_path, double fps = 30.0,
                              const std::string& timestamps_path = "");

// Parses one annotation file's text (for tests and tools): per-frame valence and arousal.
void parse_abaw_annotations(const std::string& text, const std::string& name, std::vector<float>& valence,
                            std::vector<float>& arousal);

// The name of the audio file's base: the video name without a trailing "_left" or "_right".
std::string audio_base_name(const std::string& video);

}  // namespace minidl::data
