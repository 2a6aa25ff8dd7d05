#include "models/study_tools.h"

#include <filesystem>
#include <sstream>

#include "autograd/error.h"
#include "autograd/graph_dot.h"
#include "data/file_io.h"
#include "layers/module.h"

namespace minidl::models {
namespace fs = std::filesystem;

namespace {
void write_text(const std::string& path, const std::string& text) {
  data::write_file_atomically(path, std::vector<uint8_t>(text.begin(), text.end()), "train");
}
}  // namespace

StudyTools::StudyTools(StudyOptions options, std::string run_dir, bool detect_anomaly,
                       std::function<void(const std::string&)> log)
    : options_(std::move(options)), run_dir_(std::move(run_dir)), log_(std::move(log)) {
  MINIDL_CHECK(options_.profile_steps >= 0 && options_.profile_warmup >= 0,
               "train: profile_steps and profile_warmup must be 0 or more, got ", options_.profile_steps, " and ",
               options_.profile_warmup);
  if (detect_anomaly) {
    anomaly_ = std::make_unique<DetectAnomalyGuard>();
    if (log_) log_("anomaly detection is on: every op's outputs and gradients are checked for NaN and Inf (slow)");
  }
}

StudyTools::~StudyTools() = default;

void StudyTools::before_step() {
  if (options_.profile_steps > 0 && !profiler_ && steps_ == options_.profile_warmup && profiled_ == 0)
    profiler_ = std::make_unique<profiler::Profiler>();
}

void StudyTools::after_forward(const Tensor& loss, const nn::Module& model) {
  if (graph_drawn_ || options_.graph.empty()) return;
  graph_drawn_ = true;
  const std::string wrote =
      write_graph(options_.graph, loss, {.names = model.named_parameters(), .title = "minidl: one training step"});
  if (log_) log_("the first step's autograd graph: " + wrote);
}

void StudyTools::after_step() {
  ++steps_;
  if (!profiler_) return;
  if (++profiled_ == options_.profile_steps) write_profile();
}

void StudyTools::finish() {
  if (!profiler_) return;
  if (log_)
    log_("training ended after " + std::to_string(profiled_) + " of the " + std::to_string(options_.profile_steps) +
         " profiled steps; writing what was recorded");
  write_profile();
}

void StudyTools::write_profile() {
  profiler_->stop();
  const std::string table = (fs::path(run_dir_) / "profile.txt").string();
  const std::string trace = (fs::path(run_dir_) / "profile.trace.json").string();
  if (profiled_ > 0) {
    write_text(table, profiler_->report());
    write_text(trace, profiler_->chrome_trace());
    if (log_) {
      std::ostringstream os;
      os << "profiled " << profiled_ << " steps after " << options_.profile_warmup << ": " << table << " and " << trace
         << " (open it in https://ui.perfetto.dev); the largest ops:";
      const auto rows = profiler_->op_rows();
      for (size_t i = 0; i < rows.size() && i < 5; ++i) {
        char line[160];
        std::snprintf(line, sizeof line, "\n  %-26s %-9s %8.2f ms per step (%.1f%%)", rows[i].name.c_str(),
                      rows[i].pass.c_str(), rows[i].self_us / 1e3, 100 * rows[i].self_us / profiler_->step_us());
        os << line;
      }
      log_(os.str());
    }
  }
  profiler_.reset();
}

}  // namespace minidl::models
