// joint_cross_attention's CUDA kernels (cuda/attention.cu) against its CPU kernel, forward and every
// gradient, at sizes that leave partial row blocks (d not a multiple of 4), single clips and single
// attention units, and the paper's widths; the kernels' size limits; determinism.
//
// Tolerance: both sides sum the same products in float32 in different orders, and tanhf differs in its
// last bits between glibc's vector tanhf and the GPU's. The forward's longest sums are the correlation's
// (L terms) feeding C W_c^T (2d terms): float_sums(2d + L). The gradients' longest are the weights' over
// B d rows: float_sums(B d + 2d). A wrong index or a missed term errs by a whole term.
#include <gtest/gtest.h>

#include "autograd/minidl.h"
#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

namespace {

struct Case {
  int64_t B, L, d, k;
};

// Inputs in [-2, 2] and weights scaled down, so that tanh and relu see both their flat and steep parts.
std::vector<Input> inputs_of(const Case& c) {
  const double w = 0.5, wc = 1.0 / std::sqrt(static_cast<double>(2 * c.d));
  std::vector<Input> in{{{c.B, c.L, c.d}}, {{c.B, c.L, c.d}}};
  for (int branch = 0; branch < 2; ++branch)
    for (const Input& i :
         {Input{{c.L, c.L}, -w, w}, Input{{c.k, c.L}, -w, w}, Input{{c.k, 2 * c.d}, -wc, wc}, Input{{c.L, c.k}, -w, w}})
      in.push_back(i);
  return in;
}

Tolerance forward_tolerance(const Case& c) { return float_sums(2 * c.d + c.L); }
Tolerance backward_tolerance(const Case& c) { return float_sums(c.B * c.d + 2 * c.d); }

Tensor jca(const std::vector<Tensor>& in) {
  const JcaResult r = joint_cross_attention(in[0], in[1], {in[2], in[3], in[4], in[5]}, {in[6], in[7], in[8], in[9]});
  return cat({r.audio.reshape({-1}), r.visual.reshape({-1})});
}

}  // namespace

TEST(CudaAttention, MatchesTheCpuForwardAndBackward) {
  REQUIRE_GPU();
  for (const Case& c :
       {Case{1, 1, 1, 1}, Case{2, 3, 7, 5}, Case{1, 16, 33, 5}, Case{3, 5, 6, 2}, Case{2, 16, 128, 32}}) {
    compare_op("B " + std::to_string(c.B) + ", L " + std::to_string(c.L) + ", d " + std::to_string(c.d) + ", k " +
                   std::to_string(c.k),
               jca, inputs_of(c), forward_tolerance(c), backward_tolerance(c));
  }
}

TEST(CudaAttention, OneOutputsGradientAlone) {
  REQUIRE_GPU();
  const Case c{2, 4, 9, 3};
  compare_op(
      "only the visual branch's output",
      [](const std::vector<Tensor>& in) {
        return joint_cross_attention(in[0], in[1], {in[2], in[3], in[4], in[5]}, {in[6], in[7], in[8], in[9]}).visual;
      },
      inputs_of(c), forward_tolerance(c), backward_tolerance(c));
}

TEST(CudaAttention, SameBitsEveryRun) {
  REQUIRE_GPU();
  const Case c{2, 8, 20, 6};
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Generator g(3);
    std::vector<Tensor> in;
    for (const Input& i : inputs_of(c)) in.push_back(rand(i.shape, {.device = kGpu}, &g, i.lo, i.hi).requires_grad_());
    const Tensor out = jca(in);
    sum(out * out).backward();
    std::vector<float> all = out.values<float>();
    for (const Tensor& t : in)
      for (float v : t.grad().values<float>()) all.push_back(v);
    if (run == 0)
      first = all;
    else
      EXPECT_EQ(all, first) << "no atomics: each element is summed by one thread in a fixed order";
  }
}

TEST(CudaAttention, SizesPastTheKernelsLimitsAreRefused) {
  REQUIRE_GPU();
  for (const Case& c : {Case{1, 65, 4, 2}, Case{1, 4, 1025, 2}, Case{1, 4, 8, 257}}) {
    std::vector<Tensor> in;
    for (const Input& i : inputs_of(c)) in.push_back(zeros(i.shape, {.device = kGpu}));
    try {
      jca(in);
      ADD_FAILURE() << "L " << c.L << ", d " << c.d << ", k " << c.k << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("the CUDA kernels take L <= 64, d <= 1024 and k <= 256"), std::string::npos)
          << e.what();
    }
  }
  // The composition has no such limit.
  std::vector<Tensor> in;
  for (const Input& i : inputs_of({1, 65, 2, 2})) in.push_back(zeros(i.shape, {.device = kGpu}));
  const JcaResult r =
      joint_cross_attention_reference(in[0], in[1], {in[2], in[3], in[4], in[5]}, {in[6], in[7], in[8], in[9]});
  EXPECT_EQ(r.audio.shape(), (Shape{1, 65, 2}));
}
