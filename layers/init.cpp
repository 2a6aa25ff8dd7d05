// torch.nn.init, with torch's formulas. Each initialiser draws a fresh tensor of the target's dtype and
// device and copies it in under NoGradGuard: a parameter (a leaf that requires grad) may be initialised,
// and views (a slice of a larger weight) are written through.
#include "layers/init.h"

#include <cmath>

#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/grad_mode.h"

namespace minidl::nn::init {
namespace {

void check_float(const char* op, const Tensor& t) {
  check_defined(op, t, "tensor");
  MINIDL_CHECK(is_floating(t.dtype()), op, ": only float tensors can be initialised, got ", t.meta_str());
  MINIDL_CHECK(!t.has_overlap(), op, ": cannot initialise an expanded tensor ", t.meta_str(),
               " (several indices share one element); clone() it first");
}

// (fan_in, fan_out), with errors naming the initialiser that needed them.
std::pair<int64_t, int64_t> fans_for(const char* op, const Tensor& weight) {
  check_defined(op, weight, "weight");
  MINIDL_CHECK(weight.dim() >= 2, op, ": fan in and fan out need a weight of at least 2 dims [out, in, *kernel], got ",
               weight.meta_str());
  int64_t receptive = 1;  // product of the kernel dims
  for (int64_t d = 2; d < weight.dim(); ++d) receptive *= weight.size(d);
  return {weight.size(1) * receptive, weight.size(0) * receptive};
}

// The fan a kaiming initialiser scales by; an unknown mode is an error even for an empty tensor.
int64_t fan_for(const char* op, const Tensor& t, const std::string& mode) {
  MINIDL_CHECK(mode == "fan_in" || mode == "fan_out", op, ": mode must be \"fan_in\" or \"fan_out\", got \"", mode,
               "\"");
  const auto [fan_in, fan_out] = fans_for(op, t);
  return mode == "fan_in" ? fan_in : fan_out;
}

// torch.nn.init.calculate_gain("leaky_relu", a).
double leaky_relu_gain(double a) { return std::sqrt(2.0 / (1.0 + a * a)); }

void write(Tensor& t, const Tensor& values) {
  NoGradGuard no_grad;
  t.copy_(values);
}

}  // namespace

std::pair<int64_t, int64_t> fans(const Tensor& weight) { return fans_for("init.fans", weight); }

void zeros_(Tensor& t) { constant_(t, 0.0); }

void constant_(Tensor& t, double value) {
  check_float("init.constant_", t);
  NoGradGuard no_grad;
  t.fill_(value);
}

void uniform_(Tensor& t, double lo, double hi, Generator* gen) {
  check_float("init.uniform_", t);
  MINIDL_CHECK(lo <= hi, "init.uniform_: the range [", lo, ", ", hi, ") of ", t.meta_str(), " is empty");
  write(t, rand(t.shape(), {.dtype = t.dtype(), .device = t.device()}, gen, lo, hi));
}

void normal_(Tensor& t, double mean, double std, Generator* gen) {
  check_float("init.normal_", t);
  MINIDL_CHECK(std >= 0.0, "init.normal_: std must be >= 0, got ", std, " for ", t.meta_str());
  write(t, randn(t.shape(), {.dtype = t.dtype(), .device = t.device()}, gen, mean, std));
}

void xavier_uniform_(Tensor& t, double gain, Generator* gen) {
  check_float("init.xavier_uniform_", t);
  const auto [fan_in, fan_out] = fans_for("init.xavier_uniform_", t);
  if (t.numel() == 0) return;  // nothing to draw, and the fans would divide by zero
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  uniform_(t, -bound, bound, gen);
}

void xavier_normal_(Tensor& t, double gain, Generator* gen) {
  check_float("init.xavier_normal_", t);
  const auto [fan_in, fan_out] = fans_for("init.xavier_normal_", t);
  if (t.numel() == 0) return;
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

void kaiming_uniform_(Tensor& t, double a, const std::string& mode, Generator* gen) {
  check_float("init.kaiming_uniform_", t);
  const int64_t fan = fan_for("init.kaiming_uniform_", t, mode);
  if (t.numel() == 0) return;
  // U(-b, b) has std b / sqrt(3).
  const double bound = std::sqrt(3.0) * leaky_relu_gain(a) / std::sqrt(static_cast<double>(fan));
  uniform_(t, -bound, bound, gen);
}

void kaiming_normal_(Tensor& t, double a, const std::string& mode, Generator* gen) {
  check_float("init.kaiming_normal_", t);
  const int64_t fan = fan_for("init.kaiming_normal_", t, mode);
  if (t.numel() == 0) return;
  normal_(t, 0.0, leaky_relu_gain(a) / std::sqrt(static_cast<double>(fan)), gen);
}

}  // namespace minidl::nn::init
