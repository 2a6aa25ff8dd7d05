// The fusion variants of models/fusion.h (MODEL.md §1, PAPER-NOTES.md §1.1-1.2).
//
// Every variant is one Fusion: optional encoders, a fuse() that turns the two feature sequences into one
// [B, L, width] sequence, and the two regressors on every clip. The layout and the names are those of the
// authors' CAM module (Joint-Cross-Attention-for-Audio-Visual-Fusion, models/cam.py), so its state_dict loads
// by name; the one intended difference is the heads' input, [X_att,v, X_att,a] as in the paper, where the
// released code feeds [raw visual, X_att,v] (the bug the author acknowledged, PAPER-NOTES §1.2).
//
// The authors' CAM loops over the batch and works on one [L, d] matrix at a time. Here every product is
// batched: [B, L, d] tensors, and the "time as the last dim" steps (affine_a, W_a, W_ha act along time) are
// transposes of the batch, so one call handles the whole batch and autograd sees a handful of large ops.
#include "models/fusion.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>
#include <tuple>
#include <utility>

#include "autograd/error.h"
#include "autograd/ops.h"
#include "layers/dropout.h"
#include "layers/init.h"
#include "layers/linear.h"

namespace minidl::models {
namespace {

constexpr const char* kKinds = "audio, visual, concat, cross_attention, jca, recursive_jca";

// The authors' init_weights (models/orig_cam.py): xavier-uniform for every Linear weight, zero biases. It
// overwrites torch's default that nn::Linear drew, as the authors' net.apply(init_func) does.
void author_init(nn::Linear& layer, Generator* gen) {
  nn::init::xavier_uniform_(layer.weight, 1.0, gen);
  if (layer.bias.defined()) nn::init::zeros_(layer.bias);
}

// Checked before any layer is built, so a bad size fails here with the kind's name and not deep inside a
// Linear constructor.
void validate(const FusionConfig& c) {
  const auto positive = [&](int64_t v, const char* field) {
    MINIDL_CHECK(v > 0, "make_fusion(", c.kind, "): ", field, " must be positive, got ", v);
  };
  positive(c.clips, "clips (L)");
  positive(c.audio_features, "audio_features (D_a)");
  positive(c.visual_features, "visual_features (D_v)");
  positive(c.encoded, "encoded (d)");
  positive(c.attention, "attention (k)");
  positive(c.head_hidden, "head_hidden");
  MINIDL_CHECK(c.head_dropout >= 0.0 && c.head_dropout < 1.0, "make_fusion(", c.kind,
               "): head_dropout must be in [0, 1), got ", c.head_dropout);
  if (c.kind == "recursive_jca") positive(c.recursions, "recursions");
}

// What a variant reads: which modalities, and whether its weights fix the number of clips.
struct Inputs {
  bool audio = true, visual = true;
  bool fixed_clips = false;
};

class Fusion : public FusionHeads {
 public:
  Tensor forward(const Tensor& audio, const Tensor& visual) final {
    check_inputs(audio, visual);
    const Tensor fused = fuse(audio, visual);
    return cat({vregressor(fused), aregressor(fused)}, 2);
  }

  std::string describe() const override {
    std::ostringstream os;
    os << type_name() << "(clips=" << config_.clips << ", D_a=" << config_.audio_features
       << ", D_v=" << config_.visual_features << ", d=" << config_.encoded;
    extra_settings(os);
    os << ", head_hidden=" << config_.head_hidden << ", head_dropout=" << config_.head_dropout << ")";
    return os.str();
  }

 protected:
  Fusion(const FusionConfig& config, Inputs inputs) : FusionHeads(config), inputs_(inputs) {}

  // audio [B, L, D_a], visual [B, L, D_v] (checked) -> [B, L, head input width].
  virtual Tensor fuse(const Tensor& audio, const Tensor& visual) = 0;
  virtual void extra_settings(std::ostream&) const {}

  // encoder1 (audio) and encoder2 (visual), the authors' names and order; only those the variant reads.
  void add_encoders(Generator* gen) {
    if (inputs_.audio) {
      encoder1 = std::make_unique<nn::Linear>(config_.audio_features, config_.encoded, true, gen);
      author_init(*encoder1, gen);
      register_module("encoder1", encoder1.get());
    }
    if (inputs_.visual) {
      encoder2 = std::make_unique<nn::Linear>(config_.visual_features, config_.encoded, true, gen);
      author_init(*encoder2, gen);
      register_module("encoder2", encoder2.get());
    }
  }

  // vregressor, then aregressor, each Linear(width, hidden) -> Dropout -> Linear(hidden, 1) with torch's
  // Sequential child names 0, 1, 2 (no activation between the two Linears, as in the authors' CAM). Called
  // last by each variant, so the heads come last in the state_dict as in torch's.
  void add_heads(int64_t width, Generator* gen) {
    for (nn::Sequential* head : {&vregressor, &aregressor}) {
      auto first = std::make_shared<nn::Linear>(width, config_.head_hidden, true, gen);
      auto last = std::make_shared<nn::Linear>(config_.head_hidden, 1, true, gen);
      author_init(*first, gen);
      author_init(*last, gen);
      // The dropout keeps `gen` for its masks (layers/dropout.h): a given generator must outlive the module.
      head->add(first).add(std::make_shared<nn::Dropout>(config_.head_dropout, gen)).add(last);
    }
    register_module("vregressor", &vregressor);
    register_module("aregressor", &aregressor);
  }

  std::unique_ptr<nn::Linear> encoder1, encoder2;
  nn::Sequential vregressor, aregressor;

 private:
  void check_inputs(const Tensor& audio, const Tensor& visual) const;
  void check_one(const Tensor& x, const char* what, int64_t width, const nn::Linear* encoder) const;

  Inputs inputs_;
};

// A modality the variant does not read may be undefined; when given, it is checked all the same, so a
// swapped or mis-sized pair is caught whichever variant is configured.
void Fusion::check_inputs(const Tensor& audio, const Tensor& visual) const {
  MINIDL_CHECK(audio.defined() || !inputs_.audio, describe(), ": the audio features are undefined");
  MINIDL_CHECK(visual.defined() || !inputs_.visual, describe(), ": the visual features are undefined");
  if (audio.defined()) check_one(audio, "audio", config_.audio_features, encoder1.get());
  if (visual.defined()) check_one(visual, "visual", config_.visual_features, encoder2.get());
  if (audio.defined() && visual.defined())
    MINIDL_CHECK(audio.size(0) == visual.size(0) && audio.size(1) == visual.size(1), describe(), ": audio ",
                 audio.meta_str(), " and visual ", visual.meta_str(), " must agree in B and L");
}

void Fusion::check_one(const Tensor& x, const char* what, int64_t width, const nn::Linear* encoder) const {
  MINIDL_CHECK(x.dim() == 3 && x.size(2) == width, describe(), ": ", what, " features must be [B, L, ", width,
               "], got ", x.meta_str());
  MINIDL_CHECK(x.size(0) > 0 && x.size(1) > 0, describe(), ": ", what, " features ", x.meta_str(), " hold no clips");
  if (inputs_.fixed_clips)
    MINIDL_CHECK(x.size(1) == config_.clips, describe(), ": ", what, " features ", x.meta_str(),
                 " have L = ", x.size(1), " clips, but affine_a/v, W_a/v and W_ha/hv are sized for L = ", config_.clips,
                 " (the time-mixing weights fix L; build the module for this L)");
  if (encoder)
    MINIDL_CHECK(x.dtype() == encoder->weight.dtype() && x.device() == encoder->weight.device(), describe(), ": ", what,
                 " features are ", x.meta_str(), " but the weights are ", encoder->weight.meta_str());
}

// ---- joint cross-attention (MODEL.md §1; the authors' CAM) and its recursive form ----
//
// Per sequence, time in rows (the code's layout; the paper writes the transposes), computed by the op
// joint_cross_attention (autograd/ops.h):
//   X_a = encoder1(A), X_v = encoder2(V)                                     [L, d]
//   J   = [X_a, X_v]                                                         [L, 2d]
//   C_a = tanh( X_a^T (W_ja J) / sqrt(2d) ),  W_ja = affine_a (L x L)        [d, 2d]
//   H_a = ReLU( W_ca(C_a) + W_a(X_a^T) )   (Linear(2d -> k), Linear(L -> k)) [d, k]
//   X_att,a = W_ha(H_a)^T + X_a            (Linear(k -> L))                  [L, d]
// and the same for v with affine_v, W_cv, W_v, W_hv (both branches read the same J). The heads see
// [X_att,v, X_att,a]. Batched, every [L, d] above is [B, L, d]; a Linear "along time" is the authors'
// Linear on X^T per sample. The eight Linears hold the weights under the authors' names; the op reads
// their weights (they have no biases) rather than calling them.
//
// Recursive JCA applies the attention block (everything between the encoders and the heads) `recursions`
// times, X_att,a and X_att,v of one pass being X_a and X_v of the next (the encoders run once: their
// input width is D, not d). The passes share one set of block weights. Why: the recursive papers describe
// the attended features being "again fed as input to the fusion model" (RJCMA, arXiv 2403.13659), i.e. the
// same model; sharing also keeps the authors' CAM names unchanged (a JCA checkpoint loads into a recursive
// JCA and back) and the parameter count independent of the depth. Note that the authors' released
// recursive code does not share: its DCNLayer (models/av_crossatten.py in praveena2j/RJCMA, used there with
// 2 passes; the same class in praveena2j/RJCAforSpeakerVerification, 3 passes) builds one sub-layer per
// pass, with separate weights - a different, heavier reading of the same idea.
class JCA final : public Fusion {
 public:
  JCA(const FusionConfig& c, int64_t recursions, Generator* gen)
      : Fusion(c, {.audio = true, .visual = true, .fixed_clips = true}),
        affine_a(c.clips, c.clips, false, gen),
        affine_v(c.clips, c.clips, false, gen),
        W_a(c.clips, c.attention, false, gen),
        W_v(c.clips, c.attention, false, gen),
        W_ca(2 * c.encoded, c.attention, false, gen),
        W_cv(2 * c.encoded, c.attention, false, gen),
        W_ha(c.attention, c.clips, false, gen),
        W_hv(c.attention, c.clips, false, gen),
        recursions_(recursions) {
    add_encoders(gen);
    // The authors' registration order (models/cam.py), which is the state_dict's order.
    const std::pair<const char*, nn::Linear*> layers[] = {
        {"affine_a", &affine_a}, {"affine_v", &affine_v}, {"W_a", &W_a},   {"W_v", &W_v},
        {"W_ca", &W_ca},         {"W_cv", &W_cv},         {"W_ha", &W_ha}, {"W_hv", &W_hv}};
    for (const auto& [name, layer] : layers) {
      author_init(*layer, gen);
      register_module(name, layer);
    }
    add_heads(2 * c.encoded, gen);
  }

  std::string type_name() const override { return recursions_ == 0 ? "JCA" : "RecursiveJCA"; }

 protected:
  void extra_settings(std::ostream& os) const override {
    os << ", k=" << config_.attention;
    if (recursions_ > 0) os << ", recursions=" << recursions_;
  }

  Tensor fuse(const Tensor& audio, const Tensor& visual) override {
    Tensor xa = (*encoder1)(audio), xv = (*encoder2)(visual);
    for (int64_t pass = 0; pass < std::max<int64_t>(recursions_, 1); ++pass) std::tie(xa, xv) = block(xa, xv);
    return cat({xv, xa}, 2);
  }

 private:
  // One pass: X_a, X_v [B, L, d] -> X_att,a, X_att,v [B, L, d], as one op (autograd/ops_attention.cpp: the
  // fused kernels, and the composition this module used to run, joint_cross_attention_reference).
  std::pair<Tensor, Tensor> block(const Tensor& xa, const Tensor& xv) {
    const JcaWeights audio{affine_a.weight, W_a.weight, W_ca.weight, W_ha.weight};
    const JcaWeights visual{affine_v.weight, W_v.weight, W_cv.weight, W_hv.weight};
    const JcaResult r = config_.composed_block ? joint_cross_attention_reference(xa, xv, audio, visual)
                                               : joint_cross_attention(xa, xv, audio, visual);
    return {r.audio, r.visual};
  }

  nn::Linear affine_a, affine_v, W_a, W_v, W_ca, W_cv, W_ha, W_hv;
  int64_t recursions_;  // 0: plain JCA (one pass)
};

// ---- vanilla cross-attention (MODEL.md §1; the authors' FG 2021 model, PAPER-NOTES §2.3) ----
//   C = X_a W X_v^T [L, L] (rows: audio clips, columns: visual clips)
//   alpha_a = softmax of C over its first index,   X_att,a = alpha_a^T X_a
//   alpha_v = softmax of C^T over its first index, X_att,v = alpha_v^T X_v
// so visual clip j receives an attention-weighted mix of the audio clips and audio clip i one of the visual
// clips. No weight mixes time, so any L works.
class CrossAttention final : public Fusion {
 public:
  CrossAttention(const FusionConfig& c, Generator* gen) : Fusion(c, {}) {
    // xavier-uniform like every other weight here (the FG 2021 code drew it xavier-normal).
    W = Tensor::empty({c.encoded, c.encoded});
    nn::init::xavier_uniform_(W, 1.0, gen);
    register_parameter("W", &W);
    add_encoders(gen);
    add_heads(2 * c.encoded, gen);
  }
  std::string type_name() const override { return "CrossAttention"; }

 protected:
  Tensor fuse(const Tensor& audio, const Tensor& visual) override {
    const Tensor xa = (*encoder1)(audio), xv = (*encoder2)(visual);  // [B, L, d]
    const Tensor c = matmul(matmul(xa, W), xv.transpose(1, 2));      // [B, L, L]
    const Tensor alpha_a = softmax(c, 1), alpha_v = softmax(c.transpose(1, 2), 1);
    const Tensor att_a = matmul(alpha_a.transpose(1, 2), xa), att_v = matmul(alpha_v.transpose(1, 2), xv);
    return cat({att_v, att_a}, 2);
  }

 private:
  Tensor W;
};

// ---- the ablation baselines: both encoded features side by side, or one modality alone ----
class Concat final : public Fusion {
 public:
  Concat(const FusionConfig& c, Generator* gen) : Fusion(c, {}) {
    add_encoders(gen);
    add_heads(2 * c.encoded, gen);
  }
  std::string type_name() const override { return "ConcatFusion"; }

 protected:
  // Visual first, as the attended features are in JCA's head input.
  Tensor fuse(const Tensor& audio, const Tensor& visual) override {
    return cat({(*encoder2)(visual), (*encoder1)(audio)}, 2);
  }
};

class Unimodal final : public Fusion {
 public:
  Unimodal(const FusionConfig& c, bool audio, Generator* gen)
      : Fusion(c, {.audio = audio, .visual = !audio, .fixed_clips = false}), audio_(audio) {
    add_encoders(gen);
    add_heads(c.encoded, gen);
  }
  std::string type_name() const override { return audio_ ? "AudioOnly" : "VisualOnly"; }

 protected:
  Tensor fuse(const Tensor& audio, const Tensor& visual) override {
    return audio_ ? (*encoder1)(audio) : (*encoder2)(visual);
  }

 private:
  bool audio_;
};

}  // namespace

std::shared_ptr<FusionHeads> make_fusion(const FusionConfig& config, Generator* gen) {
  const std::string& kind = config.kind;
  const bool known = kind == "jca" || kind == "recursive_jca" || kind == "cross_attention" || kind == "concat" ||
                     kind == "audio" || kind == "visual";
  MINIDL_CHECK(known, "make_fusion: unknown fusion kind '", kind, "'; the kinds are ", kKinds);
  validate(config);
  if (kind == "jca") return std::make_shared<JCA>(config, 0, gen);
  if (kind == "recursive_jca") return std::make_shared<JCA>(config, config.recursions, gen);
  if (kind == "cross_attention") return std::make_shared<CrossAttention>(config, gen);
  if (kind == "concat") return std::make_shared<Concat>(config, gen);
  return std::make_shared<Unimodal>(config, kind == "audio", gen);
}

}  // namespace minidl::models
