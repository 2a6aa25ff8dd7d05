#include "models/trainer.h"

#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "autograd/profiler.h"
#include "autograd/safetensors.h"
#include "cuda/kernels.h"
#include "data/affwild2.h"
#include "data/file_io.h"
#include "data/synthav.h"
#include "models/emotion_model.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"

namespace minidl::models {
namespace fs = std::filesystem;
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

namespace {

constexpr const char* kStateFormat = "minidl-train-state-1";

void check_train_config(const TrainConfig& c) {
  validate(c.model);
  MINIDL_CHECK(c.epochs > 0, "train config: epochs must be positive, got ", c.epochs);
  MINIDL_CHECK(c.batch_size > 0 && c.batch_size <= (1 << 20), "train config: batch_size must lie in [1, 2^20], got ",
               c.batch_size);
  MINIDL_CHECK(c.lr > 0 && std::isfinite(c.lr), "train config: lr must be positive, got ", c.lr);
  MINIDL_CHECK(c.weight_decay >= 0 && std::isfinite(c.weight_decay),
               "train config: weight_decay must be 0 or more, got ", c.weight_decay);
  MINIDL_CHECK(c.momentum >= 0 && std::isfinite(c.momentum), "train config: momentum must be 0 or more, got ",
               c.momentum);
  MINIDL_CHECK(!c.nesterov || (c.optimizer == "sgd" && c.momentum > 0),
               "train config: nesterov needs optimizer sgd and momentum > 0, got optimizer \"", c.optimizer,
               "\" and momentum ", c.momentum);
  MINIDL_CHECK(c.warmup_epochs >= 0 && c.warmup_epochs <= 1e6, "train config: warmup_epochs must lie in [0, 1e6], got ",
               c.warmup_epochs);
  MINIDL_CHECK(c.step_size > 0, "train config: step_size must be positive, got ", c.step_size);
  MINIDL_CHECK((c.schedule != "step" && c.schedule != "plateau") || (c.gamma > 0 && c.gamma < 1),
               "train config: gamma (the decay factor of the ", c.schedule, " schedule) must lie in (0, 1), got ",
               c.gamma);
  MINIDL_CHECK(std::isfinite(c.grad_clip), "train config: grad_clip must be a finite number, got ", c.grad_clip);
  MINIDL_CHECK(c.max_steps == -1 || c.max_steps > 0, "train config: max_steps must be -1 (no limit) or positive, got ",
               c.max_steps);
  MINIDL_CHECK(c.time_limit_minutes >= 0 && std::isfinite(c.time_limit_minutes),
               "train config: time_limit_minutes must be 0 (no limit) or more, got ", c.time_limit_minutes);
  MINIDL_CHECK(c.optimizer == "sgd" || c.optimizer == "adam" || c.optimizer == "adamw",
               "train config: optimizer must be sgd, adam or adamw, got \"", c.optimizer, "\"");
  MINIDL_CHECK(c.schedule == "constant" || c.schedule == "step" || c.schedule == "cosine" || c.schedule == "plateau",
               "train config: schedule must be constant, step, cosine or plateau, got \"", c.schedule, "\"");
  MINIDL_CHECK(c.workers >= 0, "train config: workers must be 0 or more, got ", c.workers);
  MINIDL_CHECK(c.crop > 0 && c.crop <= 1, "train config: crop must lie in (0, 1], got ", c.crop);
  MINIDL_CHECK(c.audio_freq_mask >= 0 && c.audio_freq_mask <= c.model.mel_bins,
               "train config: audio_freq_mask must lie in [0, model.mel_bins = ", c.model.mel_bins, "], got ",
               c.audio_freq_mask);
  MINIDL_CHECK(c.audio_time_mask >= 0, "train config: audio_time_mask must be 0 or more, got ", c.audio_time_mask);
  MINIDL_CHECK(!c.out.empty(), "train config: out (the run folder) must not be empty");
  MINIDL_CHECK(c.math == "fp32" || c.math == "tf32" || c.math == "tf32-all",
               "train config: math must be fp32, tf32 or tf32-all, got \"", c.math, "\"");
  parse_device(c.device);
}

}  // namespace

// ---- config <-> JSON --------------------------------------------------------------------------------
nlohmann::json to_json(const TrainConfig& c) {
  return {{"model", to_json(c.model)},
          {"data", c.data},
          {"data_cache", c.data_cache},
          {"out", c.out},
          {"epochs", c.epochs},
          {"batch_size", c.batch_size},
          {"optimizer", c.optimizer},
          {"lr", c.lr},
          {"weight_decay", c.weight_decay},
          {"momentum", c.momentum},
          {"nesterov", c.nesterov},
          {"schedule", c.schedule},
          {"warmup_epochs", c.warmup_epochs},
          {"step_size", c.step_size},
          {"gamma", c.gamma},
          {"grad_clip", c.grad_clip},
          {"augment", c.augment},
          {"flip", c.flip},
          {"crop", c.crop},
          {"audio_freq_mask", c.audio_freq_mask},
          {"audio_time_mask", c.audio_time_mask},
          {"workers", c.workers},
          {"clip_cache", c.clip_cache},
          {"seed", c.seed},
          {"device", c.device},
          {"math", c.math},
          {"max_steps", c.max_steps},
          {"time_limit_minutes", c.time_limit_minutes},
          {"evaluate_test", c.evaluate_test},
          {"detect_anomaly", c.detect_anomaly}};
}

namespace {
template <class T>
void read(const nlohmann::json& j, const char* key, T& field) {
  detail::read_json_field(j, key, field, "train config");
}
}  // namespace

TrainConfig train_config_from_json(const nlohmann::json& j, const TrainConfig& base) {
  MINIDL_CHECK(j.is_object(), "train config: expected a JSON object, got ", j.type_name());
  const nlohmann::json known = to_json(base);
  for (const auto& [key, value] : j.items())
    MINIDL_CHECK(known.contains(key), "train config: unknown key \"", key, "\"");
  TrainConfig c = base;
  if (j.contains("model")) {
    const nlohmann::json& m = j.at("model");
    MINIDL_CHECK(m.is_object(), "train config: \"model\" must be an object, got ", m.type_name());
    const ModelConfig start = m.contains("preset") && m.at("preset").is_string()
                                  ? model_preset(m.at("preset").get<std::string>())
                                  : base.model;
    c.model = model_config_from_json(m, start);
  }
  read(j, "data", c.data);
  read(j, "data_cache", c.data_cache);
  read(j, "out", c.out);
  read(j, "epochs", c.epochs);
  read(j, "batch_size", c.batch_size);
  read(j, "optimizer", c.optimizer);
  read(j, "lr", c.lr);
  read(j, "weight_decay", c.weight_decay);
  read(j, "momentum", c.momentum);
  read(j, "nesterov", c.nesterov);
  read(j, "schedule", c.schedule);
  read(j, "warmup_epochs", c.warmup_epochs);
  read(j, "step_size", c.step_size);
  read(j, "gamma", c.gamma);
  read(j, "grad_clip", c.grad_clip);
  read(j, "augment", c.augment);
  read(j, "flip", c.flip);
  read(j, "crop", c.crop);
  read(j, "audio_freq_mask", c.audio_freq_mask);
  read(j, "audio_time_mask", c.audio_time_mask);
  read(j, "workers", c.workers);
  read(j, "clip_cache", c.clip_cache);
  read(j, "seed", c.seed);
  read(j, "device", c.device);
  read(j, "math", c.math);
  read(j, "max_steps", c.max_steps);
  read(j, "time_limit_minutes", c.time_limit_minutes);
  read(j, "evaluate_test", c.evaluate_test);
  read(j, "detect_anomaly", c.detect_anomaly);
  check_train_config(c);
  return c;
}

TrainConfig apply_overrides(const TrainConfig& config, const std::vector<std::string>& assignments) {
  nlohmann::json patch = nlohmann::json::object();
  bool model_whole = false;
  for (const std::string& a : assignments) {
    const size_t eq = a.find('=');
    MINIDL_CHECK(eq != std::string::npos && eq > 0, "--set: expected key=value, got \"", a, "\"");
    const std::string key = a.substr(0, eq), text = a.substr(eq + 1);
    nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    if (value.is_discarded()) value = text;  // a bare word is a string: --set optimizer=sgd
    if (key.rfind("model.", 0) == 0) {
      MINIDL_CHECK(!model_whole, "--set ", a, ": model is also set whole; use one form");
      patch["model"][key.substr(6)] = value;
    } else {
      MINIDL_CHECK(key != "model" || value.is_object(), "--set ", a,
                   ": model is an object; set its keys one by one (model.fusion=concat)");
      MINIDL_CHECK(key != "model" || !patch.contains("model"), "--set ", a,
                   ": model keys are also set one by one; use one form");
      model_whole |= key == "model";
      patch[key] = value;
    }
  }
  if (patch.contains("model") && !patch["model"].contains("preset")) patch["model"]["preset"] = config.model.preset;
  TrainConfig base = config;
  if (patch.contains("model")) {
    // Model keys override the current model, not a fresh preset (unless the preset itself changes).
    const bool new_preset = patch["model"]["preset"] != config.model.preset;
    nlohmann::json merged = new_preset ? nlohmann::json::object() : to_json(config.model);
    for (const auto& [k, v] : patch["model"].items()) merged[k] = v;
    patch["model"] = merged;
  }
  return train_config_from_json(patch, base);
}

// ---- the trainer ------------------------------------------------------------------------------------
struct Trainer::Impl {
  TrainConfig config;
  std::function<void(const std::string&)> log;
  Device device;
  data::Dataset train_set, validation_set;
  std::string data_root;
  Generator model_gen;  // initialisation, then dropout masks: its offset is part of the saved state
  std::unique_ptr<EmotionModel> model;
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::ReduceOnPlateau> plateau;
  std::unique_ptr<data::Loader> train_loader;
  int64_t epoch = 0, batch = 0, step = 0;
  double best = -std::numeric_limits<double>::infinity();
  double loss_sum = 0, lr_now = 0;
  std::array<double, 2> ccc_sum{0, 0};  // the epoch's batch CCCs so far (valence, arousal), for progress
  int64_t loss_count = 0;
  bool signalled = false;
  std::vector<EpochRecord> records;
  std::unique_ptr<StudyTools> study;

  explicit Impl(const TrainConfig& c) : config(c), device(parse_device(c.device)), model_gen(c.seed) {}

  void say(const std::string& s) const {
    if (log) log(s);
  }

  fs::path run_file(const std::string& name) const { return fs::path(config.out) / name; }

  data::LoaderConfig loader_config(bool evaluation) const {
    data::LoaderConfig l = models::loader_config(config.model);
    l.batch_size = static_cast<int>(config.batch_size);
    l.workers = config.workers;
    l.cache_dir = config.clip_cache;
    l.seed = config.seed;
    l.evaluation = evaluation;
    l.augment = config.augment && !evaluation;
    l.flip = config.flip && !evaluation;
    l.crop = evaluation ? 1.0f : static_cast<float>(config.crop);
    l.freq_mask = evaluation ? 0 : config.audio_freq_mask;
    l.time_mask = evaluation ? 0 : config.audio_time_mask;
    l.device = device;
    return l;
  }

  int64_t total_steps() const {
    const int64_t per_epoch = std::max<int64_t>(1, train_loader->batches());
    const int64_t all = per_epoch * config.epochs;
    return config.max_steps > 0 ? std::min(all, config.max_steps) : all;
  }

  double lr_for(int64_t s) const {
    const TrainConfig& c = config;
    if (c.schedule == "cosine") {
      const int64_t per_epoch = std::max<int64_t>(1, train_loader->batches());
      const int64_t total = std::max<int64_t>(2, total_steps());
      const int64_t warmup = std::min(total - 1, static_cast<int64_t>(c.warmup_epochs * per_epoch));
      return optim::CosineWithWarmup{.base = c.lr, .min_lr = c.lr * 0.01, .warmup_steps = warmup, .total_steps = total}
          .lr(s);
    }
    if (c.schedule == "step")
      return optim::StepDecay{.base = c.lr, .gamma = c.gamma, .step_size = c.step_size}.lr(epoch);
    if (c.schedule == "plateau") return optimizer->lr();  // changed by observe() after each epoch
    return c.lr;
  }

  NamedTensors state() const {
    NamedTensors s;
    for (auto& [n, t] : optimizer->state_dict()) s.emplace_back("optimizer." + n, t);
    if (plateau)
      for (auto& [n, t] : plateau->state_dict()) s.emplace_back("plateau." + n, t);
    auto i64 = [](int64_t v) { return from_vector(std::vector<int64_t>{v}, {}, {.dtype = kInt64}); };
    auto f64 = [](double v) { return from_vector(std::vector<double>{v}, {}, {.dtype = kFloat64}); };
    s.emplace_back("trainer.epoch", i64(epoch));
    s.emplace_back("trainer.batch", i64(batch));
    s.emplace_back("trainer.step", i64(step));
    s.emplace_back("trainer.best", f64(best));
    s.emplace_back("trainer.loss_sum", f64(loss_sum));
    s.emplace_back("trainer.loss_count", i64(loss_count));
    s.emplace_back("trainer.ccc_sum",
                   from_vector(std::vector<double>{ccc_sum[0], ccc_sum[1]}, {}, {.dtype = kFloat64}));
    s.emplace_back("rng.model_offset", i64(static_cast<int64_t>(model_gen.offset())));
    return s;
  }
};

namespace {

// The data set to train on: the configured root, or the default SynthAV set, generated when missing.
std::string prepare_data(const TrainConfig& c, const std::function<void(const std::string&)>& log) {
  if (!c.data.empty()) {
    MINIDL_CHECK(fs::is_directory(c.data), "train: the data folder ", c.data, " does not exist");
    return c.data;
  }
  const data::SynthAvConfig synth;
  if (!data::synthav_ready(c.data_cache, synth)) {
    MINIDL_CHECK(!fs::exists(c.data_cache), "train: ", c.data_cache, " exists but is not a complete SynthAV set ",
                 "made with the default config; delete it, or pass --set data=<folder> to train on it");
    if (log) log("generating the SynthAV data set in " + c.data_cache + " (once; about a minute on 2 cores) ...");
    if (!fs::path(c.data_cache).parent_path().empty()) fs::create_directories(fs::path(c.data_cache).parent_path());
    int shown = 0;  // tenths reported so far
    data::generate_synthav(c.data_cache, synth, [&](int64_t done, int64_t total) {
      const int tenth = total > 0 ? static_cast<int>(10 * done / total) : 10;
      if (log && tenth > shown) {
        shown = tenth;
        log("  SynthAV: " + std::to_string(10 * tenth) + "% of " + std::to_string(total) + " frames");
      }
    });
  }
  return c.data_cache;
}

Tensor scalar_of(const NamedTensors& s, const std::string& name, const std::string& file) {
  for (const auto& [n, t] : s)
    if (n == name) return t;
  fail("train: the checkpoint ", file, " has no entry '", name, "'; it was not written by this trainer");
}

}  // namespace

Trainer::Trainer(const TrainConfig& config, bool resume, std::function<void(const std::string&)> log,
                 const StudyOptions& study)
    : impl_(std::make_unique<Impl>(config)) {
  Impl& d = *impl_;
  d.log = std::move(log);
  check_train_config(d.config);
  d.study = std::make_unique<StudyTools>(study, d.config.out, d.config.detect_anomaly, d.log);
  // Checked here, not in check_train_config (which also reads finished runs, on any machine), and before
  // the run folder is made or data generated.
  const std::string unavailable = device_unavailable(d.device);
  MINIDL_CHECK(unavailable.empty(), "train: device ", d.config.device, " is not available: ", unavailable);
  MINIDL_CHECK(!fs::exists(d.config.out) || fs::is_directory(d.config.out), "train: the run folder ", d.config.out,
               " is a file, not a folder");
  const fs::path config_file = d.run_file("config.json"), last = d.run_file("last.safetensors");
  nlohmann::json saved;
  if (resume) {
    MINIDL_CHECK(fs::exists(last), "train --resume: there is no checkpoint in ", d.config.out, " (", last.string(),
                 " is missing)");
    const auto bytes = data::read_file(config_file.string(), "train --resume");
    saved = nlohmann::json::parse(std::string(bytes.begin(), bytes.end()), nullptr, false);
    MINIDL_CHECK(!saved.is_discarded(), "train --resume: ", config_file.string(), " is not valid JSON");
    MINIDL_CHECK(saved.contains("model") && saved["model"] == to_json(d.config.model), "train --resume: the run in ",
                 d.config.out, " was made with model ", saved.value("model", nlohmann::json()).dump(),
                 ", not the configured ", to_json(d.config.model).dump());
  } else {
    MINIDL_CHECK(!fs::exists(last), "train: ", d.config.out, " already holds a run (", last.string(),
                 "); use --resume to continue it, or another --out");
  }
  d.data_root = prepare_data(d.config, d.log);
  d.train_set = data::read_affwild2({.root = d.data_root, .split = "Train_Set"});
  d.validation_set = data::read_affwild2({.root = d.data_root, .split = "Validation_Set"});
  if (d.device.is_cuda()) {
    // For the whole process, as torch.backends' flags are: the run is what sets the kernels' arithmetic.
    cuda::set_conv_path(d.config.math == "fp32" ? cuda::GemmPath::Simt : cuda::GemmPath::Tf32);
    cuda::set_gemm_path(d.config.math == "tf32-all" ? cuda::GemmPath::Tf32 : cuda::GemmPath::Simt);
  }
  d.model = std::make_unique<EmotionModel>(d.config.model, &d.model_gen);
  d.model->to(d.device);
  const TrainConfig& c = d.config;
  NamedTensors trainable;  // frozen parameters (requires_grad off) are not the optimiser's
  for (auto& [n, t] : d.model->named_parameters())
    if (t.requires_grad()) trainable.emplace_back(n, t);
  if (c.optimizer == "sgd")
    d.optimizer = std::make_unique<optim::SGD>(
        trainable, c.lr,
        optim::SgdOptions{.momentum = c.momentum, .weight_decay = c.weight_decay, .nesterov = c.nesterov});
  else if (c.optimizer == "adam")
    d.optimizer = std::make_unique<optim::Adam>(trainable, c.lr, optim::AdamOptions{.weight_decay = c.weight_decay});
  else
    d.optimizer = std::make_unique<optim::AdamW>(trainable, c.lr, optim::AdamOptions{.weight_decay = c.weight_decay});
  if (c.schedule == "plateau") d.plateau = std::make_unique<optim::ReduceOnPlateau>(true, c.gamma, 2);
  d.train_loader = std::make_unique<data::Loader>(d.train_set, d.loader_config(false));
  MINIDL_CHECK(d.train_loader->batches() > 0, "train: ", d.data_root, " has no training windows of ", c.model.clips,
               " clips (videos too short, or no annotations)");

  // The run folder is made only now, once the data, the model and the optimiser are known to be good, so
  // a run that fails to start leaves nothing behind.
  fs::create_directories(d.config.out);
  auto write_config = [&] {
    const std::string text = to_json(d.config).dump(2) + "\n";
    data::write_file_atomically(config_file.string(), std::vector<uint8_t>(text.begin(), text.end()), "train");
  };
  if (resume) {
    const std::string state_file = d.run_file("last.state.safetensors").string();
    std::map<std::string, std::string> meta_w, meta_s;
    const NamedTensors weights = load_safetensors(last.string(), &meta_w);
    const NamedTensors state = load_safetensors(state_file, &meta_s);
    MINIDL_CHECK(meta_s["format"] == kStateFormat && meta_w["checkpoint"] == meta_s["checkpoint"],
                 "train --resume: ", last.string(), " and ", state_file, " do not belong to the same checkpoint");
    d.model->load_state_dict(weights);
    NamedTensors opt, plat;
    for (const auto& [n, t] : state) {
      if (n.rfind("optimizer.", 0) == 0) opt.emplace_back(n.substr(10), t);
      if (n.rfind("plateau.", 0) == 0) plat.emplace_back(n.substr(8), t);
    }
    d.optimizer->load_state_dict(opt);
    if (d.plateau) d.plateau->load_state_dict(plat);
    d.epoch = static_cast<int64_t>(scalar_of(state, "trainer.epoch", state_file).item());
    d.batch = static_cast<int64_t>(scalar_of(state, "trainer.batch", state_file).item());
    d.step = static_cast<int64_t>(scalar_of(state, "trainer.step", state_file).item());
    d.best = scalar_of(state, "trainer.best", state_file).item();
    d.loss_sum = scalar_of(state, "trainer.loss_sum", state_file).item();
    d.loss_count = static_cast<int64_t>(scalar_of(state, "trainer.loss_count", state_file).item());
    for (const auto& [n, t] : state)  // absent from checkpoints written before it was kept: progress only
      if (n == "trainer.ccc_sum" && t.numel() == 2) d.ccc_sum = {t.values<double>()[0], t.values<double>()[1]};
    d.model_gen.set_state(d.config.seed,
                          static_cast<uint64_t>(scalar_of(state, "rng.model_offset", state_file).values<int64_t>()[0]));
    // The records of the epochs already done, for the learning curve.
    std::ifstream metrics(d.run_file("metrics.jsonl"));
    for (std::string line; std::getline(metrics, line);) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("epoch")) continue;
      EpochRecord r;
      r.epoch = j["epoch"];
      r.train_loss = j["train_loss"];
      r.lr = j["lr"];
      // A NaN score was written as null; an older record may lack the smoothed ones: both read as 0.
      auto score = [&](const char* path) {
        const nlohmann::json::json_pointer at(path);
        return j.contains(at) && j[at].is_number() ? j[at].get<double>() : 0.0;
      };
      r.validation.valence = score("/validation/ccc/valence");
      r.validation.arousal = score("/validation/ccc/arousal");
      r.validation.valence_smoothed = score("/validation/ccc_smoothed/valence");
      r.validation.arousal_smoothed = score("/validation/ccc_smoothed/arousal");
      d.records.push_back(r);
    }
    // Settings changed with --set on resume (epochs, max_steps, ...) are kept for the next resume.
    const nlohmann::json now = to_json(d.config);
    std::string changed;
    for (const auto& [key, value] : now.items())
      if (!saved.contains(key) || saved[key] != value)
        changed += (changed.empty() ? "" : ", ") + key + " " + saved.value(key, nlohmann::json()).dump() + " -> " +
                   value.dump();
    if (!changed.empty()) {
      write_config();
      d.say("config.json updated: " + changed);
    }
    d.say("resuming " + d.config.out + " at epoch " + std::to_string(d.epoch + 1) + ", batch " +
          std::to_string(d.batch) + " (step " + std::to_string(d.step) + ")");
  } else {
    write_config();
  }
  d.train_loader->start_epoch(d.epoch, d.batch);
}

Trainer::~Trainer() = default;

const TrainConfig& Trainer::config() const { return impl_->config; }
int64_t Trainer::epoch() const { return impl_->epoch; }
int64_t Trainer::steps() const { return impl_->step; }
bool Trainer::stopped_by_signal() const { return impl_->signalled; }

double Trainer::train_step() {
  Impl& d = *impl_;
  d.study->before_step();
  data::Batch b;
  {
    const profiler::Range wait("data");  // the profiler's sections, when it records (one branch each)
    if (!d.train_loader->next(b)) return std::numeric_limits<double>::quiet_NaN();
  }
  std::vector<double> read;
  {
    const profiler::Range step_range("step");
    d.model->train();
    d.lr_now = d.lr_for(d.step);
    d.optimizer->set_lr(d.lr_now);
    std::optional<profiler::Range> section(std::in_place, "forward");
    const Tensor pred = (*d.model)(b.video, b.audio);
    const Tensor ccc_va = ccc(pred, b.labels, b.mask);
    const Tensor loss = sum(sub(1.0, ccc_va));  // ccc_loss, keeping the two CCCs for the progress line
    d.study->after_forward(loss, *d.model);
    d.optimizer->zero_grad();
    section.emplace("backward");
    loss.backward();
    section.emplace("optimizer");
    // A non-finite gradient (an exploding step) is not applied: the step is skipped, and said so.
    const double norm =
        optim::clip_grad_norm(d.optimizer->params(), d.config.grad_clip > 0 ? d.config.grad_clip : 1e300);
    if (std::isfinite(norm))
      d.optimizer->step();
    else
      d.say("step " + std::to_string(d.step + 1) + ": the gradient is not finite; this step is skipped" +
            (d.config.detect_anomaly ? "" : " (--detect-anomaly finds the op that made the first NaN or Inf)"));
    ++d.step;
    ++d.batch;
    section.reset();
    // One read for the three numbers: on a GPU each read waits for the device.
    read = cat({loss.detach().reshape({1}), ccc_va.detach()}, 0).values<double>();
  }
  d.study->after_step();
  d.loss_sum += read[0];
  d.ccc_sum[0] += read[1];
  d.ccc_sum[1] += read[2];
  ++d.loss_count;
  return read[0];
}

Scores Trainer::evaluate(const std::string& split) {
  Impl& d = *impl_;
  const data::Dataset ds =
      split == "Validation_Set" ? d.validation_set : data::read_affwild2({.root = d.data_root, .split = split});
  return evaluate_model(*d.model, ds, d.loader_config(true), d.device);
}

Scores Trainer::evaluate_best(const std::string& split) {
  Impl& d = *impl_;
  const fs::path best = d.run_file("best.safetensors");
  if (fs::exists(best)) load(*d.model, best.string());
  return evaluate(split);
}

void Trainer::save_checkpoint() {
  Impl& d = *impl_;
  // Both files carry the same checkpoint id, so a crash between the two writes is noticed on resume.
  const std::string id = std::to_string(d.step) + "-" + std::to_string(d.epoch) + "-" + std::to_string(d.batch);
  save_safetensors(d.run_file("last.state.safetensors").string(), d.state(),
                   {{"format", kStateFormat}, {"checkpoint", id}, {"config", to_json(d.config).dump()}});
  save_safetensors(d.run_file("last.safetensors").string(), d.model->state_dict(),
                   {{"format", "pt"}, {"checkpoint", id}, {"model", to_json(d.config.model).dump()}});
}

std::vector<EpochRecord> Trainer::run(const std::function<void(const Progress&)>& on_progress,
                                      const std::atomic<bool>* stop) {
  Impl& d = *impl_;
  const TrainConfig& c = d.config;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const int64_t per_epoch = d.train_loader->batches();
  const int64_t clips_per_batch = c.batch_size * c.model.clips;
  const int64_t first_step = d.step;
  bool out_of_budget = false;
  if (d.epoch >= c.epochs)
    d.say("all " + std::to_string(c.epochs) +
          " epochs of this run are done; nothing to train (raise epochs with --set)");
  while (d.epoch < c.epochs && !out_of_budget) {
    const auto epoch_start = std::chrono::steady_clock::now();
    const int64_t epoch_first_step = d.step;
    for (;;) {
      if (stop && stop->load()) {
        d.signalled = true;
        save_checkpoint();
        d.say("stopped: checkpoint saved at epoch " + std::to_string(d.epoch + 1) + ", batch " +
              std::to_string(d.batch) + "; continue with --resume");
        d.study->finish();
        return d.records;
      }
      if ((c.max_steps > 0 && d.step >= c.max_steps) ||
          (c.time_limit_minutes > 0 && elapsed() > 60 * c.time_limit_minutes)) {
        out_of_budget = true;
        break;
      }
      if (std::isnan(train_step())) break;
      if (on_progress) {
        Progress p;
        p.epoch = d.epoch;
        p.epochs = c.epochs;
        p.batch = d.batch;
        p.batches = per_epoch;
        p.step = d.step;
        p.loss = d.loss_sum / std::max<int64_t>(1, d.loss_count);
        p.ccc_valence = d.ccc_sum[0] / std::max<int64_t>(1, d.loss_count);
        p.ccc_arousal = d.ccc_sum[1] / std::max<int64_t>(1, d.loss_count);
        p.lr = d.lr_now;
        p.elapsed_s = elapsed();
        const double rate = (d.step - first_step) / std::max(1e-9, p.elapsed_s);
        p.clips_per_s = rate * clips_per_batch;
        const int64_t remaining = std::min(d.total_steps(), per_epoch * c.epochs) - d.step;
        p.eta_s = remaining / std::max(1e-9, rate);
        on_progress(p);
      }
    }
    if (out_of_budget) d.study->finish();  // a profile still recording ends with training, before validation
    if (out_of_budget && d.step == epoch_first_step && d.loss_count == 0) {
      // Nothing trained since this epoch was last scored (when the budget ran out, or a time limit
      // that expired during the validation pass): no second record of the same weights.
      const std::string limit =
          c.max_steps > 0 && d.step >= c.max_steps
              ? "the step budget (max_steps " + std::to_string(c.max_steps) + ") is spent"
              : "the time limit (" + std::to_string(c.time_limit_minutes) + " minutes) is reached";
      d.say(d.step == first_step ? limit + "; nothing to train (raise it with --set)" : "stopping: " + limit);
      break;
    }
    // The epoch is over (or the budget is spent): score it, record it, keep the best weights.
    EpochRecord r;
    r.epoch = d.epoch + 1;
    r.train_loss = d.loss_sum / std::max<int64_t>(1, d.loss_count);
    r.train_ccc = {d.ccc_sum[0] / std::max<int64_t>(1, d.loss_count),
                   d.ccc_sum[1] / std::max<int64_t>(1, d.loss_count)};
    r.lr = d.lr_now;
    r.validation = evaluate("Validation_Set");
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    d.records.push_back(r);
    {
      std::ofstream metrics(d.run_file("metrics.jsonl"), std::ios::app);
      metrics << nlohmann::json{{"epoch", r.epoch},
                                {"train_loss", r.train_loss},
                                {"train_ccc", {{"valence", r.train_ccc[0]}, {"arousal", r.train_ccc[1]}}},
                                {"lr", r.lr},
                                {"seconds", r.seconds},
                                {"step", d.step},
                                {"validation", r.validation.to_json()}}
                     .dump()
              << "\n";
    }
    const std::string svg = learning_curve_svg(d.records, "minidl " + c.model.preset + " / " + c.model.fusion);
    data::write_file_atomically(d.run_file("curve.svg").string(), std::vector<uint8_t>(svg.begin(), svg.end()),
                                "train");
    if (r.validation.mean() > d.best) {
      d.best = r.validation.mean();
      save(*d.model, d.run_file("best.safetensors").string());
    }
    if (d.plateau) d.optimizer->set_lr(d.plateau->observe(r.validation.mean(), d.optimizer->lr()));
    d.say("epoch " + std::to_string(r.epoch) + "/" + std::to_string(c.epochs) + ": train loss " +
          std::to_string(r.train_loss) + ", validation CCC valence " + std::to_string(r.validation.valence) +
          ", arousal " + std::to_string(r.validation.arousal) + " (smoothed " +
          std::to_string(r.validation.valence_smoothed) + ", " + std::to_string(r.validation.arousal_smoothed) + ")");
    d.loss_sum = 0;
    d.ccc_sum = {0, 0};
    d.loss_count = 0;
    // An epoch whose last batch was also the budget's last is complete: a resume with a larger budget
    // starts the next epoch rather than finding this one empty.
    if (!out_of_budget || d.batch >= per_epoch) {
      ++d.epoch;
      d.batch = 0;
      if (d.epoch < c.epochs) d.train_loader->start_epoch(d.epoch);
    }
    save_checkpoint();
  }
  d.study->finish();
  return d.records;
}

std::unique_ptr<EmotionModel> load_run_model(const std::string& run_dir, const std::string& which,
                                             TrainConfig* config) {
  const fs::path dir(run_dir), config_file = dir / "config.json";
  const auto bytes = data::read_file(config_file.string(), "load_run_model");
  const nlohmann::json j = nlohmann::json::parse(std::string(bytes.begin(), bytes.end()), nullptr, false);
  MINIDL_CHECK(!j.is_discarded(), "load_run_model: ", config_file.string(), " is not valid JSON");
  const TrainConfig c = train_config_from_json(j, TrainConfig{});
  const std::string weights = which == "best" || which == "last" ? (dir / (which + ".safetensors")).string() : which;
  auto model = std::make_unique<EmotionModel>(c.model);
  try {
    load(*model, weights);  // an error names every missing, unexpected or mis-shaped tensor
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.find("does not fit") == std::string::npos) throw;
    fail("load_run_model: ", weights, " is not a checkpoint of the model in ", config_file.string(), " (",
         c.model.preset, " preset, ", c.model.fusion, " fusion); was it written by another run? ", what);
  }
  model->eval();
  if (config) *config = c;
  return model;
}

std::string run_data_root(const TrainConfig& c) { return c.data.empty() ? c.data_cache : c.data; }

std::string learning_curve_svg(const std::vector<EpochRecord>& records, const std::string& title) {
  const int W = 720, H = 420, left = 60, right = 20, top = 40, mid = 210, bottom = 380;
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"" << left << "\" y=\"22\" font-size=\"15\">" << title << "</text>\n";
  const size_t n = records.size();
  auto x_of = [&](size_t i) { return left + (n <= 1 ? 0.0 : (W - left - right) * static_cast<double>(i) / (n - 1)); };
  // Top panel: training loss (0 to its maximum). Bottom panel: validation CCC on [-0.2, 1].
  double max_loss = 1e-9;
  for (const auto& r : records) max_loss = std::max(max_loss, r.train_loss);
  auto panel = [&](int y0, int y1, const char* label, double lo, double hi) {
    os << "<line x1=\"" << left << "\" y1=\"" << y1 << "\" x2=\"" << W - right << "\" y2=\"" << y1
       << "\" stroke=\"black\"/>\n<line x1=\"" << left << "\" y1=\"" << y0 << "\" x2=\"" << left << "\" y2=\"" << y1
       << "\" stroke=\"black\"/>\n<text x=\"" << left + 6 << "\" y=\"" << y0 + 12 << "\">" << label << "</text>\n";
    for (int k = 0; k <= 4; ++k) {
      const double v = lo + (hi - lo) * k / 4, y = y1 - (y1 - y0) * static_cast<double>(k) / 4;
      os << "<text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << std::round(v * 100) / 100
         << "</text>\n";
    }
  };
  auto line = [&](int y0, int y1, double lo, double hi, const char* colour, auto value) {
    os << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
    for (size_t i = 0; i < n; ++i) {
      const double v = std::clamp(value(records[i]), lo, hi);
      os << x_of(i) << "," << y1 - (y1 - y0) * (v - lo) / (hi - lo) << " ";
    }
    os << "\"/>\n";
  };
  panel(top, mid - 20, "training loss (2 - CCC_V - CCC_A)", 0, max_loss);
  line(top, mid - 20, 0, max_loss, "#444444", [](const EpochRecord& r) { return r.train_loss; });
  panel(mid + 10, bottom, "validation CCC: valence (blue), arousal (red)", -0.2, 1.0);
  line(mid + 10, bottom, -0.2, 1.0, "#1f5fbf", [](const EpochRecord& r) { return r.validation.valence; });
  line(mid + 10, bottom, -0.2, 1.0, "#c0392b", [](const EpochRecord& r) { return r.validation.arousal; });
  os << "<text x=\"" << W / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">epoch (1 to " << n
     << ")</text>\n</svg>\n";
  return os.str();
}

}  // namespace minidl::models
