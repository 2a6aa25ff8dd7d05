// Scores a trained run the paper's way (MODEL.md §4) under several test-time conditions.
//
//   evaluate --run DIR [--checkpoint best|last|FILE] [--split Test_Set|Validation_Set|Train_Set]
//            [--data DIR] [--conditions clean,no_audio,no_video,snr:10,snr:0,occlusion:0.5]
//            [--device cpu|cuda[:N]] [--json FILE]
//
// Conditions (models/evaluation.h): clean; no_audio (every clip hears silence) and no_video (every frame
// is the data set's mean colour), which show whether the fusion survives a missing modality; snr:S (white
// noise S dB below each clip's power); occlusion:F (the middle fraction F of every frame's area hidden).
// Prints one row per condition as it finishes (pooled CCC raw and smoothed), then the per-video table of
// the clean run (or of the first condition), and writes everything as JSON with --json.
// Exit status: 0 done, 1 evaluation failed (a missing run, data folder or checkpoint), 2 bad command line.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "data/affwild2.h"
#include "models/emotion_model.h"
#include "models/evaluation.h"
#include "models/trainer.h"

namespace {

using namespace minidl;
using namespace minidl::models;

int usage(const char* prog, int code) {
  std::fprintf(
      code ? stderr : stdout,
      "usage: %s --run DIR [--checkpoint best|last|FILE] [--split Test_Set|Validation_Set|Train_Set] [--data DIR]\n"
      "          [--conditions clean,no_audio,no_video,snr:10,snr:0,occlusion:0.5] [--device cpu|cuda[:N]]\n"
      "          [--json FILE]\n"
      "Scores a trained run: pooled CCC per dimension, raw and smoothed, under each condition.\n",
      prog);
  return code;
}

std::vector<Condition> parse_conditions(const std::string& list) {
  std::vector<Condition> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(parse_condition(item));
  MINIDL_CHECK(!out.empty(), "no conditions given");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string run, checkpoint = "best", split = "Test_Set", data_dir, json_path, device_name = "cpu";
  std::vector<Condition> conditions;
  try {
    std::string list = "clean,no_audio,no_video,snr:10,snr:0,occlusion:0.5";
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") return usage(argv[0], 0);
      static const std::set<std::string> options{"--run",        "--checkpoint", "--split", "--data",
                                                 "--conditions", "--device",     "--json"};
      if (!options.count(a)) throw std::invalid_argument("unknown argument " + a);
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      const std::string v = argv[++i];
      if (a == "--run")
        run = v;
      else if (a == "--checkpoint")
        checkpoint = v;
      else if (a == "--split")
        split = v;
      else if (a == "--data")
        data_dir = v;
      else if (a == "--conditions")
        list = v;
      else if (a == "--device")
        device_name = v;
      else if (a == "--json")
        json_path = v;
      else
        throw std::invalid_argument("unknown argument " + a);
    }
    if (run.empty()) throw std::invalid_argument("--run DIR is required");
    conditions = parse_conditions(list);  // every condition is checked before any evaluation starts
    MINIDL_CHECK(split == "Train_Set" || split == "Validation_Set" || split == "Test_Set", "--split must be ",
                 "Train_Set, Validation_Set or Test_Set, got '", split, "'");
    if (const std::string why = device_unavailable(parse_device(device_name)); !why.empty())
      throw std::invalid_argument("--device " + device_name + ": " + why);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evaluate: %s\n", e.what());
    return usage(argv[0], 2);
  }
  try {
    const Device device = parse_device(device_name);
    if (!json_path.empty()) {  // found out now rather than after every condition has run
      namespace fs = std::filesystem;
      const fs::path dir = fs::path(json_path).has_parent_path() ? fs::path(json_path).parent_path() : fs::path(".");
      std::error_code ec;
      MINIDL_CHECK(fs::is_directory(dir, ec) && !fs::is_directory(json_path, ec) && access(dir.c_str(), W_OK) == 0,
                   "cannot write the report to ", json_path,
                   fs::is_directory(json_path, ec) ? ": it is a folder"
                   : fs::is_directory(dir, ec)     ? ": its folder is not writable"
                                                   : ": its folder does not exist");
    }
    TrainConfig config;
    auto model = load_run_model(run, checkpoint, &config);
    if (device.is_cuda()) model->to(device);
    const std::string root = data_dir.empty() ? run_data_root(config) : data_dir;
    std::error_code ec;
    MINIDL_CHECK(!data_dir.empty() || std::filesystem::is_directory(root, ec), "the run's data folder '", root,
                 "' (its config.json's ", config.data.empty() ? "data_cache" : "data",
                 std::filesystem::path(root).is_relative() ? ", relative to the folder evaluate runs in" : "",
                 ") is not there; name the data with --data DIR");
    const data::Dataset ds = data::read_affwild2({.root = root, .split = split});
    data::LoaderConfig loader = loader_config(config.model);
    loader.batch_size = static_cast<int>(config.batch_size);
    loader.workers = config.workers;
    const std::string split_dir = root + "/" + data::AffWild2Layout{}.annotations_dir + "/" + split;
    std::printf("%s (%s preset, %s fusion, %s checkpoint) on %s: %zu videos, %lld annotated frames\n", run.c_str(),
                config.model.preset.c_str(), config.model.fusion.c_str(), checkpoint.c_str(), split_dir.c_str(),
                ds.videos.size(), static_cast<long long>(ds.annotated_frames()));
    std::printf("%-16s %9s %9s %9s %9s %9s\n", "condition", "valence", "arousal", "mean", "V smooth", "A smooth");
    std::fflush(stdout);
    nlohmann::json report = {{"run", run}, {"checkpoint", checkpoint}, {"split", split}, {"data", root}};
    std::vector<Scores> all;
    for (const Condition& c : conditions) {
      all.push_back(evaluate_condition(*model, ds, loader, device, c));
      const Scores& s = all.back();
      std::printf("%-16s %9.3f %9.3f %9.3f %9.3f %9.3f\n", c.name.c_str(), s.valence, s.arousal, s.mean(),
                  s.valence_smoothed, s.arousal_smoothed);
      std::fflush(stdout);
      report["conditions"][c.name] = s.to_json();
    }
    size_t shown = 0;
    for (size_t i = 0; i < conditions.size(); ++i)
      if (conditions[i].kind == Condition::Kind::Clean) shown = i;
    std::printf("\n%-32s %7s %9s %9s   (%s, raw)\n", "video", "frames", "valence", "arousal",
                conditions[shown].name.c_str());
    for (const auto& v : all[shown].videos)
      std::printf("%-32s %7lld %9.3f %9.3f\n", v.name.c_str(), static_cast<long long>(v.frames), v.valence, v.arousal);
    if (!json_path.empty()) {
      std::ofstream out(json_path);
      out << report.dump(2) << "\n";
      MINIDL_CHECK(out.good(), "cannot write ", json_path);
      std::printf("\nwrote %s\n", json_path.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evaluate: %s\n", e.what());
    return 1;
  }
  return 0;
}
