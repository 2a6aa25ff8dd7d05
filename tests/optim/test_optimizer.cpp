// Optimisers: each update rule against a second, independent implementation written here in double (the
// textbook forms, with m-hat and v-hat), and against trajectories computed once with PyTorch 1.13; state
// round trips that resume bit for bit; clipping; every bad input an error naming the optimiser.
//
// The problem: parameters w [2,3], b [3] and a 0-d s, each element x with loss 0.5 x^2 + 0.1 x^3, so the
// gradient is x + 0.3 x^2 (non-linear, so a wrong moment shows up in the trajectory).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "autograd/minidl.h"
#include "autograd/safetensors.h"
#include "optim/optimizer.h"
#include "tests/autograd/expect_error.h"

using namespace minidl;
using namespace minidl::optim;

namespace {

using Values = std::vector<std::vector<double>>;  // per parameter, row-major
const Values kStart = {{0.5, -1.5, 2.0, 0.25, -0.75, 1.0}, {0.1, -0.2, 0.3}, {0.7}};

NamedTensors make_params(DType dt, const Values& start = kStart) {
  auto leaf_of = [&](const std::vector<double>& v, Shape s) {
    Tensor t = from_vector(v, s, {.dtype = dt});
    t.requires_grad_();
    return t;
  };
  return {{"w", leaf_of(start[0], {2, 3})},
          {"b", leaf_of(start[1], {3})},
          {"s", scalar_tensor(start[2][0], {.dtype = dt, .requires_grad = true})}};
}

// Backward of the loss over every parameter but `skip`, which keeps an undefined gradient.
void backward_loss(const NamedTensors& ps, int skip = -1) {
  Tensor total;
  for (int i = 0; i < int(ps.size()); ++i) {
    if (i == skip) continue;
    const Tensor& p = ps[size_t(i)].second;
    const Tensor l = sum(p * p * 0.5 + p * p * p * 0.1);
    total = total.defined() ? total + l : l;
  }
  total.backward();
}

Values values_of(const NamedTensors& ps) {
  Values out;
  for (const auto& [name, p] : ps) out.push_back(p.values<double>());
  return out;
}

// `steps` steps; in the first, parameter `skip_first` has no gradient (as torch's p.grad is None).
Values run(Optimizer& opt, int steps, int skip_first = -1, int first_step = 0) {
  for (int k = first_step; k < first_step + steps; ++k) {
    opt.zero_grad();
    backward_loss(opt.params(), k == 0 ? skip_first : -1);
    opt.step();
  }
  return values_of(opt.params());
}

void expect_close(const Values& got, const Values& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t p = 0; p < want.size(); ++p) {
    ASSERT_EQ(got[p].size(), want[p].size()) << what;
    for (size_t i = 0; i < want[p].size(); ++i)
      EXPECT_NEAR(got[p][i], want[p][i], tol * std::max(1.0, std::abs(want[p][i])))
          << what << ": parameter " << p << " element " << i;
  }
}

// ---- the second implementation: the update rules as the papers write them, in double --------------

double grad_at(double x) { return x + 0.3 * x * x; }

Values ref_sgd(int steps, double lr, const SgdOptions& o, int skip_first = -1) {
  Values x = kStart, buf = kStart;
  std::vector<bool> has_buf(x.size(), false);
  for (int k = 0; k < steps; ++k)
    for (size_t p = 0; p < x.size(); ++p) {
      if (k == 0 && int(p) == skip_first) continue;
      for (size_t i = 0; i < x[p].size(); ++i) {
        double d = grad_at(x[p][i]) + o.weight_decay * x[p][i];
        if (o.momentum != 0) {
          buf[p][i] = has_buf[p] ? o.momentum * buf[p][i] + (1 - o.dampening) * d : d;
          d = o.nesterov ? d + o.momentum * buf[p][i] : buf[p][i];
        }
        x[p][i] -= lr * d;
      }
      has_buf[p] = true;
    }
  return x;
}

Values ref_adam(int steps, double lr, const AdamOptions& o, int skip_first = -1) {
  Values x = kStart, m = kStart, v = kStart;
  for (auto* t : {&m, &v})
    for (auto& row : *t) std::fill(row.begin(), row.end(), 0.0);
  std::vector<int> t(x.size(), 0);
  for (int k = 0; k < steps; ++k)
    for (size_t p = 0; p < x.size(); ++p) {
      if (k == 0 && int(p) == skip_first) continue;
      ++t[p];
      for (size_t i = 0; i < x[p].size(); ++i) {
        double g = grad_at(x[p][i]);
        if (o.decoupled_weight_decay)
          x[p][i] -= lr * o.weight_decay * x[p][i];
        else
          g += o.weight_decay * x[p][i];
        m[p][i] = o.beta1 * m[p][i] + (1 - o.beta1) * g;
        v[p][i] = o.beta2 * v[p][i] + (1 - o.beta2) * g * g;
        const double m_hat = m[p][i] / (1 - std::pow(o.beta1, t[p]));
        const double v_hat = v[p][i] / (1 - std::pow(o.beta2, t[p]));
        x[p][i] -= lr * m_hat / (std::sqrt(v_hat) + o.eps);
      }
    }
  return x;
}

// ---- the cases, with PyTorch's numbers ------------------------------------------------------------

// Produced once with Debian's python3-torch 1.13: the same three tensors (torch.float64 / torch.float32),
// loss sum(0.5*p*p + 0.1*p*p*p) over the parameters, 5 x {zero_grad(set_to_none=True), backward, step}
// with the torch.optim constructor named in each case; "skip b" leaves b out of the first loss.
struct Case {
  std::string name;
  std::function<std::unique_ptr<Optimizer>(NamedTensors)> make;
  Values reference, torch64, torch32;
  int skip_first = -1;
};

std::vector<Case> cases() {
  auto sgd = [](double lr, SgdOptions o) {
    return [=](NamedTensors ps) { return std::make_unique<SGD>(std::move(ps), lr, o); };
  };
  auto adam = [](double lr, AdamOptions o) {
    return [=](NamedTensors ps) -> std::unique_ptr<Optimizer> {
      if (o.decoupled_weight_decay) return std::make_unique<AdamW>(std::move(ps), lr, o);
      return std::make_unique<Adam>(std::move(ps), lr, o);
    };
  };
  const SgdOptions damp{.momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01};
  const SgdOptions nest{.momentum = 0.9, .weight_decay = 0.05, .nesterov = true};
  const SgdOptions damp_half{.momentum = 0.9, .dampening = 0.5};
  const AdamOptions l2{.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1};
  const AdamOptions decoupled{.weight_decay = 0.1, .decoupled_weight_decay = true};
  return {
      {"SGD(lr=0.1)",
       sgd(0.1, {}),
       ref_sgd(5, 0.1, {}),
       {{0.2761377538926466, -1.1015414273937238, 0.9171321730809695, 0.14271831099327797, -0.4921854691965526,
         0.5178648124268638},
        {0.05825163146535892, -0.12139355572598738, 0.17012234552018113},
        {0.37665888501834477}},
       {{0.27613773941993713, -1.1015413999557495, 0.9171321988105774, 0.14271831512451172, -0.49218544363975525,
         0.5178648233413696},
        {0.058251626789569855, -0.12139355391263962, 0.17012235522270203},
        {0.3766588568687439}}},
      {"SGD(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)",
       sgd(0.1, damp),
       ref_sgd(5, 0.1, damp),
       {{-0.036619704713716984, -0.5238441011337839, -0.5946533725980808, -0.007481888667858604, -0.12579953734315535,
         -0.154059934110487},
        {-0.00028960629795278384, -0.01074825841741192, -0.0116278321510054},
        {-0.07450874530430922}},
       {{-0.03661966696381569, -0.5238442420959473, -0.5946531891822815, -0.007481887936592102, -0.1257995367050171,
         -0.15405988693237305},
        {-0.0002896033111028373, -0.010748269967734814, -0.011627809144556522},
        {-0.07450870424509048}}},
      {"SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)",
       sgd(0.05, nest),
       ref_sgd(5, 0.05, nest),
       {{0.11373666627694329, -0.7811583104992931, 0.14814811547379408, 0.06439510127176874, -0.2963889598565383,
         0.1715438140795269},
        {0.027639631394690008, -0.06316953112716846, 0.07543089326344048},
        {0.1431131660723345}},
       {{0.11373667418956757, -0.7811582684516907, 0.1481480896472931, 0.06439510732889175, -0.2963889539241791,
         0.17154385149478912},
        {0.027639642357826233, -0.06316953897476196, 0.07543089985847473},
        {0.14311321079730988}}},
      {"SGD(lr=0.1, momentum=0.9, dampening=0.5), skip b",
       sgd(0.1, damp_half),
       ref_sgd(5, 0.1, damp_half, 1),
       {{0.08540395601135266, -0.8078542432987446, -0.09533299375028884, 0.05280632939342715, -0.2907426174044137,
         0.09373424979006409},
        {0.04170374466857909, -0.09199531861413947, 0.11672662405336469},
        {0.09758136222830782}},
       {{0.08540397882461548, -0.8078543543815613, -0.09533284604549408, 0.05280632525682449, -0.2907426655292511,
         0.09373429417610168},
        {0.04170374199748039, -0.09199531376361847, 0.11672662943601608},
        {0.0975814163684845}},
       1},
      {"Adam(lr=0.1)",
       adam(0.1, {}),
       ref_adam(5, 0.1, {}),
       {{0.030823820287895196, -1.0012065860541821, 1.5042756264502957, -0.12867188433431806, -0.2594305077143982,
         0.510110686017027},
        {-0.015032953140647953, 0.11328436125091312, -0.11524375359873656},
        {0.21723508675687375}},
       {{0.030823826789855957, -1.001206636428833, 1.5042754411697388, -0.12867186963558197, -0.25943058729171753,
         0.5101106762886047},
        {-0.015032954514026642, 0.11328435689210892, -0.11524373292922974},
        {0.21723508834838867}}},
      {"Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)",
       adam(0.05, l2),
       ref_adam(5, 0.05, l2),
       {{0.2573061384070565, -1.2505874876102332, 1.7516476725944288, 0.020513912168010524, -0.5028732045165554,
         0.753257843758051},
        {-0.0471054449485304, 0.021144019318131424, 0.06520255273842535},
        {0.45483336184952877}},
       {{0.25730612874031067, -1.2505874633789062, 1.7516475915908813, 0.02051391452550888, -0.5028731226921082,
         0.7532578110694885},
        {-0.04710545018315315, 0.02114403247833252, 0.06520256400108337},
        {0.4548332691192627}}},
      {"AdamW(lr=0.1, weight_decay=0.1)",
       adam(0.1, decoupled),
       ref_adam(5, 0.1, decoupled),
       {{0.018442493785945813, -0.93788754408392, 1.4172398115995928, -0.12802913736210092, -0.23367672870676098,
         0.4723805760823419},
        {-0.013053861123731185, 0.11076652724774341, -0.11695070632998242},
        {0.19454004987479662}},
       {{0.018442466855049133, -0.9378876090049744, 1.417239785194397, -0.12802913784980774, -0.23367679119110107,
         0.4723805785179138},
        {-0.013053856790065765, 0.11076653003692627, -0.11695068329572678},
        {0.1945400834083557}}},
      {"Adam(lr=0.1), skip b",
       adam(0.1, {}),
       ref_adam(5, 0.1, {}, 1),
       {{0.030823820287895196, -1.0012065860541821, 1.5042756264502957, -0.12867188433431806, -0.2594305077143982,
         0.510110686017027},
        {-0.05250292230844591, 0.10766063714712754, -0.060568376268047355},
        {0.21723508675687375}},
       {{0.030823826789855957, -1.001206636428833, 1.5042754411697388, -0.12867186963558197, -0.25943058729171753,
         0.5101106762886047},
        {-0.05250292643904686, 0.10766062140464783, -0.060568347573280334},
        {0.21723508834838867}},
       1},
  };
}

}  // namespace

// ---- trajectories -----------------------------------------------------------------------------------

TEST(Optimizer, Float64TrajectoriesMatchTheReferenceAndTorch) {
  for (const Case& c : cases()) {
    auto opt = c.make(make_params(kFloat64));
    const Values got = run(*opt, 5, c.skip_first);
    expect_close(got, c.reference, 1e-14, c.name + " vs the reference");
    expect_close(got, c.torch64, 1e-14, c.name + " vs torch float64");
    expect_close(c.reference, c.torch64, 1e-14, c.name + ": the reference vs torch float64");
    EXPECT_EQ(opt->steps(), 5);
  }
}

// Measured: every element within 1 float32 ulp of torch's (52 of the 80 bit-equal); the others differ in
// where the same formulas round.
TEST(Optimizer, Float32TrajectoriesMatchTorchToAFewUlps) {
  for (const Case& c : cases()) {
    auto opt = c.make(make_params(kFloat32));
    const Values got = run(*opt, 5, c.skip_first);
    expect_close(got, c.torch32, 4e-7, c.name + " vs torch float32");
    expect_close(got, c.reference, 1e-5, c.name + " vs the double reference");
  }
}

TEST(Optimizer, PlainSgdStepIsTheGradientStep) {
  NamedTensors ps = make_params(kFloat64);
  SGD opt(ps, 0.25);
  run(opt, 1);
  for (size_t p = 0; p < ps.size(); ++p)
    for (size_t i = 0; i < kStart[p].size(); ++i)
      EXPECT_DOUBLE_EQ(ps[p].second.values<double>()[i], kStart[p][i] - 0.25 * grad_at(kStart[p][i]));
}

TEST(Optimizer, FirstAdamStepMovesEveryElementByAboutLr) {
  // With t = 1 the corrected moments are g and g^2, so the step is lr g / (|g| + eps): lr times the sign.
  NamedTensors ps = make_params(kFloat64);
  Adam opt(ps, 0.01);
  run(opt, 1);
  for (size_t p = 0; p < ps.size(); ++p)
    for (size_t i = 0; i < kStart[p].size(); ++i) {
      const double g = grad_at(kStart[p][i]);
      EXPECT_NEAR(ps[p].second.values<double>()[i], kStart[p][i] - 0.01 * g / (std::abs(g) + 1e-8), 1e-15);
    }
}

TEST(Optimizer, ParametersWithoutGradientAreLeftAlone) {
  NamedTensors ps = make_params(kFloat64);
  Adam opt(ps, 0.1);
  run(opt, 1, /*skip_first=*/1);
  EXPECT_EQ(ps[1].second.values<double>(), kStart[1]);
  EXPECT_NE(ps[0].second.values<double>(), kStart[0]);
  std::map<std::string, Tensor> state;
  for (const auto& [name, t] : opt.state_dict()) state[name] = t;
  EXPECT_EQ(state.at("b.step").item(), 0.0);  // b's first update will be its step 1
  EXPECT_EQ(state.at("w.step").item(), 1.0);
  EXPECT_EQ(state.at("b.exp_avg").values<double>(), std::vector<double>(3, 0.0));
  EXPECT_EQ(opt.steps(), 1);
}

TEST(Optimizer, NonContiguousParameterIsUpdatedInItsOwnStorage) {
  Tensor base = from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = kFloat64});
  Tensor p = base.t().detach();  // a [3,2] leaf over base's storage
  p.requires_grad_();
  ASSERT_FALSE(p.is_contiguous());
  Tensor q = from_vector(p.values<double>(), {3, 2}, {.dtype = kFloat64});
  q.requires_grad_();
  const Tensor g = from_vector({0.5, -1, 2, 0.25, 3, -4}, {3, 2}, {.dtype = kFloat64});
  p.set_grad(g.clone());
  q.set_grad(g.clone());
  Adam a({{"p", p}}, 0.1), b({{"q", q}}, 0.1);
  for (int k = 0; k < 3; ++k) a.step(), b.step();
  EXPECT_EQ(p.values<double>(), q.values<double>());
  EXPECT_EQ(base.t().values<double>(), q.values<double>());
}

TEST(Optimizer, StepBumpsTheVersionSoAStaleBackwardRefuses) {
  Tensor w = from_vector({1.0, 2.0}, {2});
  w.requires_grad_();
  const Tensor y = sum(w * w);  // mul saves w
  w.set_grad(ones({2}));
  SGD opt({{"w", w}}, 0.1);
  opt.step();
  EXPECT_THROW(y.backward(), minidl::Error);
}

TEST(Optimizer, ZeroGradDropsGradientsAndSetLrTakesEffect) {
  NamedTensors ps = make_params(kFloat64);
  SGD opt(ps, 0.1);
  backward_loss(ps);
  opt.zero_grad();
  for (const auto& [name, p] : ps) EXPECT_FALSE(p.grad().defined()) << name;
  opt.set_lr(0.0);  // allowed: warm-up starts there
  run(opt, 1);
  EXPECT_EQ(values_of(ps), kStart);
  opt.set_lr(0.25);
  EXPECT_EQ(opt.lr(), 0.25);
}

TEST(Optimizer, AdamWDefaultsToDecoupledDecayOfOneHundredth) {
  NamedTensors a = make_params(kFloat64), b = make_params(kFloat64);
  AdamW w(a, 0.1);
  Adam manual(b, 0.1, {.weight_decay = 0.01, .decoupled_weight_decay = true});
  EXPECT_EQ(w.type_name(), "AdamW");
  EXPECT_EQ(manual.type_name(), "AdamW");
  EXPECT_EQ(Adam(make_params(kFloat64)).type_name(), "Adam");
  EXPECT_EQ(run(w, 3), run(manual, 3));
  expect_close(values_of(a), ref_adam(3, 0.1, {.weight_decay = 0.01, .decoupled_weight_decay = true}), 1e-12,
               "AdamW defaults");
}

// ---- state --------------------------------------------------------------------------------------------

TEST(OptimizerState, NamesFollowTheParameters) {
  NamedTensors ps = make_params(kFloat32);
  Adam adam(ps, 0.1);
  std::vector<std::string> names;
  for (const auto& [name, t] : adam.state_dict()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"w.exp_avg", "w.exp_avg_sq", "w.step", "b.exp_avg", "b.exp_avg_sq",
                                             "b.step", "s.exp_avg", "s.exp_avg_sq", "s.step", "step", "lr"}));
  names.clear();
  for (const auto& [name, t] : SGD(ps, 0.1).state_dict()) names.push_back(name);  // no buffer without momentum
  EXPECT_EQ(names, (std::vector<std::string>{"w.step", "b.step", "s.step", "step", "lr"}));
}

TEST(OptimizerState, ResumeContinuesBitForBit) {
  const std::string path = ::testing::TempDir() + "/minidl_optim_state_" + std::to_string(::getpid()) + ".safetensors";
  for (const Case& c : cases()) {
    // 3 steps (b without a gradient in the first), save, 2 more; a fresh optimiser loaded with the saved
    // state (through a safetensors file, as a checkpoint) and run 2 steps must land on the same bits.
    NamedTensors ps = make_params(kFloat32);
    auto opt = c.make(ps);
    const Values at3 = run(*opt, 3, /*skip_first=*/1);
    save_safetensors(path, opt->state_dict());
    const Values direct = run(*opt, 2, -1, 3);

    auto resumed = c.make(make_params(kFloat32, at3));
    resumed->set_lr(0.5);  // overwritten by the state
    resumed->load_state_dict(load_safetensors(path));
    EXPECT_EQ(resumed->steps(), 3) << c.name;
    EXPECT_EQ(resumed->lr(), opt->lr()) << c.name;
    EXPECT_EQ(run(*resumed, 2, -1, 3), direct) << c.name;
  }
  std::remove(path.c_str());
}

TEST(OptimizerState, SavedStateIsACopy) {
  NamedTensors ps = make_params(kFloat64);
  SGD opt(ps, 0.1, {.momentum = 0.9});
  run(opt, 1);
  const NamedTensors state = opt.state_dict();
  const std::vector<double> buf = state[0].second.values<double>();
  run(opt, 1, -1, 1);
  EXPECT_EQ(state[0].first, "w.momentum_buffer");
  EXPECT_EQ(state[0].second.values<double>(), buf);
}

TEST(OptimizerState, LoadNamesEveryMismatchAndChangesNothing) {
  NamedTensors ps = make_params(kFloat32);
  Adam opt(ps, 0.1);
  run(opt, 2);
  NamedTensors state = opt.state_dict();
  NamedTensors bad;
  for (auto& [name, t] : state) {
    if (name == "w.exp_avg") continue;                                // missing
    if (name == "b.exp_avg_sq") t = zeros({4});                       // wrong shape
    if (name == "step") t = scalar_tensor(2.5, {.dtype = kFloat64});  // not a count
    bad.emplace_back(name, t);
  }
  bad.emplace_back("c.exp_avg", zeros({3}));  // unexpected
  EXPECT_ERROR(opt.load_state_dict(bad), "Adam.load_state_dict", "4 problems", "missing entry 'w.exp_avg'",
               "'b.exp_avg_sq' has shape [4], expected [3] (the shape of parameter 'b')",
               "'step' must be a whole number", "unexpected entry 'c.exp_avg'");
  EXPECT_THROW(opt.load_state_dict(bad), minidl::Error);
  EXPECT_EQ(opt.steps(), 2);
  // A state from a different optimiser kind: every moment is foreign.
  SGD sgd(make_params(kFloat32), 0.1, {.momentum = 0.9});
  EXPECT_ERROR(sgd.load_state_dict(opt.state_dict()), "SGD.load_state_dict", "unexpected entry 'w.exp_avg'",
               "missing entry 'w.momentum_buffer'");
  EXPECT_ERROR(opt.load_state_dict({{"lr", scalar_tensor(-1.0)}}), "'lr' must be finite and >= 0",
               "missing entry 'step'");
  // After the failures the optimiser still continues as if nothing happened.
  NamedTensors fresh = make_params(kFloat32);
  Adam twin(fresh, 0.1);
  run(twin, 2);
  EXPECT_EQ(run(opt, 1, -1, 2), run(twin, 1, -1, 2));
  EXPECT_EQ(values_of(ps), values_of(fresh));
}

// ---- clipping ------------------------------------------------------------------------------------------

TEST(ClipGradNorm, ScalesAboveMaxNormAndReturnsTheNorm) {
  Tensor a = zeros({2}, {.requires_grad = true}), b = zeros({1}, {.requires_grad = true}),
         c = zeros({3}, {.requires_grad = true});
  a.set_grad(from_vector({3.0, 4.0}));
  b.set_grad(from_vector({12.0}));  // total sqrt(9 + 16 + 144) = 13; c has no gradient
  const NamedTensors ps{{"a", a}, {"b", b}, {"c", c}};
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 20.0), 13.0);
  EXPECT_EQ(a.grad().values<float>(), (std::vector<float>{3, 4}));  // below max_norm: untouched
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 6.5), 13.0);
  const double coef = 6.5 / (13.0 + 1e-6);  // torch's guard
  EXPECT_EQ(a.grad().values<float>(), (std::vector<float>{float(3.0f * float(coef)), float(4.0f * float(coef))}));
  EXPECT_NEAR(b.grad().item(), 12.0 * coef, 1e-6);
  EXPECT_NEAR(clip_grad_norm(ps, 100.0), 6.5, 1e-5);
  EXPECT_FALSE(c.grad().defined());
  EXPECT_EQ(clip_grad_norm({{"c", c}}, 1.0), 0.0);
}

TEST(ClipGradNorm, NonFiniteNormIsReturnedAndGradientsAreLeftAlone) {
  Tensor a = zeros({2}, {.requires_grad = true}), b = zeros({2}, {.requires_grad = true});
  a.set_grad(from_vector({INFINITY, 1.0}));
  b.set_grad(from_vector({2.0, 3.0}));
  EXPECT_TRUE(std::isinf(clip_grad_norm({{"a", a}, {"b", b}}, 1.0)));
  EXPECT_EQ(b.grad().values<float>(), (std::vector<float>{2, 3}));
  a.set_grad(from_vector({NAN, 1.0}));
  EXPECT_TRUE(std::isnan(clip_grad_norm({{"a", a}, {"b", b}}, 1.0)));
  EXPECT_EQ(b.grad().values<float>(), (std::vector<float>{2, 3}));
}

TEST(ClipGradNorm, NormDoesNotDependOnTheThreadCount) {
  Generator gen(7);
  Tensor p = zeros({300001}, {.requires_grad = true});
  p.set_grad(randn({300001}, {}, &gen));
  const NamedTensors ps{{"p", p}};
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = clip_grad_norm(ps, 1e9);
  omp_set_num_threads(2);
  const double two = clip_grad_norm(ps, 1e9);
  omp_set_num_threads(threads);
  EXPECT_EQ(one, two);
  double sq = 0;
  for (float v : p.grad().values<float>()) sq += double(v) * v;
  EXPECT_NEAR(one, std::sqrt(sq), 1e-12 * one);
}

// ---- bad input -----------------------------------------------------------------------------------------

TEST(OptimizerErrors, HyperParametersAreChecked) {
  auto ps = [] { return make_params(kFloat32); };
  EXPECT_ERROR(SGD(ps(), 0.0), "SGD: lr must be finite and > 0, got 0");
  EXPECT_ERROR(SGD(ps(), -1e-3), "SGD: lr", "-0.001");
  EXPECT_ERROR(SGD(ps(), NAN), "SGD: lr", "nan");
  EXPECT_ERROR(SGD(ps(), 0.1, {.momentum = -0.5}), "SGD: momentum", "-0.5");
  EXPECT_ERROR(SGD(ps(), 0.1, {.momentum = 0.9, .dampening = 1.5}), "SGD: dampening", "1.5");
  EXPECT_ERROR(SGD(ps(), 0.1, {.weight_decay = -1}), "SGD: weight_decay", "-1");
  EXPECT_ERROR(SGD(ps(), 0.1, {.nesterov = true}), "SGD: nesterov needs momentum > 0", "momentum 0");
  EXPECT_ERROR(SGD(ps(), 0.1, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), "SGD: nesterov", "dampening 0.1");
  EXPECT_ERROR(Adam(ps(), 0.0), "Adam: lr");
  EXPECT_ERROR(Adam(ps(), 0.1, {.beta1 = 1.0}), "Adam: beta1 must be in [0, 1), got 1");
  EXPECT_ERROR(Adam(ps(), 0.1, {.beta2 = -0.1}), "Adam: beta2", "-0.1");
  EXPECT_ERROR(Adam(ps(), 0.1, {.eps = 0.0}), "Adam: eps must be finite and > 0");
  EXPECT_ERROR(Adam(ps(), 0.1, {.weight_decay = -0.1}), "Adam: weight_decay");
  EXPECT_ERROR(AdamW(ps(), 0.1, {.beta1 = 1.5}), "AdamW: beta1", "1.5");
  SGD ok(ps(), 0.1);
  EXPECT_ERROR(ok.set_lr(-0.5), "SGD.set_lr: lr must be finite and >= 0, got -0.5");
}

TEST(OptimizerErrors, ParameterListsAreChecked) {
  Tensor w = ones({2}, {.requires_grad = true}), frozen = ones({2});
  EXPECT_ERROR(SGD({}, 0.1), "SGD: got an empty parameter list");
  EXPECT_ERROR(Adam({{"w", w}, {"w", ones({3}, {.requires_grad = true})}}, 0.1),
               "Adam: parameter name 'w' appears twice");
  EXPECT_ERROR(Adam({{"w", w}, {"tied", w}}, 0.1), "Adam: parameters 'w' and 'tied' are the same tensor");
  EXPECT_ERROR(SGD({{"frozen", frozen}}, 0.1), "SGD: parameter 'frozen'", "does not require grad");
  EXPECT_ERROR(SGD({{"y", w * 2.0}}, 0.1), "SGD: parameter 'y'", "not a leaf");
  EXPECT_ERROR(AdamW({{"u", Tensor()}}, 0.1), "AdamW: parameter 'u' is an undefined tensor");
  EXPECT_ERROR(SGD({{"", w}}, 0.1), "SGD: a parameter has an empty name");
  EXPECT_ERROR(clip_grad_norm({{"w", w}}, 0.0), "clip_grad_norm: max_norm must be finite and > 0, got 0");
  EXPECT_ERROR(clip_grad_norm({{"w", w}}, NAN), "clip_grad_norm: max_norm", "nan");
}

TEST(OptimizerErrors, Float64CudaParameterIsRefusedBeforeAnyUpdate) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: this test needs a GPU";
  Tensor w = ones({3}, {.dtype = kFloat64}).to(Device::cuda(0)).detach();
  w.requires_grad_();
  w.set_grad(ones({3}, {.dtype = kFloat64}).to(Device::cuda(0)));
  Adam opt({{"w", w}}, 0.1);
  EXPECT_ERROR(opt.step(), "Adam.step: parameter 'w'", "float64[3] on cuda:0", "float32");
  EXPECT_EQ(w.values<double>(), (std::vector<double>{1, 1, 1})) << "nothing was updated";
}
