// The fusion variants (models/fusion.h): shapes, the authors' parameter names, agreement with a PyTorch
// twin, gradients, dropout, errors and the paper-size parameter count.
//
// The twin: tools/jca_twin.py built the authors' CAM (with the paper's head input), its recursive form and
// vanilla cross-attention in float64 with fixed weights, ran them in eval mode on fixed inputs and
// back-propagated sum(output * r); tests/models/fixtures/jca_reference.safetensors holds inputs, state_dict,
// output and every gradient. Both sides compute in float64 in different orders, so they differ by rounding
// only (~1e-15 relative); 1e-10 of the largest reference value leaves room for that and for nothing else.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "autograd/safetensors.h"
#include "layers/module.h"
#include "models/fusion.h"
#include "tests/autograd/expect_error.h"

using namespace minidl;
using models::FusionConfig;
using models::make_fusion;

namespace {

const std::vector<std::string> kKinds = {"jca", "recursive_jca", "cross_attention", "concat", "audio", "visual"};

// The twin's sizes (tools/jca_twin.py): L 8, D_a 12, D_v 10, d 6, k 4, head_hidden 5.
FusionConfig twin_config(const std::string& kind) {
  FusionConfig c;
  c.kind = kind;
  c.clips = 8;
  c.audio_features = 12;
  c.visual_features = 10;
  c.encoded = 6;
  c.attention = 4;
  c.head_hidden = 5;
  c.head_dropout = 0.6;
  c.recursions = 2;
  return c;
}

// Small enough for finite differences over every weight: L 3, D_a 4, D_v 3, d 2, k 2, head_hidden 3.
FusionConfig gradcheck_config(const std::string& kind) {
  FusionConfig c = twin_config(kind);
  c.clips = 3;
  c.audio_features = 4;
  c.visual_features = 3;
  c.encoded = 2;
  c.attention = 2;
  c.head_hidden = 3;
  return c;
}

FusionConfig paper_config(const std::string& kind) {
  FusionConfig c;  // the header's defaults are the paper's sizes
  c.kind = kind;
  return c;
}

const std::map<std::string, Tensor>& reference() {
  static const std::map<std::string, Tensor> tensors = [] {
    std::map<std::string, Tensor> m;
    const auto path = std::filesystem::path(__FILE__).parent_path() / "fixtures" / "jca_reference.safetensors";
    for (auto& [name, t] : load_safetensors(path.string())) m[name] = t;
    return m;
  }();
  return tensors;
}

Tensor fixture(const std::string& name) {
  auto it = reference().find(name);
  if (it == reference().end()) throw std::runtime_error("the fixture has no tensor " + name);
  return it->second;
}

// The entries saved under `prefix` (e.g. "jca.param."), with the prefix removed.
nn::NamedTensors entries(const std::string& prefix) {
  nn::NamedTensors out;
  for (const auto& [name, t] : reference())
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

// Largest |got - want| over max(1, largest |want|); prints it so a run shows how close the twin came.
void expect_close(const Tensor& got, const Tensor& want, const std::string& what, double tol = 1e-10) {
  ASSERT_TRUE(got.defined()) << what << " is undefined";
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const auto g = got.values<double>(), w = want.values<double>();
  double scale = 1.0, worst = 0.0;
  for (double v : w) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::fabs(g[i] - w[i]));
  EXPECT_LE(worst, tol * scale) << what << ": largest difference " << worst << " (scale " << scale << ")";
  std::printf("    %-44s relative difference %.2e\n", what.c_str(), worst / scale);
}

std::vector<std::string> parameter_names(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, t] : m.named_parameters()) out.push_back(name);
  return out;
}

Tensor random_input(int64_t b, int64_t l, int64_t width, Generator& gen, DType dtype = kFloat32) {
  return randn({b, l, width}, {.dtype = dtype}, &gen);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.values<double>(), y = b.values<double>();
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(x[i] - y[i]));
  return worst;
}

int64_t linear_params(int64_t in, int64_t out, bool bias = true) { return in * out + (bias ? out : 0); }

// vregressor + aregressor on `width` features: Linear(width, hidden) and Linear(hidden, 1), with biases.
int64_t heads_params(int64_t width, int64_t hidden) {
  return 2 * (linear_params(width, hidden) + linear_params(hidden, 1));
}

// The twin comparison: load the twin's state_dict strictly by name, then output, input gradients and the
// gradient of every parameter.
void check_against_twin(const std::string& kind) {
  Generator gen(11);
  auto m = make_fusion(twin_config(kind), &gen);
  m->to(kFloat64);
  m->eval();
  m->load_state_dict(entries(kind + ".param."), /*strict=*/true);
  Tensor audio = fixture(kind + ".audio").clone().detach(), visual = fixture(kind + ".visual").clone().detach();
  audio.requires_grad_();
  visual.requires_grad_();
  const Tensor y = (*m)(audio, visual);
  expect_close(y, fixture(kind + ".output"), kind + " output");
  sum(y * fixture(kind + ".grad_output")).backward();
  expect_close(audio.grad(), fixture(kind + ".grad_audio"), kind + " d/d audio");
  expect_close(visual.grad(), fixture(kind + ".grad_visual"), kind + " d/d visual");
  size_t checked = 0;
  for (const auto& [name, p] : m->named_parameters()) {
    expect_close(p.grad(), fixture(kind + ".grad_param." + name), kind + " d/d " + name);
    ++checked;
  }
  EXPECT_EQ(checked, entries(kind + ".grad_param.").size()) << "every parameter of the twin has a gradient here";
}

// gradcheck of the module w.r.t. both inputs and every parameter (perturbed in place by gradcheck).
void check_gradients(const std::string& kind, int64_t batch = 2) {
  Generator gen(5);
  const FusionConfig c = gradcheck_config(kind);
  auto m = make_fusion(c, &gen);
  m->to(kFloat64);
  m->eval();  // dropout off: finite differences need a deterministic function
  std::vector<Tensor> inputs = {random_input(batch, c.clips, c.audio_features, gen, kFloat64),
                                random_input(batch, c.clips, c.visual_features, gen, kFloat64)};
  inputs[0].requires_grad_();
  inputs[1].requires_grad_();
  for (const Tensor& p : m->parameters()) inputs.push_back(p);
  const auto r = gradcheck([&](const std::vector<Tensor>& x) { return (*m)(x[0], x[1]); }, inputs);
  EXPECT_TRUE(r.ok) << kind << ": " << r.message;
  std::printf("    %s: %s\n", kind.c_str(), r.message.c_str());
}

}  // namespace

// ---- shapes and names --------------------------------------------------------------------------------

TEST(Fusion, EveryVariantGivesValenceAndArousalPerClip) {
  for (const std::string& kind : kKinds) {
    SCOPED_TRACE(kind);
    Generator gen(1);
    const FusionConfig c = twin_config(kind);
    auto m = make_fusion(c, &gen);
    EXPECT_EQ(m->config().kind, kind);
    const Tensor audio = random_input(3, c.clips, c.audio_features, gen);
    const Tensor visual = random_input(3, c.clips, c.visual_features, gen);
    const Tensor y = (*m)(audio, visual);
    EXPECT_EQ(y.shape(), (Shape{3, c.clips, 2}));
    EXPECT_EQ(y.dtype(), kFloat32);
    // Every parameter is connected to the output.
    sum(y).backward();
    for (const auto& [name, p] : m->named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
  }
}

TEST(Fusion, JcaHasTheAuthorsParameterNamesAndLayouts) {
  // L 8, D_a 12, D_v 10, d 6, k 4, head_hidden 5: nn.Linear layouts [out, in].
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"encoder1.weight", {6, 12}},     {"encoder1.bias", {6}},           {"encoder2.weight", {6, 10}},
      {"encoder2.bias", {6}},           {"affine_a.weight", {8, 8}},      {"affine_v.weight", {8, 8}},
      {"W_a.weight", {4, 8}},           {"W_v.weight", {4, 8}},           {"W_ca.weight", {4, 12}},
      {"W_cv.weight", {4, 12}},         {"W_ha.weight", {8, 4}},          {"W_hv.weight", {8, 4}},
      {"vregressor.0.weight", {5, 12}}, {"vregressor.0.bias", {5}},       {"vregressor.2.weight", {1, 5}},
      {"vregressor.2.bias", {1}},       {"aregressor.0.weight", {5, 12}}, {"aregressor.0.bias", {5}},
      {"aregressor.2.weight", {1, 5}},  {"aregressor.2.bias", {1}}};
  for (const std::string kind : {"jca", "recursive_jca"}) {
    SCOPED_TRACE(kind);
    auto m = make_fusion(twin_config(kind));
    const auto state = m->state_dict();
    ASSERT_EQ(state.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(state[i].first, expected[i].first) << "entry " << i;
      EXPECT_EQ(state[i].second.shape(), expected[i].second) << expected[i].first;
    }
    // The same names, in the same order, as the twin's torch state_dict.
    std::vector<std::string> twin;
    for (const auto& [name, t] : load_safetensors(
             (std::filesystem::path(__FILE__).parent_path() / "fixtures" / "jca_reference.safetensors").string()))
      if (name.rfind("jca.param.", 0) == 0) twin.push_back(name.substr(10));
    EXPECT_EQ(parameter_names(*m), twin);
  }
}

TEST(Fusion, OtherVariantsNameTheirLayersLikeTheJca) {
  const std::vector<std::string> heads = {"vregressor.0.weight", "vregressor.0.bias",   "vregressor.2.weight",
                                          "vregressor.2.bias",   "aregressor.0.weight", "aregressor.0.bias",
                                          "aregressor.2.weight", "aregressor.2.bias"};
  const auto with_heads = [&](std::vector<std::string> names) {
    names.insert(names.end(), heads.begin(), heads.end());
    return names;
  };
  const std::vector<std::string> encoders = {"encoder1.weight", "encoder1.bias", "encoder2.weight", "encoder2.bias"};
  std::vector<std::string> cross = {"W"};
  cross.insert(cross.end(), encoders.begin(), encoders.end());
  EXPECT_EQ(parameter_names(*make_fusion(twin_config("cross_attention"))), with_heads(cross));
  EXPECT_EQ(parameter_names(*make_fusion(twin_config("concat"))), with_heads(encoders));
  EXPECT_EQ(parameter_names(*make_fusion(twin_config("audio"))), with_heads({"encoder1.weight", "encoder1.bias"}));
  EXPECT_EQ(parameter_names(*make_fusion(twin_config("visual"))), with_heads({"encoder2.weight", "encoder2.bias"}));

  // Heads sized to each variant's width: 2d for the two-modality variants, d for one modality.
  const std::map<std::string, int64_t> width = {{"cross_attention", 12}, {"concat", 12}, {"audio", 6}, {"visual", 6}};
  for (const auto& [kind, w] : width) {
    const auto state = make_fusion(twin_config(kind))->state_dict();
    const auto it =
        std::find_if(state.begin(), state.end(), [](const auto& e) { return e.first == "aregressor.0.weight"; });
    ASSERT_NE(it, state.end());
    EXPECT_EQ(it->second.shape(), (Shape{5, w})) << kind;
  }
  EXPECT_EQ(make_fusion(twin_config("cross_attention"))->state_dict()[0].second.shape(), (Shape{6, 6})) << "W is d x d";
}

TEST(Fusion, InitialisationIsXavierUniformWithZeroBiases) {
  Generator gen(3);
  for (const std::string kind : {"jca", "cross_attention"}) {
    auto m = make_fusion(paper_config(kind), &gen);
    for (const auto& [name, p] : m->named_parameters()) {
      const auto v = p.values<double>();
      double largest = 0.0;
      for (double x : v) largest = std::max(largest, std::fabs(x));
      if (p.dim() == 1) {
        EXPECT_EQ(largest, 0.0) << kind << " " << name << ": biases start at zero";
        continue;
      }
      // U(-a, a) with a = sqrt(6 / (fan_in + fan_out)); torch's default Linear range 1/sqrt(fan_in) is smaller
      // for every layer here, so reaching 0.8 a tells the two apart.
      const double a = std::sqrt(6.0 / static_cast<double>(p.size(0) + p.size(1)));
      EXPECT_LE(largest, a) << kind << " " << name;
      EXPECT_GE(largest, 0.8 * a) << kind << " " << name;
    }
  }
}

// ---- the twin ----------------------------------------------------------------------------------------

TEST(FusionTwin, JcaMatchesTheAuthorsModuleWithThePapersHead) { check_against_twin("jca"); }

TEST(FusionTwin, RecursiveJcaMatchesTwoPassesWithSharedWeights) { check_against_twin("recursive_jca"); }

TEST(FusionTwin, CrossAttentionMatches) { check_against_twin("cross_attention"); }

// ---- gradients ----------------------------------------------------------------------------------------

TEST(FusionGradcheck, Jca) { check_gradients("jca"); }
TEST(FusionGradcheck, RecursiveJca) { check_gradients("recursive_jca"); }
TEST(FusionGradcheck, CrossAttention) { check_gradients("cross_attention"); }
TEST(FusionGradcheck, ConcatAndUnimodal) {
  for (const std::string kind : {"concat", "audio", "visual"}) check_gradients(kind);
}

// ---- behaviour -----------------------------------------------------------------------------------------

TEST(Fusion, BatchedEqualsOneSequenceAtATime) {
  // The authors loop over the batch; the batched products here must not mix sequences.
  for (const std::string kind : {"jca", "recursive_jca", "cross_attention"}) {
    SCOPED_TRACE(kind);
    Generator gen(2);
    const FusionConfig c = twin_config(kind);
    auto m = make_fusion(c, &gen);
    m->to(kFloat64);
    m->eval();
    const Tensor audio = random_input(4, c.clips, c.audio_features, gen, kFloat64);
    const Tensor visual = random_input(4, c.clips, c.visual_features, gen, kFloat64);
    const Tensor all = (*m)(audio, visual);
    for (int64_t b = 0; b < 4; ++b) {
      const Tensor one = (*m)(audio.narrow(0, b, 1), visual.narrow(0, b, 1));
      EXPECT_LE(max_abs_diff(one, all.narrow(0, b, 1)), 1e-12) << "sequence " << b;
    }
  }
}

TEST(Fusion, RecursiveJcaSharesTheJcaBlock) {
  Generator gen(4);
  FusionConfig c = twin_config("jca");
  auto jca = make_fusion(c, &gen);
  jca->eval();
  const Tensor audio = random_input(2, c.clips, c.audio_features, gen);
  const Tensor visual = random_input(2, c.clips, c.visual_features, gen);
  const Tensor once = (*jca)(audio, visual);
  c.kind = "recursive_jca";
  for (int64_t t : {1, 2, 3}) {
    c.recursions = t;
    auto rec = make_fusion(c, &gen);
    EXPECT_EQ(rec->parameter_count(), jca->parameter_count()) << "the passes share one set of weights";
    rec->load_state_dict(jca->state_dict(), /*strict=*/true);  // a JCA checkpoint loads unchanged
    rec->eval();
    const double diff = max_abs_diff((*rec)(audio, visual), once);
    if (t == 1)
      EXPECT_EQ(diff, 0.0) << "one recursion is the JCA";
    else
      EXPECT_GT(diff, 1e-4) << t << " recursions must differ from one pass";
  }
}

TEST(Fusion, DropoutOnlyInTraining) {
  Generator gen(7);
  FusionConfig c = twin_config("jca");
  auto m = make_fusion(c, &gen);
  const Tensor audio = random_input(3, c.clips, c.audio_features, gen);
  const Tensor visual = random_input(3, c.clips, c.visual_features, gen);
  EXPECT_TRUE(m->is_training()) << "a new module trains, as torch's";
  m->eval();
  const Tensor eval1 = (*m)(audio, visual), eval2 = (*m)(audio, visual);
  EXPECT_EQ(max_abs_diff(eval1, eval2), 0.0) << "evaluation is deterministic";
  m->train();
  const Tensor train1 = (*m)(audio, visual), train2 = (*m)(audio, visual);
  EXPECT_GT(max_abs_diff(train1, eval1), 1e-3) << "training drops head units";
  EXPECT_GT(max_abs_diff(train1, train2), 1e-3) << "fresh masks on every call";
  m->eval();
  EXPECT_EQ(max_abs_diff((*m)(audio, visual), eval1), 0.0);

  // With p = 0 nothing else in the module depends on the mode.
  c.head_dropout = 0.0;
  for (const std::string& kind : kKinds) {
    c.kind = kind;
    auto plain = make_fusion(c, &gen);
    const Tensor t = (*plain)(audio, visual);
    plain->eval();
    EXPECT_EQ(max_abs_diff(t, (*plain)(audio, visual)), 0.0) << kind;
  }
}

TEST(Fusion, OnlyTheJcaFixesTheNumberOfClips) {
  Generator gen(8);
  for (const std::string kind : {"cross_attention", "concat", "audio", "visual"}) {
    const FusionConfig c = twin_config(kind);
    auto m = make_fusion(c, &gen);
    const Tensor y = (*m)(random_input(2, 5, c.audio_features, gen), random_input(2, 5, c.visual_features, gen));
    EXPECT_EQ(y.shape(), (Shape{2, 5, 2})) << kind;
  }
}

TEST(Fusion, UnimodalVariantsNeedOnlyTheirModality) {
  Generator gen(9);
  const FusionConfig a = twin_config("audio"), v = twin_config("visual");
  EXPECT_EQ((*make_fusion(a, &gen))(random_input(2, 8, 12, gen), Tensor()).shape(), (Shape{2, 8, 2}));
  EXPECT_EQ((*make_fusion(v, &gen))(Tensor(), random_input(2, 8, 10, gen)).shape(), (Shape{2, 8, 2}));
}

// ---- errors --------------------------------------------------------------------------------------------

TEST(FusionErrors, InputsNameTheModuleAndTheShapes) {
  Generator gen(10);
  auto jca = make_fusion(twin_config("jca"), &gen);
  auto rec = make_fusion(twin_config("recursive_jca"), &gen);
  auto cross = make_fusion(twin_config("cross_attention"), &gen);
  auto audio_only = make_fusion(twin_config("audio"), &gen);
  const Tensor a = random_input(2, 8, 12, gen), v = random_input(2, 8, 10, gen);

  EXPECT_ERROR((*jca)(random_input(2, 7, 12, gen), random_input(2, 7, 10, gen)), "JCA(clips=8", "[2,7,12]", "L = 7",
               "sized for L = 8");
  EXPECT_ERROR((*rec)(random_input(2, 16, 12, gen), random_input(2, 16, 10, gen)), "RecursiveJCA(", "[2,16,12]",
               "L = 8");
  EXPECT_ERROR((*jca)(random_input(2, 8, 11, gen), v), "JCA(", "audio features must be [B, L, 12]", "[2,8,11]");
  EXPECT_ERROR((*jca)(a, random_input(2, 8, 12, gen)), "JCA(", "visual features must be [B, L, 10]", "[2,8,12]");
  EXPECT_ERROR((*cross)(a.select(0, 0), v), "CrossAttention(", "[B, L, 12]", "[8,12]");
  EXPECT_ERROR((*jca)(a, random_input(3, 8, 10, gen)), "JCA(", "[2,8,12]", "[3,8,10]", "agree in B and L");
  EXPECT_ERROR((*jca)(a, Tensor()), "JCA(", "visual features are undefined");
  EXPECT_ERROR((*jca)(a.to(kFloat64), v.to(kFloat64)), "JCA(", "float64[2,8,12]", "weights are float32[6,12]");
  EXPECT_ERROR((*audio_only)(a, random_input(2, 8, 9, gen)), "AudioOnly(", "[2,8,9]");
  EXPECT_ERROR((*audio_only)(Tensor(), v), "AudioOnly(", "audio features are undefined");
}

TEST(FusionErrors, ConfigurationNamesTheKindAndTheField) {
  FusionConfig c = twin_config("lstm");
  EXPECT_ERROR(make_fusion(c), "make_fusion", "'lstm'", "audio, visual, concat, cross_attention, jca, recursive_jca");
  c = twin_config("jca");
  c.clips = 0;
  EXPECT_ERROR(make_fusion(c), "make_fusion(jca)", "clips (L)", "got 0");
  c = twin_config("cross_attention");
  c.encoded = -1;
  EXPECT_ERROR(make_fusion(c), "make_fusion(cross_attention)", "encoded (d)");
  c = twin_config("concat");
  c.head_dropout = 1.0;
  EXPECT_ERROR(make_fusion(c), "make_fusion(concat)", "head_dropout", "[0, 1)");
  c = twin_config("recursive_jca");
  c.recursions = 0;
  EXPECT_ERROR(make_fusion(c), "make_fusion(recursive_jca)", "recursions");
}

// ---- size ----------------------------------------------------------------------------------------------

TEST(Fusion, PaperSizeParameterCounts) {
  // D_a = D_v = 512, L = 16, d = 128, k = 32, head_hidden = 128 (MODEL.md §1), counted layer by layer.
  const int64_t D = 512, L = 16, d = 128, k = 32, h = 128;
  const int64_t encoders = 2 * linear_params(D, d);                                         // encoder1, encoder2
  const int64_t block = 2 * (linear_params(L, L, false) + linear_params(L, k, false) +      // affine_*, W_a/v
                             linear_params(2 * d, k, false) + linear_params(k, L, false));  // W_c*, W_h*
  const int64_t jca = encoders + block + heads_params(2 * d, h);
  EXPECT_EQ(jca, 216322);
  EXPECT_EQ(make_fusion(paper_config("jca"))->parameter_count(), jca);
  // Cross-check against PAPER-NOTES §1.2: the released code's heads on [raw visual (512), X_att,v (128)] give
  // the 314,626 quoted there; only the heads differ.
  EXPECT_EQ(encoders + block + heads_params(D + d, h), 314626);

  FusionConfig rec = paper_config("recursive_jca");
  rec.recursions = 3;
  EXPECT_EQ(make_fusion(rec)->parameter_count(), jca) << "shared block: the depth adds no weights";
  EXPECT_EQ(make_fusion(paper_config("cross_attention"))->parameter_count(), encoders + d * d + heads_params(2 * d, h));
  EXPECT_EQ(make_fusion(paper_config("concat"))->parameter_count(), encoders + heads_params(2 * d, h));
  EXPECT_EQ(make_fusion(paper_config("audio"))->parameter_count(), linear_params(D, d) + heads_params(d, h));
  EXPECT_EQ(make_fusion(paper_config("visual"))->parameter_count(), linear_params(D, d) + heads_params(d, h));
  std::printf("    paper size: jca %lld, cross_attention %lld, concat %lld, audio/visual %lld\n",
              static_cast<long long>(jca), static_cast<long long>(encoders + d * d + heads_params(2 * d, h)),
              static_cast<long long>(encoders + heads_params(2 * d, h)),
              static_cast<long long>(linear_params(D, d) + heads_params(d, h)));
}
