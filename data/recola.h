// The RECOLA layout (MODEL.md §5), per subject:
//   <root>/<frames_dir>/<subject>/<%05d>.jpg
//   <root>/<audio_dir>/<subject>.wav
//   <root>/<ratings_dir>/valence/<subject>.csv and .../arousal/<subject>.csv: gold-standard ratings at
//   25 fps, one row per frame, the value in column value_column (an optional non-numeric header row is
//   skipped; fields separated by ',' or ';')
// Annotators react late, so labels are shifted earlier by a delay per dimension (the authors used 58
// frames for valence and 68 for arousal): frame t gets the rating of row t + delay; the last frames,
// whose shifted rating does not exist, are not annotated.
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"

namespace minidl::data {

struct RecolaLayout {
  std::string root;
  std::vector<std::string> subjects;  // empty: every subject that has a valence rating file
  std::string frames_dir = "frames";
  std::string audio_dir = "audio";
  std::string ratings_dir = "ratings_gold_standard";
  int value_column = 0;
  double fps = 25.0;
  int delay_valence = 58;
  int delay_arousal = 68;
  bool skip_bad_videos = false;  // as in AffWild2Layout
};

Dataset read_recola(const RecolaLayout& layout);

}  // namespace minidl::data
