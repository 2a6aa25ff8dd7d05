// Module: dotted names and their order (checked against what torch produces for the same model),
// train/eval, zero_grad, dtype conversion, summary(), load_state_dict's all-or-nothing checks, and
// checkpoints through a file. Also Linear and the activation modules.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "autograd/safetensors.h"
#include "layers/activation.h"
#include "layers/linear.h"
#include "layers/module.h"
#include "tests/autograd/expect_error.h"
#include "tests/data/data_test_helpers.h"

using namespace minidl;
using namespace minidl::nn;

namespace {

// The torch twin of this model (torch 1.13 gives the names listed in NamesAndOrderMatchTorch):
//   class Net(nn.Module):
//     def __init__(self):
//       super().__init__()
//       self.embed = nn.Linear(4, 8)
//       self.head = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
//       self.register_buffer("running", torch.zeros(2))
//       self.gain = nn.Parameter(torch.ones(2))
// Children come first in registration here on purpose: torch still lists a module's own entries first.
class Net : public Module {
 public:
  explicit Net(uint64_t seed) : gen_(seed), embed(4, 8, true, &gen_) {
    head.add(std::make_shared<Linear>(8, 6, true, &gen_))
        .add(std::make_shared<ReLU>())
        .add(std::make_shared<Linear>(6, 2, true, &gen_));
    register_module("embed", &embed);
    register_module("head", &head);
    running = zeros({2});
    register_buffer("running", &running);
    gain = ones({2});
    register_parameter("gain", &gain);
  }
  std::string type_name() const override { return "Net"; }
  Tensor forward(const Tensor& x) { return head(embed(x)) * gain; }

  Generator gen_;
  Linear embed;
  Sequential head;
  Tensor running, gain;
};

std::vector<std::string> names(const NamedTensors& list) {
  std::vector<std::string> out;
  for (const auto& [n, t] : list) out.push_back(n);
  return out;
}

// Every state tensor's values, to compare a model before and after a load.
std::vector<std::vector<double>> snapshot(const Module& m) {
  std::vector<std::vector<double>> out;
  for (const auto& [n, t] : m.state_dict()) out.push_back(t.values<double>());
  return out;
}

// The message of the minidl::Error f throws (in this process, so the caller can inspect the model after).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no minidl::Error was thrown";
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(Module, NamesAndOrderMatchTorch) {
  Net net(1);
  EXPECT_EQ(names(net.state_dict()),
            (std::vector<std::string>{"gain", "running", "embed.weight", "embed.bias", "head.0.weight", "head.0.bias",
                                      "head.2.weight", "head.2.bias"}));
  EXPECT_EQ(names(net.named_parameters()),
            (std::vector<std::string>{"gain", "embed.weight", "embed.bias", "head.0.weight", "head.0.bias",
                                      "head.2.weight", "head.2.bias"}));
  EXPECT_EQ(names(net.named_buffers()), (std::vector<std::string>{"running"}));
  const auto children = net.named_children();
  ASSERT_EQ(children.size(), 2u);
  EXPECT_EQ(children[0].first, "embed");
  EXPECT_EQ(children[1].first, "head");
  EXPECT_EQ(children[1].second, &net.head);
  // The entries are the module's own tensors, not copies.
  EXPECT_TRUE(net.state_dict()[2].second.is_same(net.embed.weight));
}

TEST(Module, ParameterCountAndLeaves) {
  Net net(1);
  EXPECT_EQ(net.parameter_count(), 2 + (4 * 8 + 8) + (8 * 6 + 6) + (6 * 2 + 2));  // 110, as torch counts
  for (const Tensor& p : net.parameters()) {
    EXPECT_TRUE(p.requires_grad());
    EXPECT_TRUE(p.is_leaf());
  }
  EXPECT_FALSE(net.running.requires_grad());
}

TEST(Module, TrainAndEvalReachEveryDescendant) {
  Net net(1);
  EXPECT_TRUE(net.is_training());
  net.eval();
  EXPECT_FALSE(net.is_training());
  EXPECT_FALSE(net.embed.is_training());
  EXPECT_FALSE(net.head.is_training());
  for (size_t i = 0; i < net.head.size(); ++i) EXPECT_FALSE(net.head[i].is_training()) << i;
  net.head.train();  // only the subtree
  EXPECT_FALSE(net.is_training());
  EXPECT_TRUE(net.head[2].is_training());
  net.train();
  EXPECT_TRUE(net.embed.is_training());
}

TEST(Module, ZeroGradDropsEveryGradient) {
  Net net(1);
  sum(net.forward(rand({3, 4}))).backward();
  for (const auto& [n, p] : net.named_parameters()) EXPECT_TRUE(p.grad().defined()) << n;
  net.zero_grad();
  for (const auto& [n, p] : net.named_parameters()) EXPECT_FALSE(p.grad().defined()) << n;
}

TEST(Module, ToFloat64KeepsTrainableLeaves) {
  Net net(1);
  const std::vector<float> w = net.embed.weight.values<float>();
  net.to(kFloat64);
  for (const auto& [n, t] : net.state_dict()) EXPECT_EQ(t.dtype(), kFloat64) << n;
  for (const auto& [n, p] : net.named_parameters()) {
    EXPECT_TRUE(p.requires_grad()) << n;
    EXPECT_TRUE(p.is_leaf()) << n;
  }
  const std::vector<double> w64 = net.embed.weight.values<double>();
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(w64[i], static_cast<double>(w[i]));
  // The converted model trains: gradients reach the new float64 leaves.
  sum(net.forward(rand({3, 4}, {.dtype = kFloat64}))).backward();
  EXPECT_EQ(net.embed.weight.grad().dtype(), kFloat64);
  EXPECT_TRUE(net.gain.grad().defined());
}

TEST(Module, ToKeepsFrozenParametersFrozenAndRefusesIntegerDTypes) {
  Net net(1);
  net.embed.weight.requires_grad_(false);  // a frozen layer
  net.to(kFloat64);
  EXPECT_FALSE(net.embed.weight.requires_grad());
  EXPECT_TRUE(net.embed.bias.requires_grad());
  net.to(Device::cpu());  // same device: nothing moves
  EXPECT_EQ(net.embed.weight.dtype(), kFloat64);
  const std::string msg = error_of([&] { net.to(kInt64); });  // in this process, to inspect the model after
  EXPECT_TRUE(contains(msg, "Net.to") && contains(msg, "int64")) << msg;
  for (const auto& [n, t] : net.state_dict()) EXPECT_EQ(t.dtype(), kFloat64) << n;  // nothing half-converted
}

TEST(Module, SummaryShowsTheTreeAndTotal) {
  Net net(1);
  const std::string s = net.summary();
  for (const char* part :
       {"Net  [110 parameters]", "(embed): Linear(in=4, out=8, bias=true)  [40 parameters]",
        "(head): Sequential  [68 parameters]", "    (0): Linear(in=8, out=6, bias=true)", "(1): ReLU  [0 parameters]",
        "(2): Linear(in=6, out=2, bias=true)  [14 parameters]", "Total: 110 parameters"})
    EXPECT_TRUE(contains(s, part)) << "lacks '" << part << "' in\n" << s;
  // Pre-order: the children of head come after head and before the total.
  EXPECT_LT(s.find("(head)"), s.find("(0): Linear"));
}

TEST(Module, LoadStateDictCopiesValuesWithoutAliasing) {
  Net a(1), b(2);
  ASSERT_NE(snapshot(a), snapshot(b));
  const Tensor held = b.embed.weight;  // what an optimiser built before the load would hold
  const NamedTensors state = a.state_dict();
  b.load_state_dict(state);
  EXPECT_EQ(snapshot(a), snapshot(b));
  // Loaded in place: the old handle sees the new values and is still the module's parameter.
  EXPECT_TRUE(held.is_same(b.embed.weight));
  EXPECT_EQ(held.values<float>(), a.embed.weight.values<float>());
  for (const auto& [n, p] : b.named_parameters()) {
    EXPECT_TRUE(p.requires_grad()) << n;
    EXPECT_TRUE(p.is_leaf()) << n;
  }
  // No aliasing either way: writing into the source leaves the loaded model alone.
  {
    NoGradGuard no_grad;
    for (const auto& [n, t] : state) const_cast<Tensor&>(t).fill_(7.0);
  }
  for (const auto& [n, t] : b.state_dict()) EXPECT_NE(t.values<double>()[0], 7.0) << n;
  // And the forward pass agrees with the source model's values.
  Net c(1);
  const Tensor x = rand({2, 4});
  EXPECT_EQ(b.forward(x).values<float>(), c.forward(x).values<float>());
}

TEST(Module, LoadStateDictReportsEveryProblemAndChangesNothing) {
  // Two of each kind of problem: every name is listed, not only the first of its kind.
  Net a(1), b(2);
  NamedTensors state;
  for (const auto& [n, t] : a.state_dict()) {
    if (n == "embed.bias" || n == "head.2.weight") continue;  // missing
    state.emplace_back(n, n == "head.0.weight" ? zeros({6, 7}) : n == "head.2.bias" ? zeros({5}) : t);
  }
  state.emplace_back("extra.weight", zeros({3}));  // unexpected
  state.emplace_back("extra.bias", zeros({3}));
  const auto before = snapshot(b);
  const std::string msg = error_of([&] { b.load_state_dict(state); });
  for (const char* part :
       {"this Net (2 missing, 2 unexpected, 2 wrong shape)", "missing (2): embed.bias; head.2.weight;",
        "unexpected (2): extra.bias; extra.weight;",
        "wrong shape (2): head.0.weight (checkpoint [6,7], model [6,8]); head.2.bias (checkpoint [5], model [2]);"})
    EXPECT_TRUE(contains(msg, part)) << "lacks '" << part << "' in: " << msg;
  EXPECT_EQ(snapshot(b), before);
}

TEST(Module, NonStrictLoadSkipsMissingAndUnexpectedButNotWrongShapes) {
  Net a(1), b(2);
  NamedTensors state;
  for (const auto& [n, t] : a.state_dict())
    if (n != "embed.bias") state.emplace_back(n, t);
  state.emplace_back("extra.weight", zeros({3}));
  const std::vector<float> b_bias = b.embed.bias.values<float>();
  b.load_state_dict(state, /*strict=*/false);
  EXPECT_EQ(b.embed.bias.values<float>(), b_bias);  // missing: kept
  EXPECT_EQ(b.embed.weight.values<float>(), a.embed.weight.values<float>());
  EXPECT_EQ(b.head[2].state_dict()[0].second.values<float>(), a.head[2].state_dict()[0].second.values<float>());

  Net c(3);
  for (auto& [n, t] : state)
    if (n == "head.2.bias") t = zeros({5});
  const auto before = snapshot(c);
  const std::string msg = error_of([&] { c.load_state_dict(state, false); });
  EXPECT_TRUE(contains(msg, "wrong shape (1): head.2.bias (checkpoint [5], model [2])")) << msg;
  EXPECT_FALSE(contains(msg, "missing")) << msg;
  EXPECT_FALSE(contains(msg, "unexpected")) << msg;
  EXPECT_EQ(snapshot(c), before);
}

TEST(Module, LoadConvertsDtype) {
  Net a(1), b(2);
  NamedTensors state;
  for (const auto& [n, t] : a.state_dict()) state.emplace_back(n, t.to(kFloat64).detach() + 0.25);
  b.load_state_dict(state);
  for (const auto& [n, t] : b.state_dict()) EXPECT_EQ(t.dtype(), kFloat32) << n;
  const std::vector<float> expect = (a.embed.weight.detach() + 0.25).values<float>();
  EXPECT_EQ(b.embed.weight.values<float>(), expect);
  EXPECT_TRUE(b.embed.weight.requires_grad());
}

TEST(Module, LoadRejectsAnUndefinedTensorByName) {
  Net a(1), b(2);
  NamedTensors state = a.state_dict();
  state[3].second = Tensor();
  const std::string msg = error_of([&] { b.load_state_dict(state); });
  EXPECT_TRUE(contains(msg, "embed.bias")) << msg;
}

TEST(Module, SaveAndLoadThroughAFile) {
  data_test::TempDir dir;
  const std::string path = dir.file("net.safetensors");
  Net a(1), b(2);
  {
    NoGradGuard no_grad;
    a.running.fill_(0.5);
  }
  save(a, path);
  // The file holds the state_dict in its order, with torch's names.
  std::map<std::string, std::string> meta;
  const TensorList raw = load_safetensors(path, &meta);
  EXPECT_EQ(names(raw), names(a.state_dict()));
  EXPECT_EQ(meta["format"], "pt");
  load(b, path);
  EXPECT_EQ(snapshot(a), snapshot(b));

  // A checkpoint of another architecture is refused by name.
  Linear other(3, 3);
  const std::string msg = error_of([&] { load(other, path); });
  EXPECT_TRUE(contains(msg, "missing (2): weight; bias;")) << msg;
  EXPECT_TRUE(contains(msg, "unexpected (8): embed.bias;")) << msg;
  const std::string missing = error_of([&] { load(b, dir.file("absent.safetensors")); });
  EXPECT_TRUE(contains(missing, "absent.safetensors")) << missing;
}

namespace {

class BadNames : public Module {
 public:
  explicit BadNames(int which) : inner(2, 2) {
    w = zeros({2});
    if (which == 0) register_parameter("a.b", &w);
    if (which == 1) register_parameter("", &w);
    if (which == 2) {
      register_parameter("w", &w);
      register_buffer("w", &w);
    }
    if (which == 3) {
      register_module("inner", &inner);
      register_parameter("inner", &w);
    }
    if (which == 4) {
      i = zeros({2}, {.dtype = kInt64});
      register_parameter("i", &i);
    }
  }
  std::string type_name() const override { return "BadNames"; }
  Tensor w, i;
  Linear inner;
};

}  // namespace

TEST(Module, RegistrationErrorsNameTheModuleAndTheName) {
  EXPECT_ERROR(BadNames(0), "BadNames", "'a.b'", "no '.'");
  EXPECT_ERROR(BadNames(1), "BadNames", "not a valid name");
  EXPECT_ERROR(BadNames(2), "BadNames", "'w' is already registered");
  EXPECT_ERROR(BadNames(3), "BadNames", "'inner' is already registered");
  EXPECT_ERROR(BadNames(4), "BadNames", "'i' must be float");
  Sequential seq;
  EXPECT_ERROR(seq.add(nullptr), "Sequential", "null");
}

// ---- Linear and activations ---------------------------------------------------------------------------

TEST(Linear, ForwardIsXWTransposedPlusBias) {
  Linear lin(3, 2);
  EXPECT_EQ(lin.weight.shape(), (Shape{2, 3}));
  EXPECT_EQ(lin.bias.shape(), (Shape{2}));
  EXPECT_EQ(lin.describe(), "Linear(in=3, out=2, bias=true)");
  const Tensor x = from_vector({1, 2, 3, -1, 0, 0.5}, {2, 3});
  const std::vector<float> w = lin.weight.values<float>(), b = lin.bias.values<float>();
  const std::vector<float> y = lin(x).values<float>();
  const std::vector<float> xv = x.values<float>();
  for (int r = 0; r < 2; ++r)
    for (int o = 0; o < 2; ++o) {
      double want = b[o];
      for (int i = 0; i < 3; ++i) want += xv[r * 3 + i] * w[o * 3 + i];
      EXPECT_NEAR(y[r * 2 + o], want, 1e-6);
    }
  // Batch dims pass through.
  EXPECT_EQ(lin(rand({4, 5, 3})).shape(), (Shape{4, 5, 2}));
}

TEST(Linear, WithoutBias) {
  Linear lin(3, 2, false);
  EXPECT_FALSE(lin.bias.defined());
  EXPECT_EQ(names(lin.state_dict()), (std::vector<std::string>{"weight"}));
  EXPECT_EQ(lin.parameter_count(), 6);
  EXPECT_EQ(lin.describe(), "Linear(in=3, out=2, bias=false)");
  EXPECT_EQ(lin(ones({1, 3})).values<float>(), sum(lin.weight.detach(), {1}).values<float>());
}

TEST(Linear, SeededGeneratorGivesTheSameLayer) {
  Generator g1(42), g2(42), g3(43);
  Linear a(5, 4, true, &g1), b(5, 4, true, &g2), c(5, 4, true, &g3);
  EXPECT_EQ(a.weight.values<float>(), b.weight.values<float>());
  EXPECT_EQ(a.bias.values<float>(), b.bias.values<float>());
  EXPECT_NE(a.weight.values<float>(), c.weight.values<float>());
}

TEST(Linear, Errors) {
  EXPECT_ERROR(Linear(-1, 2), "Linear", "in=-1");
  Linear lin(3, 2);
  EXPECT_ERROR(lin(ones({2, 4})), "Linear(in=3, out=2, bias=true)", "[2,4]");
  EXPECT_ERROR(lin(scalar_tensor(1.0)), "Linear", "[]");
}

TEST(Activation, ModulesApplyTheirFunction) {
  const Tensor x = from_vector({-2, -0.5, 0, 1.5}, {2, 2});
  ReLU relu_m;
  LeakyReLU leaky(0.2);
  Tanh tanh_m;
  Sigmoid sigmoid_m;
  EXPECT_EQ(relu_m(x).values<float>(), (std::vector<float>{0, 0, 0, 1.5f}));
  EXPECT_EQ(leaky(x).values<float>(), (std::vector<float>{-0.4f, -0.1f, 0, 1.5f}));
  const std::vector<float> xv = x.values<float>(), th = tanh_m(x).values<float>(), sg = sigmoid_m(x).values<float>();
  for (size_t i = 0; i < xv.size(); ++i) {
    EXPECT_NEAR(th[i], std::tanh(xv[i]), 1e-6);
    EXPECT_NEAR(sg[i], 1.0 / (1.0 + std::exp(-xv[i])), 1e-6);
  }
  EXPECT_EQ(leaky.describe(), "LeakyReLU(negative_slope=0.2)");
  EXPECT_EQ(LeakyReLU().describe(), "LeakyReLU(negative_slope=0.01)");
  EXPECT_EQ(tanh_m.describe(), "Tanh");
  EXPECT_EQ(sigmoid_m.parameter_count(), 0);
  EXPECT_TRUE(relu_m.state_dict().empty());
}

TEST(Activation, GradientsFlowThroughASequential) {
  Generator gen(5);
  Sequential mlp;
  mlp.add(std::make_shared<Linear>(3, 4, true, &gen))
      .add(std::make_shared<LeakyReLU>(0.1))
      .add(std::make_shared<Tanh>())
      .add(std::make_shared<Linear>(4, 1, true, &gen))
      .add(std::make_shared<Sigmoid>());
  EXPECT_EQ(names(mlp.named_parameters()), (std::vector<std::string>{"0.weight", "0.bias", "3.weight", "3.bias"}));
  mlp.to(kFloat64);
  const auto report = gradcheck([&](const std::vector<Tensor>& in) { return mlp(in[0]); },
                                {rand({5, 3}, {.dtype = kFloat64, .requires_grad = true}, &gen, -1.0, 1.0)});
  EXPECT_TRUE(report.ok) << report.message;
}
