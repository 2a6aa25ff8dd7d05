// Optimisers with torch.optim 1.13's update rules (the single-tensor, non-foreach code paths), and
// clipping by global norm.
//
// Each update is one pass over a parameter's contiguous data that reads the gradient and the moments and
// writes the parameter and the moments, instead of a chain of tensor ops with temporaries. The per-element
// math is a functor (SgdF, AdamF) applied by a CPU loop; the CUDA backend will apply the same functors in one
// fused grid-stride kernel per parameter (it goes in `apply`), as DESIGN.md asks. Inside a functor the operations
// are done in the parameter's type and in torch's order (each torch op rounds to the tensor's dtype), with
// the scalar factors (bias corrections, step size) computed in double as torch computes them in Python.
#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <type_traits>

#include "autograd/dispatch.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/grad_mode.h"
#include "cpu/dtype_dispatch.h"
#include "cuda/kernels.h"
#include "optim/update_rules.h"

namespace minidl::optim {

namespace {

std::string shape_text(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << ']';
  return os.str();
}

// Below this many elements a parallel region costs more than the update (as in cpu/strided_loop.h).
constexpr int64_t kParallelGrain = 32768;

// Runs body(i) for i in [0, n). Each element is independent, so threads cannot change the result.
template <class Body>
void for_each_element(int64_t n, const Body& body) {
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) body(i);
}

// ---- checks shared by every optimiser -------------------------------------------------------------

void check_lr(const std::string& who, double lr, bool allow_zero) {
  MINIDL_CHECK(std::isfinite(lr) && (allow_zero ? lr >= 0.0 : lr > 0.0), who, ": lr must be finite and ",
               allow_zero ? ">= 0" : "> 0", ", got ", lr);
}

void check_params(const Optimizer& opt) {
  const std::string who = opt.type_name();
  MINIDL_CHECK(!opt.params().empty(), who, ": got an empty parameter list");
  std::map<std::string, size_t> names;
  std::map<const TensorImpl*, std::string> tensors;
  for (const auto& [name, p] : opt.params()) {
    MINIDL_CHECK(!name.empty(), who, ": a parameter has an empty name (names key the optimiser state)");
    MINIDL_CHECK(names.emplace(name, names.size()).second, who, ": parameter name '", name, "' appears twice");
    MINIDL_CHECK(p.defined(), who, ": parameter '", name, "' is an undefined tensor");
    MINIDL_CHECK(is_floating(p.dtype()), who, ": parameter '", name, "' is ", p.meta_str(),
                 "; only float32 and float64 parameters can be trained");
    MINIDL_CHECK(p.requires_grad(), who, ": parameter '", name, "' (", p.meta_str(),
                 ") does not require grad; leave frozen tensors out of the optimiser's list");
    MINIDL_CHECK(p.is_leaf(), who, ": parameter '", name, "' (", p.meta_str(),
                 ") is the output of an op, not a leaf; backward never fills its .grad");
    MINIDL_CHECK(!p.has_overlap(), who, ": parameter '", name, "' is an expanded tensor ", p.meta_str(),
                 " (several indices share one element); clone() it first");
    const auto [it, fresh] = tensors.emplace(p.impl(), name);
    MINIDL_CHECK(fresh, who, ": parameters '", it->second, "' and '", name,
                 "' are the same tensor; it would be updated twice per step");
  }
}

// A parameter to update this step: its index and its gradient, made contiguous.
struct Work {
  size_t index;
  Tensor grad;
};

// Checks every parameter that has a gradient before any is changed, so a bad gradient leaves the whole
// model untouched rather than half-updated.
std::vector<Work> collect_work(const Optimizer& opt) {
  const std::string who = opt.type_name() + ".step";
  std::vector<Work> work;
  for (size_t i = 0; i < opt.params().size(); ++i) {
    const auto& [name, p] = opt.params()[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;  // torch skips p.grad is None
    MINIDL_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype() && g.device() == p.device(), who,
                 ": the gradient of parameter '", name, "' is ", g.meta_str(), " but the parameter is ", p.meta_str());
    // Refused here rather than in apply, so that no parameter is updated before the error.
    MINIDL_CHECK(p.device().is_cpu() || p.dtype() == kFloat32, who, ": parameter '", name, "' is ", p.meta_str(),
                 "; the CUDA update kernels take float32");
    work.push_back({i, g.contiguous()});
  }
  return work;
}

// The tensor an update writes: the parameter itself, or a contiguous copy of a non-contiguous view.
Tensor update_target(const Tensor& param) { return param.is_contiguous() ? param : param.detach().clone(); }

// After the update: writes a copy back into its view and bumps the parameter's version, so a backward
// that saved the old values refuses to run.
void finish_update(const Tensor& param, const Tensor& target) {
  if (target.is_same(param))
    param.impl()->storage->bump_version();
  else
    Tensor(param).copy_(target);  // copy_ bumps the version itself
}

// A step's updates: CPU parameters one by one as they come (update_cpu(T* param, const T* grad)), CUDA
// ones collected as slots and updated together by `run_cuda(slots)` (a few launches for the whole
// model instead of one per parameter).
template <class Slot>
class Updates {
 public:
  explicit Updates(const Optimizer& opt) : opt_(opt) {}

  template <class UpdateCpu, class MakeSlot>
  void add(const Tensor& param, const Tensor& grad, const UpdateCpu& update_cpu, const MakeSlot& make_slot) {
    const Tensor target = update_target(param);
    if (param.device().is_cuda()) {
      slots_.push_back(make_slot(target, grad));
      pending_.emplace_back(param, target);
      return;
    }
    cpu::float_dispatch((opt_.type_name() + ".step").c_str(), param.dtype(), [&](auto zero) {
      using T = decltype(zero);
      update_cpu(target.data<T>(), grad.data<T>());
    });
    finish_update(param, target);
  }

  void finish(void (*run_cuda)(const std::vector<Slot>&)) {
    if (!slots_.empty()) run_cuda(slots_);
    for (const auto& [param, target] : pending_) finish_update(param, target);
  }

 private:
  const Optimizer& opt_;
  std::vector<Slot> slots_;
  std::vector<std::pair<Tensor, Tensor>> pending_;
};

std::string state_key(const std::string& param, const std::string& kind) { return param + "." + kind; }

// Where the parameters are (the first's device; all share it), for the profiler's event of a step.
Device params_device(const Optimizer& opt) {
  return opt.params().empty() ? Device::cpu() : opt.params().front().second.device();
}

// The bytes a step moves, for the profiler: each updated tensor (the parameter and its moments, `kept`
// of them) read and written, and its gradient read.
double update_bytes(const Optimizer& opt, const std::vector<Work>& work, int kept) {
  double bytes = 0;
  for (const Work& w : work) bytes += (2.0 * kept + 1.0) * bytes_of(opt.params()[w.index].second);
  return bytes;
}

}  // namespace

// ---- Optimizer ---------------------------------------------------------------------------------------

// The checks name the optimiser, and its type_name() is only callable once the derived part exists: the
// derived constructors call check_params and check_lr.
Optimizer::Optimizer(NamedTensors params, double lr)
    : params_(std::move(params)), lr_(lr), param_steps_(params_.size(), 0) {}

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
  // 0 is allowed here: a warm-up starts from it and a cosine schedule may end on it.
  check_lr(type_name() + ".set_lr", lr, /*allow_zero=*/true);
  lr_ = lr;
}

Tensor& Optimizer::moment(const std::string& kind, size_t param) {
  auto it = moments_.begin();
  while (it != moments_.end() && it->first != kind) ++it;
  if (it == moments_.end()) it = moments_.insert(moments_.end(), {kind, std::vector<Tensor>(params_.size())});
  Tensor& m = it->second.at(param);
  if (!m.defined()) {
    const Tensor& p = params_.at(param).second;
    m = zeros(p.shape(), {.dtype = p.dtype(), .device = p.device()});  // contiguous, whatever p's layout
  }
  return m;
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  const std::vector<std::string> kinds = moment_kinds();
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    for (const std::string& kind : kinds) {
      Tensor saved;
      for (const auto& [k, tensors] : moments_)
        if (k == kind && tensors[i].defined()) saved = tensors[i].detach().clone();
      if (!saved.defined()) saved = zeros(p.shape(), {.dtype = p.dtype(), .device = p.device()});
      out.emplace_back(state_key(name, kind), saved);
    }
    out.emplace_back(state_key(name, "step"), scalar_tensor(double(param_steps_[i]), {.dtype = kFloat64}));
  }
  out.emplace_back("step", scalar_tensor(double(steps_), {.dtype = kFloat64}));
  out.emplace_back("lr", scalar_tensor(lr_, {.dtype = kFloat64}));
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  const std::string who = type_name() + ".load_state_dict";
  const std::vector<std::string> kinds = moment_kinds();

  // What this optimiser expects under each name: the parameter (or none for "step"/"lr") and the kind.
  struct Slot {
    size_t param;  // params_.size() for the global entries
    std::string kind;
  };
  std::map<std::string, Slot> expected;
  for (size_t i = 0; i < params_.size(); ++i) {
    for (const std::string& kind : kinds) expected[state_key(params_[i].first, kind)] = {i, kind};
    expected[state_key(params_[i].first, "step")] = {i, "step"};
  }
  expected["step"] = {params_.size(), "step"};
  expected["lr"] = {params_.size(), "lr"};

  // Every problem is collected before any is reported, and nothing is changed unless there are none.
  std::vector<std::string> problems;
  std::map<std::string, const Tensor*> given;
  auto count_value = [&](const std::string& name, const Tensor& t) {
    const double v = t.item();
    if (!(v >= 0.0 && v <= 9007199254740992.0 && v == std::floor(v)))
      problems.push_back(detail::concat("'", name, "' must be a whole number >= 0, got ", v));
  };
  for (const auto& [name, t] : state) {
    const auto slot = expected.find(name);
    if (slot == expected.end()) {
      problems.push_back("unexpected entry '" + name + "'");
      continue;
    }
    if (!given.emplace(name, &t).second) {
      problems.push_back("entry '" + name + "' appears twice");
      continue;
    }
    if (!t.defined()) {
      problems.push_back("entry '" + name + "' is an undefined tensor");
      continue;
    }
    const bool scalar = slot->second.kind == "step" || slot->second.kind == "lr";
    const Shape want = scalar ? Shape{} : params_[slot->second.param].second.shape();
    if (t.shape() != want) {
      problems.push_back("'" + name + "' has shape " + shape_text(t.shape()) + ", expected " + shape_text(want) +
                         (scalar ? "" : " (the shape of parameter '" + params_[slot->second.param].first + "')"));
      continue;
    }
    if (!is_floating(t.dtype()) && !(scalar && t.dtype() == kInt64)) {
      problems.push_back("'" + name + "' is " + t.meta_str() + ", expected a float tensor");
      continue;
    }
    if (slot->second.kind == "step") count_value(name, t);
    if (name == "lr") {
      const double v = t.item();
      if (!(std::isfinite(v) && v >= 0.0)) problems.push_back(detail::concat("'lr' must be finite and >= 0, got ", v));
    }
  }
  for (const auto& [name, slot] : expected)
    if (!given.count(name)) problems.push_back("missing entry '" + name + "'");
  if (!problems.empty()) {
    std::string text;
    for (const std::string& p : problems) text += "\n  " + p;
    fail(who, ": the state does not match this optimiser's ", params_.size(), " parameters (", problems.size(),
         " problem", problems.size() == 1 ? "" : "s", "):", text);
  }

  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].first;
    for (const std::string& kind : kinds) moment(kind, i).copy_(*given.at(state_key(name, kind)));
    param_steps_[i] = int64_t(given.at(state_key(name, "step"))->item());
  }
  steps_ = int64_t(given.at("step")->item());
  lr_ = given.at("lr")->item();
}

// ---- SGD ---------------------------------------------------------------------------------------------

SGD::SGD(NamedTensors params, double lr, const SgdOptions& options)
    : Optimizer(std::move(params), lr), options_(options) {
  check_params(*this);
  check_lr("SGD", lr, /*allow_zero=*/false);
  const SgdOptions& o = options_;
  MINIDL_CHECK(std::isfinite(o.momentum) && o.momentum >= 0.0, "SGD: momentum must be finite and >= 0, got ",
               o.momentum);
  MINIDL_CHECK(o.dampening >= 0.0 && o.dampening <= 1.0, "SGD: dampening must be in [0, 1], got ", o.dampening);
  MINIDL_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0.0,
               "SGD: weight_decay must be finite and >= 0, got ", o.weight_decay);
  MINIDL_CHECK(!o.nesterov || (o.momentum > 0.0 && o.dampening == 0.0),
               "SGD: nesterov needs momentum > 0 and dampening 0, got momentum ", o.momentum, " and dampening ",
               o.dampening);
}

std::vector<std::string> SGD::moment_kinds() const {
  // Plain SGD keeps no buffer (torch stores momentum_buffer None).
  if (options_.momentum == 0.0) return {};
  return {"momentum_buffer"};
}

void SGD::step() {
  NoGradGuard no_grad;
  OpScope scope("sgd_step", params_device(*this));
  const std::vector<Work> work = collect_work(*this);
  const bool use_momentum = options_.momentum != 0.0;
  Updates<cuda::SgdSlot> updates(*this);
  for (const Work& w : work) {
    const Tensor& p = params_[w.index].second;
    const int64_t n = p.numel();
    Tensor buf = use_momentum ? moment("momentum_buffer", w.index) : Tensor();
    const bool first = param_step(w.index) == 0;
    auto rule = [&](auto zero) {
      using T = decltype(zero);
      return SgdF<T>{T(-lr_),
                     T(options_.weight_decay),
                     T(options_.momentum),
                     T(1.0 - options_.dampening),
                     use_momentum,
                     options_.nesterov,
                     first};
    };
    updates.add(
        p, w.grad,
        [&](auto* param, const auto* grad) {
          using T = std::remove_pointer_t<decltype(param)>;
          const SgdF<T> f = rule(T{});
          T* b = use_momentum ? buf.data<T>() : nullptr;
          for_each_element(n, [&](int64_t i) { f(param[i], grad[i], b ? b + i : nullptr); });
        },
        [&](const Tensor& param, const Tensor& grad) {
          return cuda::SgdSlot{rule(float{}), param, grad, buf};
        });
    ++param_step(w.index);
  }
  updates.finish(cuda::sgd_update);
  // Each element reads the parameter, its gradient and (with momentum) its buffer, and writes them back.
  scope.work(0, update_bytes(*this, work, options_.momentum != 0.0 ? 2 : 1));
  ++steps_;
}

// ---- Adam / AdamW ------------------------------------------------------------------------------------

Adam::Adam(NamedTensors params, double lr, const AdamOptions& options)
    : Optimizer(std::move(params), lr), options_(options) {
  const std::string who = type_name();
  check_params(*this);
  check_lr(who, lr, /*allow_zero=*/false);
  const AdamOptions& o = options_;
  MINIDL_CHECK(o.beta1 >= 0.0 && o.beta1 < 1.0, who, ": beta1 must be in [0, 1), got ", o.beta1);
  MINIDL_CHECK(o.beta2 >= 0.0 && o.beta2 < 1.0, who, ": beta2 must be in [0, 1), got ", o.beta2);
  MINIDL_CHECK(std::isfinite(o.eps) && o.eps > 0.0, who, ": eps must be finite and > 0, got ", o.eps);
  MINIDL_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0.0, who,
               ": weight_decay must be finite and >= 0, got ", o.weight_decay);
}

void Adam::step() {
  NoGradGuard no_grad;
  OpScope scope("adam_step", params_device(*this));
  const std::vector<Work> work = collect_work(*this);
  const AdamOptions& o = options_;
  Updates<cuda::AdamSlot> updates(*this);
  for (const Work& w : work) {
    const Tensor& p = params_[w.index].second;
    const int64_t n = p.numel();
    Tensor m = moment("exp_avg", w.index), v = moment("exp_avg_sq", w.index);
    // Per-parameter step, from 1 (torch's state['step'] += 1 before use). The scalars are computed in double
    // exactly as torch computes them in Python, then rounded once to the parameter's type.
    const double t = double(++param_step(w.index));
    const double bias_correction1 = 1.0 - std::pow(o.beta1, t);
    const double bias_correction2 = 1.0 - std::pow(o.beta2, t);
    const double step_size = lr_ / bias_correction1;
    const bool decoupled = o.decoupled_weight_decay && o.weight_decay != 0.0;
    auto rule = [&](auto zero) {
      using T = decltype(zero);
      return AdamF<T>{decoupled ? T(1.0 - lr_ * o.weight_decay) : T(1),
                      o.decoupled_weight_decay ? T(0) : T(o.weight_decay),
                      T(o.beta1),
                      T(1.0 - o.beta1),
                      T(o.beta2),
                      T(1.0 - o.beta2),
                      T(std::sqrt(bias_correction2)),
                      T(o.eps),
                      T(-step_size)};
    };
    updates.add(
        p, w.grad,
        [&](auto* param, const auto* grad) {
          using T = std::remove_pointer_t<decltype(param)>;
          const AdamF<T> f = rule(T{});
          T* mp = m.data<T>();
          T* vp = v.data<T>();
          for_each_element(n, [&](int64_t i) { f(param[i], grad[i], mp[i], vp[i]); });
        },
        [&](const Tensor& param, const Tensor& grad) {
          return cuda::AdamSlot{rule(float{}), param, grad, m, v};
        });
  }
  updates.finish(cuda::adam_update);
  scope.work(0, update_bytes(*this, work, 3));  // parameter, exp_avg, exp_avg_sq
  ++steps_;
}

namespace {
AdamOptions with_decoupled_decay(AdamOptions o) {
  o.decoupled_weight_decay = true;
  return o;
}
}  // namespace

AdamW::AdamW(NamedTensors params, double lr, AdamOptions options)
    : Adam(std::move(params), lr, with_decoupled_decay(options)) {}

// ---- clipping ----------------------------------------------------------------------------------------

namespace {

// sqrt of the sum of squares of every element of `grads` (all on the CPU): sums in double over fixed
// blocks of each gradient, the blocks' sums added in order. The blocks do not depend on the thread count,
// so neither does the result.
double cpu_global_norm(const std::vector<Tensor>& grads) {
  constexpr int64_t kBlock = 1 << 16;
  double total_sq = 0.0;
  for (const Tensor& g0 : grads) {
    const Tensor g = g0.contiguous();
    const int64_t n = g.numel(), blocks = (n + kBlock - 1) / kBlock;
    std::vector<double> partial(size_t(blocks), 0.0);
    cpu::float_dispatch("clip_grad_norm", g.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* d = g.data<T>();
#pragma omp parallel for schedule(static) if (blocks > 1)
      for (int64_t b = 0; b < blocks; ++b) {
        double s = 0.0;
        for (int64_t i = b * kBlock, end = std::min(n, (b + 1) * kBlock); i < end; ++i)
          s += double(d[i]) * double(d[i]);
        partial[size_t(b)] = s;
      }
    });
    for (double s : partial) total_sq += s;
  }
  return std::sqrt(total_sq);
}

}  // namespace

double clip_grad_norm(const NamedTensors& params, double max_norm) {
  MINIDL_CHECK(std::isfinite(max_norm) && max_norm > 0.0, "clip_grad_norm: max_norm must be finite and > 0, got ",
               max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const auto& [name, p] : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    const Tensor g = p.grad();
    MINIDL_CHECK(is_floating(g.dtype()), "clip_grad_norm: the gradient of '", name, "' is ", g.meta_str());
    MINIDL_CHECK(grads.empty() || g.device() == grads.front().device(), "clip_grad_norm: the gradient of '", name,
                 "' is ", g.meta_str(), " but an earlier one is on ", grads.front().device().str());
    grads.push_back(g);
  }
  OpScope scope("clip_grad_norm", grads.empty() ? Device::cpu() : grads.front().device());
  double bytes = 0;
  for (const Tensor& g : grads) bytes += bytes_of(g);
  scope.work(0, bytes);  // every gradient read once (and written once more when scaled: mul_ counts that)
  double total = 0.0;
  if (!grads.empty() && grads.front().device().is_cuda()) {
    // One fused pass over every gradient on the device (fixed-order double sums), one number back.
    const Tensor norm = Tensor::empty({}, kFloat32, grads.front().device());
    cuda::global_norm(grads, norm);
    total = norm.item();
  } else {
    total = cpu_global_norm(grads);
  }
  if (!std::isfinite(total)) return total;  // left alone: the caller decides (see the header)
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) {
    if (grads.front().device().is_cuda() && std::all_of(grads.begin(), grads.end(), [](const Tensor& g) {
          return g.is_contiguous() && g.dtype() == kFloat32;
        })) {
      cuda::scale(grads, coef);  // the same products as mul_, a few launches for all of them
      for (Tensor& g : grads) g.impl()->storage->bump_version();
    } else {
      for (Tensor& g : grads) g.mul_(coef);
    }
  }
  return total;
}

}  // namespace minidl::optim
