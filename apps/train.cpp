// Trains the audio-visual emotion model (README's first command runs this through scripts/train).
//
//   train [--preset tiny|small|paper] [--config FILE] [--set key=value ...] [--device cpu|cuda[:N]]
//         [--seed N] [--out DIR] [--data DIR] [--epochs N] [--resume] [--print-config]
//         [--graph FILE.dot] [--profile-steps N [--profile-warmup N]] [--detect-anomaly]
//
// With no arguments it generates the SynthAV data set if it is missing (data/synthav), trains the tiny
// preset on the CPU (the small preset on the GPU when there is one) into runs/<preset>-<fusion>-<time>,
// evaluates the best epoch on the test split and prints the scores. Every setting and its default:
// --print-config (docs/training.md explains them). Ctrl-C saves a checkpoint and exits; --resume
// continues it exactly, with the settings in the run's config.json.
//
// The study tools (models/study_tools.h): --graph writes the first step's autograd graph (and an SVG
// beside it where Graphviz is installed); --profile-steps N profiles N steps after a warm-up of 2 and
// writes profile.txt and profile.trace.json into the run folder; --detect-anomaly (the detect_anomaly
// setting) stops at the first op that makes a NaN or Inf, naming it.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "apps/cli_args.h"
#include "autograd/device.h"
#include "autograd/error.h"
#include "models/trainer.h"

namespace {

using namespace minidl;
using namespace minidl::models;

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the program at once
  // Only async-signal-safe calls here: write(2), not stdio.
  static const char note[] =
      "\ntrain: stopping at the next step or after the pass under way (Ctrl-C again to quit now)\n";
  [[maybe_unused]] const ssize_t n = write(STDERR_FILENO, note, sizeof note - 1);
}

// Errors from the trainer and the config already name their source ("train: ...", "train config: ...").
void print_error(const char* what) {
  const std::string text = what;
  std::fprintf(stderr, text.rfind("train", 0) == 0 ? "%s\n" : "train: %s\n", what);
}

std::string clock_str(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--";
  const long t = static_cast<long>(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

int usage(const char* prog, int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: %s [--preset tiny|small|paper] [--config FILE] [--set key=value ...] [--device cpu|cuda[:N]]\n"
               "          [--seed N] [--out DIR] [--data DIR] [--epochs N] [--resume] [--print-config]\n"
               "          [--graph FILE.dot] [--profile-steps N [--profile-warmup N]] [--detect-anomaly]\n"
               "Trains the audio-visual emotion model; without arguments on SynthAV: the small preset on the GPU\n"
               "when there is one, otherwise the tiny preset on the CPU. --resume continues the run in --out DIR\n"
               "with the settings in its config.json (--set may change some). --graph writes the first step's\n"
               "autograd graph; --profile-steps N profiles N steps (profile.txt, profile.trace.json in the run\n"
               "folder); --detect-anomaly stops at the first op that makes a NaN or Inf.\n",
               prog);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  TrainConfig config;
  bool resume = false, print_config = false, out_given = false;
  std::vector<std::string> sets;
  StudyOptions study;
  try {
    std::string preset, config_file;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--help" || a == "-h") return usage(argv[0], 0);
      if (a == "--preset")
        preset = value();
      else if (a == "--config")
        config_file = value();
      else if (a == "--set") {
        // One or more key=value assignments, up to the next option.
        sets.push_back(value());
        while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) sets.push_back(argv[++i]);
      } else if (a == "--device")  // string options go in as JSON strings, escaped
        sets.push_back("device=" + nlohmann::json(value()).dump());
      else if (a == "--seed")
        sets.push_back("seed=" + value());
      else if (a == "--out")
        sets.push_back("out=" + nlohmann::json(value()).dump()), out_given = true;
      else if (a == "--data")
        sets.push_back("data=" + nlohmann::json(value()).dump());
      else if (a == "--epochs")
        sets.push_back("epochs=" + value());
      else if (a == "--resume")
        resume = true;
      else if (a == "--graph")
        study.graph = value();
      else if (a == "--profile-steps")
        study.profile_steps = apps::parse_integer(a, value(), 1, 1000000);
      else if (a == "--profile-warmup")
        study.profile_warmup = apps::parse_integer(a, value(), 0, 1000000);
      else if (a == "--detect-anomaly")
        sets.push_back("detect_anomaly=true");
      else if (a == "--print-config")
        print_config = true;
      else
        throw std::invalid_argument("unknown argument " + a);
    }
    bool device_given = false;
    for (const auto& s : sets) {
      out_given |= s.rfind("out=", 0) == 0;
      device_given |= s.rfind("device=", 0) == 0;
    }
    if (resume) {
      // A run continues with the settings it was started with; --set may change some (say, epochs).
      MINIDL_CHECK(out_given, "train --resume: name the run folder with --out DIR");
      MINIDL_CHECK(preset.empty() && config_file.empty(), "train --resume: the run's own config.json holds its ",
                   "settings; --preset and --config do not apply (change a setting with --set key=value)");
      // Only `out` is wanted here: the other assignments are checked against the run's own settings below
      // (applied to the defaults they could fail, e.g. a mask wider than the default preset's mel bins).
      std::string out;
      for (const std::string& a : sets)
        if (a.rfind("out=", 0) == 0) {
          const nlohmann::json v = nlohmann::json::parse(a.substr(4), nullptr, false);
          out = v.is_string() ? v.get<std::string>() : a.substr(4);
        }
      const std::string saved = out + "/config.json";
      std::ifstream in(saved);
      MINIDL_CHECK(in.good(), "train --resume: cannot read ", saved, " (is this a run folder?)");
      const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
      MINIDL_CHECK(!j.is_discarded(), "train --resume: ", saved, " is not valid JSON");
      config = train_config_from_json(j, config);
    }
    nlohmann::json file;
    if (!config_file.empty()) {
      std::error_code ec;
      MINIDL_CHECK(std::filesystem::is_regular_file(config_file, ec), "train: the config file ", config_file,
                   std::filesystem::exists(config_file, ec) ? " is not a regular file" : " does not exist");
      std::ifstream in(config_file);
      MINIDL_CHECK(in.good(), "train: cannot read the config file ", config_file);
      file = nlohmann::json::parse(in, nullptr, false);
      MINIDL_CHECK(!file.is_discarded(), "train: ", config_file, " is not valid JSON");
      device_given |= file.is_object() && file.contains("device");
    }
    // No device named and a real GPU present (the emulator is for tests): the small preset on it (unless a
    // preset or config says which model); otherwise the defaults, tiny on the CPU. --preset is the base
    // that the config file's model keys change.
    const bool gpu_default = !resume && !device_given && cuda_device_count() > 0 && !cuda_emulated();
    if (!preset.empty()) {
      const bool file_preset =
          file.is_object() && file.contains("model") && file["model"].is_object() && file["model"].contains("preset");
      MINIDL_CHECK(!file_preset || file["model"]["preset"] == preset, "train: --preset ", preset,
                   " and the config file's model.preset ", file_preset ? file["model"]["preset"].dump() : "",
                   " disagree; name the preset once");
      config.model = model_preset(preset);
    } else if (gpu_default && config_file.empty()) {
      config.model = model_preset("small");
    }
    if (!config_file.empty()) config = train_config_from_json(file, config);
    if (gpu_default) config.device = "cuda";
    config = apply_overrides(config, sets);
    if (!out_given && !resume) {
      char stamp[32];
      const std::time_t now = std::time(nullptr);
      std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
      config.out = "runs/" + config.model.preset + "-" + config.model.fusion + "-" + stamp;
    }
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "train: %s\n", e.what());
    return usage(argv[0], 2);
  } catch (const std::exception& e) {
    print_error(e.what());
    return 2;
  }
  if (print_config) {
    std::cout << to_json(config).dump(2) << "\n";
    return 0;
  }

  std::signal(SIGINT, on_signal);
  const bool terminal = isatty(fileno(stderr));
  try {
    auto log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
    Trainer trainer(config, resume, log, study);
    std::fprintf(stderr, "training %s (%s fusion, %s temporal) on %s into %s\n", config.model.preset.c_str(),
                 config.model.fusion.c_str(), config.model.temporal.c_str(), config.device.c_str(), config.out.c_str());
    int64_t last_line = -1;
    const int64_t steps_before = trainer.steps();
    const auto records = trainer.run(
        [&](const Progress& p) {
          char line[256];
          std::snprintf(line, sizeof line,
                        "epoch %lld/%lld  step %lld/%lld  loss %.4f  CCC V %.3f A %.3f  lr %.2e  %.0f clips/s  ETA %s",
                        static_cast<long long>(p.epoch + 1), static_cast<long long>(p.epochs),
                        static_cast<long long>(p.batch), static_cast<long long>(p.batches), p.loss, p.ccc_valence,
                        p.ccc_arousal, p.lr, p.clips_per_s, clock_str(p.eta_s).c_str());
          if (terminal) {
            const int width = 24, done = static_cast<int>(width * p.batch / std::max<int64_t>(1, p.batches));
            std::fprintf(stderr, "\r[%s%s] %s   ", std::string(done, '#').c_str(),
                         std::string(width - done, '.').c_str(), line);
            if (p.batch == p.batches) std::fprintf(stderr, "\n");
          } else if (const int64_t tenth = 10 * p.batch / std::max<int64_t>(1, p.batches); tenth != last_line) {
            last_line = tenth;
            std::fprintf(stderr, "%s\n", line);
          }
        },
        &g_stop);
    if (trainer.stopped_by_signal()) return 130;
    if (g_stop) {  // Ctrl-C during the last validation pass: everything is saved; the test pass is not run
      std::fprintf(stderr, "train: stopped; the run is saved in %s%s\n", config.out.c_str(),
                   config.evaluate_test ? " without its test pass (score it with apps/evaluate --run DIR)" : "");
      return 130;
    }
    std::printf("\nRun: %s (metrics.jsonl, curve.svg, best.safetensors)\n", config.out.c_str());
    std::printf("%-28s %9s %9s %9s %9s\n", "", "valence", "arousal", "V smooth", "A smooth");
    double best = -2;
    Scores best_val;
    for (const auto& r : records)
      if (r.validation.mean() > best) best = r.validation.mean(), best_val = r.validation;
    std::printf("%-28s %9.3f %9.3f %9.3f %9.3f\n", "validation (best epoch)", best_val.valence, best_val.arousal,
                best_val.valence_smoothed, best_val.arousal_smoothed);
    const std::string test_file = config.out + "/test_scores.json";
    if (config.evaluate_test && trainer.steps() == steps_before && std::filesystem::exists(test_file)) {
      std::printf("%-28s (nothing trained: %s holds the scores)\n", "test (best weights)", test_file.c_str());
    } else if (config.evaluate_test) {
      const Scores t = trainer.evaluate_best("Test_Set");
      std::printf("%-28s %9.3f %9.3f %9.3f %9.3f\n", "test (best weights)", t.valence, t.arousal, t.valence_smoothed,
                  t.arousal_smoothed);
      std::ofstream(test_file) << t.to_json().dump(2) << "\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\n");
    print_error(e.what());
    return 1;
  }
  return 0;
}
