// joint_cross_attention (autograd/ops_attention.cpp, cpu/attention.cpp): finite-difference gradchecks of
// every input and weight at odd sizes, the op against its composed reference forward and backward at the
// tiny, small and paper widths, determinism across thread counts, and its errors.
//
// Tolerances against the composition:
//   float64: 1e-12, absolute plus relative. Both compute the same sums in different orders (the fused
//   kernel takes the rows of X^T in blocks), which moves results by a few units of 1e-16 per term; the
//   backward's longest sums run over B d rows.
//   float32: the orders differ as in float64, and the fused op's tanh is glibc's vector tanhf (a few ulp
//   from the scalar one). The forward agrees to ~1e-6 of its outputs (which are O(1)); the gradients are
//   sums of up to B d = 256 products and agree to ~1e-5 of their largest entries. 2e-5 absolute plus 1e-4
//   relative covers both with room, while a wrong term (a missed residual, a transposed weight, a ReLU mask
//   from the wrong side) moves entries by O(1).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "autograd/minidl.h"
#include "tests/autograd/gradcheck_helpers.h"

namespace minidl {
namespace {

using namespace gradcheck_test;

struct Case {
  int64_t B, L, d, k;
};

// X_a, X_v and both branches' weights, drawn from `seed`, scaled so that tanh and relu work in their
// curved and their linear parts alike.
struct Problem {
  Tensor xa, xv;
  JcaWeights audio, visual;
  Problem(const Case& c, uint64_t seed, DType dtype = kFloat64) {
    Generator g(seed);
    const TensorOptions o{.dtype = dtype};
    auto draw = [&](const Shape& s, double scale) { return leaf(randn(s, o, &g) * scale); };
    xa = draw({c.B, c.L, c.d}, 1.0);
    xv = draw({c.B, c.L, c.d}, 1.0);
    for (JcaWeights* w : {&audio, &visual})
      *w = {draw({c.L, c.L}, 0.5), draw({c.k, c.L}, 0.5), draw({c.k, 2 * c.d}, 0.3), draw({c.L, c.k}, 0.5)};
    for (Tensor* t : inputs_ptrs()) *t = t->detach().requires_grad_();
  }
  std::vector<Tensor*> inputs_ptrs() {
    return {&xa,       &xv,         &audio.affine, &audio.w, &audio.w_c, &audio.w_h, &visual.affine,
            &visual.w, &visual.w_c, &visual.w_h};
  }
  std::vector<Tensor> inputs() {
    std::vector<Tensor> out;
    for (Tensor* t : inputs_ptrs()) out.push_back(*t);
    return out;
  }
};

// Both outputs as one tensor, for gradcheck and for comparing.
Tensor both(const JcaResult& r) { return cat({r.audio.reshape({-1}), r.visual.reshape({-1})}); }

using Op = JcaResult (*)(const Tensor&, const Tensor&, const JcaWeights&, const JcaWeights&);

// The outputs and every input's gradient for the upstream gradient `up` (drawn with the outputs' shape).
std::vector<Tensor> run(Op op, Problem& p, const Tensor& up) {
  for (Tensor* t : p.inputs_ptrs()) t->zero_grad();
  const Tensor out = both(op(p.xa, p.xv, p.audio, p.visual));
  sum(out * up).backward();
  std::vector<Tensor> res{out.detach()};
  for (Tensor* t : p.inputs_ptrs()) res.push_back(t->grad());
  return res;
}

// max |a - b| / (atol + rtol |b|) over all entries; <= 1 passes.
double worst_ratio(const Tensor& a, const Tensor& b, double atol, double rtol) {
  const std::vector<double> x = a.values<double>(), y = b.values<double>();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]) / (atol + rtol * std::abs(y[i])));
  return worst;
}

const char* kNames[] = {"output",        "xa",       "xv",         "audio.affine", "audio.w", "audio.w_c", "audio.w_h",
                        "visual.affine", "visual.w", "visual.w_c", "visual.w_h"};

void expect_matches_reference(const Case& c, DType dtype, double atol, double rtol) {
  Problem p(c, 11, dtype);
  Generator g(12);
  const Tensor up = randn({2 * c.B * c.L * c.d}, {.dtype = dtype}, &g);
  const std::vector<Tensor> fused = run(joint_cross_attention, p, up),
                            ref = run(joint_cross_attention_reference, p, up);
  for (size_t i = 0; i < fused.size(); ++i) {
    ASSERT_TRUE(fused[i].defined()) << kNames[i];
    const double r = worst_ratio(fused[i], ref[i], atol, rtol);
    EXPECT_LE(r, 1.0) << kNames[i] << " at B " << c.B << ", L " << c.L << ", d " << c.d << ", k " << c.k << ", "
                      << dtype_name(dtype) << ": worst entry at " << r << " of the tolerance";
    std::printf("  %-14s %s B%lld L%lld d%lld k%lld: worst entry at %.3g of the tolerance\n", kNames[i],
                dtype_name(dtype), static_cast<long long>(c.B), static_cast<long long>(c.L),
                static_cast<long long>(c.d), static_cast<long long>(c.k), r);
  }
}

}  // namespace

TEST(JointCrossAttention, GradcheckEveryInputAndWeightAtOddSizes) {
  // Every L in {1, 3, 16}, d in {1, 7, 33} and k in {1, 5} appears; d = 33 leaves a partial row block.
  for (const Case& c : {Case{1, 1, 1, 1}, Case{2, 3, 7, 5}, Case{1, 16, 33, 5}, Case{2, 3, 33, 1}, Case{1, 16, 7, 1},
                        Case{2, 1, 33, 5}}) {
    Problem p(c, 100 + static_cast<uint64_t>(c.L * 1000 + c.d * 10 + c.k));
    const GradcheckResult r = gradcheck(
        [](const std::vector<Tensor>& in) {
          return both(joint_cross_attention(in[0], in[1], {in[2], in[3], in[4], in[5]}, {in[6], in[7], in[8], in[9]}));
        },
        p.inputs());
    EXPECT_TRUE(r.ok) << "B " << c.B << ", L " << c.L << ", d " << c.d << ", k " << c.k << ": " << r.message;
    EXPECT_GT(r.entries, 0);
  }
}

TEST(JointCrossAttention, EqualsTheCompositionInFloat64) {
  // Tiny (L 8, d 32, k 16), small (L 16, d 64, k 32) and paper (L 16, d 128, k 32) widths.
  for (const Case& c : {Case{3, 8, 32, 16}, Case{2, 16, 64, 32}, Case{2, 16, 128, 32}})
    expect_matches_reference(c, kFloat64, 1e-12, 1e-12);
}

TEST(JointCrossAttention, EqualsTheCompositionInFloat32) {
  for (const Case& c : {Case{3, 8, 32, 16}, Case{2, 16, 64, 32}, Case{2, 16, 128, 32}})
    expect_matches_reference(c, kFloat32, 2e-5, 1e-4);
}

TEST(JointCrossAttention, BitsDoNotDependOnTheThreadCount) {
  const Case c{5, 8, 40, 16};
  const int before = omp_get_max_threads();
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    Problem p(c, 21, kFloat32);
    Generator g(22);
    const Tensor up = randn({2 * c.B * c.L * c.d}, {}, &g);
    std::vector<float> all;
    for (const Tensor& t : run(joint_cross_attention, p, up))
      for (float v : t.values<float>()) all.push_back(v);
    runs.push_back(all);
  }
  omp_set_num_threads(before);
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

TEST(JointCrossAttention, RecordsOneNodeThatSavesItsInputsAndOnTheCpuCAndH) {
  Problem p({2, 4, 6, 3}, 31, kFloat32);
  const JcaResult r = joint_cross_attention(p.xa, p.xv, p.audio, p.visual);
  ASSERT_TRUE(r.audio.grad_fn());
  EXPECT_EQ(r.audio.grad_fn(), r.visual.grad_fn());
  const Node& n = *r.audio.grad_fn();
  EXPECT_EQ(n.name(), "joint_cross_attention");
  EXPECT_EQ(n.edges.size(), 10u);
  ASSERT_EQ(n.saved.size(), 12u) << "X_a, X_v, the eight weights, and the forward's C and H";
  EXPECT_EQ(n.saved[0].str(), "float32[2,4,6] on cpu");
  EXPECT_EQ(n.saved[4].str(), "float32[3,12] on cpu");
  EXPECT_EQ(n.saved[10].str(), "float32[2,2,6,12] on cpu");  // C of every sequence and branch: [d, 2d]
  EXPECT_EQ(n.saved[11].str(), "float32[2,2,6,3] on cpu");   // H: [d, k]
  // Without a gradient to compute, nothing is kept.
  {
    const NoGradGuard no_grad;
    EXPECT_FALSE(joint_cross_attention(p.xa, p.xv, p.audio, p.visual).audio.grad_fn());
  }
  // A gradient reaching only one output: the other counts as zero.
  sum(r.visual).backward();
  EXPECT_TRUE(p.xa.grad().defined());
  EXPECT_TRUE(p.audio.w_c.grad().defined());
  EXPECT_EQ(sum(abs(p.audio.w_c.grad())).item(), 0.0) << "nothing reached the audio branch's output";
  EXPECT_GT(sum(abs(p.visual.w_c.grad())).item(), 0.0);
}

TEST(JointCrossAttention, ErrorsNameTheWeightAndItsShape) {
  Problem p({2, 4, 6, 3}, 41, kFloat32);
  JcaWeights bad = p.visual;
  bad.w_c = zeros({3, 6});
  try {
    joint_cross_attention(p.xa, p.xv, p.audio, bad);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("joint_cross_attention: the visual branch's w_c (W_ca / W_cv) must be [3,12] "
                                         "for inputs float32[2,4,6] on cpu, got float32[3,6] on cpu"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(joint_cross_attention(p.xa, p.xv.narrow(1, 0, 3), p.audio, p.visual), Error);
  EXPECT_THROW(joint_cross_attention(p.xa, p.xv.to(kFloat64), p.audio, p.visual), Error);
}

}  // namespace minidl
