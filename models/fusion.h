// Fusion of the per-clip audio and visual features of a sequence, and the valence / arousal heads
// (MODEL.md §1). One module per variant, each holding its fusion weights and the two heads, laid out like
// the authors' CAM module so its weights load by name:
//   jca              joint cross-attention: encoder1 (audio), encoder2 (visual), affine_a, affine_v (L x L),
//                    W_a, W_v (k x L), W_ca, W_cv (k x 2d), W_ha, W_hv (L x k), then the heads on
//                    [X_att,v, X_att,a] (the paper's form, not the released code's [visual, X_att,v]);
//   recursive_jca    the same block applied `recursions` times, its outputs fed back as its inputs;
//   cross_attention  vanilla cross-attention: encoders, W (d x d), C = X_a W X_v^T, softmax both ways;
//   concat           the two encoded features side by side;
//   audio, visual    one encoded modality alone.
// Heads: vregressor and aregressor = Linear(width, head_hidden) -> Dropout(head_dropout) -> Linear(head_hidden, 1).
// Initialisation as the authors' code: xavier-uniform weights, zero biases.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "autograd/random.h"
#include "layers/module.h"

namespace minidl::models {

struct FusionConfig {
  std::string kind = "jca";
  int64_t clips = 16;                                   // L
  int64_t audio_features = 512, visual_features = 512;  // D_a, D_v
  int64_t encoded = 128;                                // d
  int64_t attention = 32;                               // k
  int64_t recursions = 2;
  int64_t head_hidden = 128;
  double head_dropout = 0.6;
  // jca, recursive_jca: run the attention block as its composed reference (joint_cross_attention_reference)
  // instead of the fused op; the same function, for timing one against the other (bench w1 --jca composed).
  bool composed_block = false;
};

class FusionHeads : public nn::Module {
 public:
  // audio [B, L, D_a], visual [B, L, D_v] -> [B, L, 2]: valence and arousal of every clip.
  virtual Tensor forward(const Tensor& audio, const Tensor& visual) = 0;
  Tensor operator()(const Tensor& audio, const Tensor& visual) {
    const ModuleScope scope(scope_path());
    return forward(audio, visual);
  }
  const FusionConfig& config() const { return config_; }

 protected:
  explicit FusionHeads(FusionConfig config) : config_(std::move(config)) {}
  FusionConfig config_;
};

// The variant named by config.kind; an unknown kind is a minidl::Error listing the kinds.
std::shared_ptr<FusionHeads> make_fusion(const FusionConfig& config, Generator* gen = nullptr);

}  // namespace minidl::models
