// synthav: generates the SynthAV audio-visual emotion data set (data/synthav.h, docs/data.md).
//
//   synthav [--out DIR] [--seed N] [--set key=value ...] [--threads N] [--print-config]
//
// Exit status: 0 generated (or config printed), 1 generation failed (the folder exists, a disk error, an
// interrupt), 2 the command line is wrong.
#include "data/synthav.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/error.h"

namespace fs = std::filesystem;
using minidl::data::SynthAvConfig;

namespace {

constexpr const char* kDefaultOut = "synthav-data";

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: synthav [--out DIR] [--seed N] [--set key=value ...] [--threads N] [--print-config]\n"
               "\n"
               "Generates SynthAV, a synthetic audio-visual emotion data set in the Aff-Wild2 layout, into DIR\n"
               "(default %s), which must not exist yet. The same config gives the same bytes.\n"
               "\n"
               "  --out DIR          output folder\n"
               "  --seed N           random seed (same as --set seed=N)\n"
               "  --set key=value    change a config value; several may follow one --set. Keys:\n"
               "                     seed, train_identities, validation_identities, test_identities,\n"
               "                     videos_per_identity, min_seconds, max_seconds, fps, image_size,\n"
               "                     sample_rate, jpeg_quality\n"
               "  --threads N        worker threads (default: every core); does not change the output\n"
               "  --print-config     print the config as JSON and exit\n"
               "  -h, --help         this text\n",
               kDefaultOut);
}

// The library's messages already start with "synthav: ".
std::string unprefixed(const std::string& message) {
  return message.rfind("synthav: ", 0) == 0 ? message.substr(9) : message;
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "synthav: %s\n(run synthav --help for usage)\n", unprefixed(message).c_str());
  std::exit(2);
}

std::atomic<bool> g_interrupted{false};
void on_signal(int) { g_interrupted = true; }

// A --set value as JSON: numbers stay numbers, anything else becomes a string (so the config reader can
// say which key wanted a number).
nlohmann::json parse_value(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_discarded() && (j.is_number() || j.is_boolean())) return j;
  return text;
}

std::string human_bytes(uint64_t bytes) {
  char buf[64];
  if (bytes >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(1ull << 30));
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / double(1ull << 20));
  return buf;
}

// Apparent size of every file under dir, and what they occupy on disk (whole blocks).
void folder_size(const fs::path& dir, uint64_t& apparent, uint64_t& on_disk, uint64_t& files) {
  apparent = on_disk = files = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    apparent += static_cast<uint64_t>(st.st_size);
    on_disk += static_cast<uint64_t>(st.st_blocks) * 512;
    ++files;
  }
}

std::string clock_text(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

// A bar redrawn in place on a terminal; a line per tenth elsewhere (logs, pipes).
class Progress {
 public:
  Progress() : tty_(::isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}
  void operator()(int64_t done, int64_t total) {
    if (g_interrupted) throw minidl::Error("synthav: interrupted");
    const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta = frac > 0.02 ? elapsed * (1 - frac) / frac : 0;
    if (tty_) {
      constexpr int kWidth = 30;
      const int fill = static_cast<int>(frac * kWidth);
      std::string bar(static_cast<size_t>(fill), '#');
      bar.resize(kWidth, '.');
      std::fprintf(stderr, "\r[%s] %3d%%  %lld/%lld frames  %s elapsed, %s left ", bar.c_str(),
                   static_cast<int>(frac * 100), static_cast<long long>(done), static_cast<long long>(total),
                   clock_text(elapsed).c_str(), frac > 0.02 ? clock_text(eta).c_str() : "--:--");
      std::fflush(stderr);
      drawn_ = true;
    } else {
      const int tenth = static_cast<int>(frac * 10);
      if (tenth > last_tenth_) {
        last_tenth_ = tenth;
        std::fprintf(stderr, "synthav: %3d%%  %lld/%lld frames  %s elapsed\n", tenth * 10, static_cast<long long>(done),
                     static_cast<long long>(total), clock_text(elapsed).c_str());
      }
    }
  }
  void finish() {
    if (drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }

 private:
  bool tty_;
  bool drawn_ = false;
  int last_tenth_ = -1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string out = kDefaultOut;
  std::vector<std::pair<std::string, std::string>> sets;  // in command-line order
  int threads = 0;
  bool print_config = false;

  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* what) -> std::string {
      if (i + 1 >= argc) usage_error(arg + " needs " + what);
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    } else if (arg == "--out") {
      out = value("a folder");
    } else if (arg == "--seed") {
      sets.emplace_back("seed", value("a number"));
    } else if (arg == "--threads") {
      const std::string v = value("a number");
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 0 || n > 4096)
        usage_error("--threads wants a number in [0, 4096], got '" + v + "'");
      threads = static_cast<int>(n);
    } else if (arg == "--set") {
      int taken = 0;
      while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        const std::string kv = argv[++i];
        const size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) usage_error("--set wants key=value, got '" + kv + "'");
        sets.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
        ++taken;
      }
      if (taken == 0) usage_error("--set needs at least one key=value");
    } else if (arg == "--print-config") {
      print_config = true;
    } else {
      usage_error("unknown argument '" + arg + "'");
    }
  }

  SynthAvConfig config;
  try {
    nlohmann::json j = nlohmann::json::parse(minidl::data::synthav_config_json(config));
    for (const auto& [key, text] : sets) j[key] = parse_value(text);
    config = minidl::data::synthav_config_from_json(j.dump());
  } catch (const minidl::Error& e) {
    usage_error(e.what());
  }
  config.threads = threads;
  if (print_config) {
    std::printf("%s\n", minidl::data::synthav_config_json(config).c_str());
    return 0;
  }

  std::error_code ec;
  if (fs::exists(fs::symlink_status(out, ec))) {
    if (minidl::data::synthav_ready(out, config))
      std::fprintf(stderr,
                   "synthav: %s already exists (it holds a complete SynthAV set made with this config); nothing "
                   "was written\n",
                   out.c_str());
    else
      std::fprintf(stderr,
                   "synthav: %s already exists and is not a SynthAV set with this config; remove it or "
                   "choose another --out\n",
                   out.c_str());
    return 1;
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::fprintf(stderr,
               "synthav: generating into %s (seed %llu, %d+%d+%d identities x %d videos, %g-%g s, %dpx, %d Hz)\n",
               out.c_str(), static_cast<unsigned long long>(config.seed), config.train_identities,
               config.validation_identities, config.test_identities, config.videos_per_identity, config.min_seconds,
               config.max_seconds, config.image_size, config.sample_rate);
  Progress progress;
  minidl::data::SynthAvSummary summary;
  try {
    summary = minidl::data::generate_synthav(out, config, [&](int64_t d, int64_t t) { progress(d, t); });
  } catch (const std::exception& e) {
    progress.finish();
    std::fprintf(stderr, "synthav: %s\n", unprefixed(e.what()).c_str());
    if (g_interrupted) std::fprintf(stderr, "synthav: nothing was left behind\n");
    return 1;
  }
  progress.finish();

  uint64_t apparent = 0, on_disk = 0, files = 0;
  folder_size(out, apparent, on_disk, files);
  std::printf("synthav: wrote %s\n", out.c_str());
  std::printf("  videos        %d (%s of video)\n", summary.videos, clock_text(summary.seconds).c_str());
  std::printf("  frames        %lld images\n", static_cast<long long>(summary.frames));
  std::printf("  size          %s in %llu files (%s on disk)\n", human_bytes(apparent).c_str(),
              static_cast<unsigned long long>(files), human_bytes(on_disk).c_str());
  std::printf("  time          %.1f s (%.0f frames/s)\n", summary.elapsed_s,
              summary.elapsed_s > 0 ? static_cast<double>(summary.frames) / summary.elapsed_s : 0.0);
  std::printf("  manifest      %s\n", (fs::path(out) / "manifest.json").c_str());
  return 0;
}
