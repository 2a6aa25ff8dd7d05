// R2Plus1D and AudioResNet (models/backbones.h), built from the layer modules so that every piece is a
// module of its own: summary() shows torchvision's tree, train() / eval() reach every BatchNorm, and
// state_dict() produces torchvision's names in torchvision's order (checked in tests/models against
// r2plus1d_18 and resnet18 themselves, and against their outputs and gradients at reduced widths).
//
// Input sizes. Every strided layer has kernel 2p + 1 with padding p (or a 1x1 kernel), so it maps a size n
// to ceil(n / 2) and no size ever reaches 0: any input with at least 1 in every dim is accepted, in every
// configuration (the widths and block counts change no size). The last stage sees
//   R2Plus1D    ceil(T / 8) x ceil(H / 16) x ceil(W / 16)   (stem /2 in space; stages 2-4 /2 in time and space)
//   AudioResNet ceil(M / 32) x ceil(F / 32)                 (stem, max pool and stages 2-4 each /2)
// tiny [N,3,4,32,32] -> 1x2x2, [N,1,32,48] -> 1x2; small [N,3,8,64,64] -> 1x4x4; paper [N,3,8,112,112] ->
// 1x7x7, [N,1,64,104] -> 2x4. Below 16 (video) or 32 (audio) pixels the deepest stages work on 1x1 maps whose
// 3x3 kernels mostly see zero padding: legal, but those stages then add little. Hence the only hard minimum:
// a dim of 0 is an error, and so is a training-mode batch that leaves the last BatchNorms a single value per
// channel (N x last map = 1), whose batch variance is undefined.
#include "models/backbones.h"

#include <array>
#include <sstream>

#include "autograd/error.h"
#include "autograd/ops.h"
#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/init.h"
#include "layers/norm.h"
#include "layers/pool.h"

namespace minidl::models {
namespace {

// torchvision initialises every conv with kaiming_normal_(mode="fan_out", nonlinearity="relu"), the video and
// the image ResNets alike; the BatchNorms keep their default weight 1, bias 0.
template <class Conv>
std::shared_ptr<Conv> make_conv(int64_t in, int64_t out, const nn::Dims& kernel, const nn::Dims& stride,
                                const nn::Dims& padding, Generator* gen) {
  auto conv = std::make_shared<Conv>(in, out, kernel, stride, padding, 1, 1, false, gen);
  nn::init::kaiming_normal_(conv->weight, 0.0, "fan_out", gen);
  return conv;
}

// torchvision's midplanes: the width between the 1x3x3 and the 3x1x1 conv that gives the pair about the
// parameters of one full 3x3x3 conv from in to out.
int64_t midplanes(int64_t in, int64_t out) { return (in * out * 3 * 3 * 3) / (in * 3 * 3 + 3 * out); }

std::string list_str(const std::vector<int64_t>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}

void check_config(const char* module, const std::vector<int64_t>& widths, int64_t blocks) {
  MINIDL_CHECK(widths.size() == 4, module, ": needs 4 stage widths, got ", widths.size(), " (", list_str(widths), ")");
  for (int64_t w : widths) MINIDL_CHECK(w > 0, module, ": stage widths must be positive, got ", list_str(widths));
  MINIDL_CHECK(blocks > 0, module, ": blocks per stage must be positive, got ", blocks);
}

// Named Sequentials, so summary() reads like torchvision's repr.
class Conv2Plus1D final : public nn::Sequential {
 public:
  // torchvision's Conv2Plus1D: a spatial 1x3x3 conv (the stride in space), BN + ReLU at the middle width,
  // then a temporal 3x1x1 conv (the stride in time).
  Conv2Plus1D(int64_t in, int64_t out, int64_t mid, int64_t stride, Generator* gen) {
    add(make_conv<nn::Conv3d>(in, mid, {1, 3, 3}, {1, stride, stride}, {0, 1, 1}, gen));
    add(std::make_shared<nn::BatchNorm3d>(mid));
    add(std::make_shared<nn::ReLU>());
    add(make_conv<nn::Conv3d>(mid, out, {3, 1, 1}, {stride, 1, 1}, {1, 0, 0}, gen));
  }
  std::string type_name() const override { return "Conv2Plus1D"; }
};

// torchvision.models.video.resnet.BasicBlock with Conv2Plus1D:
//   relu(conv2(conv1(x)) + (downsample ? downsample(x) : x)),
//   conv1 = [Conv2Plus1D(in, out, mid, stride), BN, ReLU], conv2 = [Conv2Plus1D(out, out, mid, 1), BN].
// Both halves use the midplanes of (in, out): torchvision computes it once per block, so a first block's
// conv2 (out -> out) is narrower or wider in the middle than a later block's.
class VideoBlock final : public nn::Unary {
 public:
  VideoBlock(int64_t in, int64_t out, int64_t stride, Generator* gen) : in_(in), out_(out), stride_(stride) {
    const int64_t mid = midplanes(in, out);
    conv1.add(std::make_shared<Conv2Plus1D>(in, out, mid, stride, gen));
    conv1.add(std::make_shared<nn::BatchNorm3d>(out));
    conv1.add(std::make_shared<nn::ReLU>());
    conv2.add(std::make_shared<Conv2Plus1D>(out, out, mid, 1, gen));
    conv2.add(std::make_shared<nn::BatchNorm3d>(out));
    register_module("conv1", &conv1);
    register_module("conv2", &conv2);
    register_module("relu", &relu);
    if (stride != 1 || in != out) {
      downsample = std::make_unique<nn::Sequential>();
      downsample->add(make_conv<nn::Conv3d>(in, out, 1, stride, 0, gen));
      downsample->add(std::make_shared<nn::BatchNorm3d>(out));
      register_module("downsample", downsample.get());
    }
  }
  std::string type_name() const override { return "BasicBlock"; }
  std::string describe() const override {
    std::ostringstream os;
    os << "BasicBlock(" << in_ << ", " << out_ << ", stride=" << stride_ << ", midplanes=" << midplanes(in_, out_)
       << ")";
    return os.str();
  }
  Tensor forward(const Tensor& x) override {
    const Tensor y = conv2(conv1(x));
    return relu(y + (downsample ? (*downsample)(x) : x));
  }

  nn::Sequential conv1, conv2;
  nn::ReLU relu;
  std::unique_ptr<nn::Sequential> downsample;  // null where the block keeps the size and the width

 private:
  int64_t in_, out_, stride_;
};

// torchvision.models.resnet.BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + (downsample ? downsample(x) : x)).
class ImageBlock final : public nn::Unary {
 public:
  ImageBlock(int64_t in, int64_t out, int64_t stride, Generator* gen)
      : conv1(make_conv<nn::Conv2d>(in, out, 3, stride, 1, gen)),
        bn1(out),
        conv2(make_conv<nn::Conv2d>(out, out, 3, 1, 1, gen)),
        bn2(out),
        in_(in),
        out_(out),
        stride_(stride) {
    register_module("conv1", conv1.get());
    register_module("bn1", &bn1);
    register_module("relu", &relu);
    register_module("conv2", conv2.get());
    register_module("bn2", &bn2);
    if (stride != 1 || in != out) {
      downsample = std::make_unique<nn::Sequential>();
      downsample->add(make_conv<nn::Conv2d>(in, out, 1, stride, 0, gen));
      downsample->add(std::make_shared<nn::BatchNorm2d>(out));
      register_module("downsample", downsample.get());
    }
  }
  std::string type_name() const override { return "BasicBlock"; }
  std::string describe() const override {
    std::ostringstream os;
    os << "BasicBlock(" << in_ << ", " << out_ << ", stride=" << stride_ << ")";
    return os.str();
  }
  Tensor forward(const Tensor& x) override {
    const Tensor y = bn2((*conv2)(relu(bn1((*conv1)(x)))));
    return relu(y + (downsample ? (*downsample)(x) : x));
  }

  std::shared_ptr<nn::Conv2d> conv1;
  nn::BatchNorm2d bn1;
  nn::ReLU relu;
  std::shared_ptr<nn::Conv2d> conv2;
  nn::BatchNorm2d bn2;
  std::unique_ptr<nn::Sequential> downsample;

 private:
  int64_t in_, out_, stride_;
};

// Stage i of either network: `blocks` blocks, the first one strided (stages 2-4) and widening.
template <class Block>
void build_stage(nn::Sequential& stage, int64_t in, int64_t out, int64_t blocks, int64_t stride, Generator* gen) {
  stage.add(std::make_shared<Block>(in, out, stride, gen));
  for (int64_t b = 1; b < blocks; ++b) stage.add(std::make_shared<Block>(out, out, 1, gen));
}

int64_t halved(int64_t n, int times) {
  for (int i = 0; i < times; ++i) n = (n + 1) / 2;
  return n;
}

// The checks both networks make before running: rank, channels, no empty dim, the parameters' dtype and
// device, and (training) more than one value per channel for the last BatchNorms.
void check_input(const std::string& module, const Tensor& x, int64_t rank, int64_t channels, const char* layout,
                 const Tensor& weight, bool training, int64_t last_map) {
  check_defined(module.c_str(), x);
  MINIDL_CHECK(x.dim() == rank && x.size(1) == channels, module, ": input must be ", layout, ", got ", x.meta_str());
  for (int64_t d = 0; d < rank; ++d)
    MINIDL_CHECK(x.size(d) > 0, module, ": input ", x.meta_str(), " is empty in dim ", d, " (", layout,
                 " needs at least 1 in every dim)");
  MINIDL_CHECK(x.dtype() == weight.dtype() && x.device() == weight.device(), module, ": input ", x.meta_str(),
               " does not match the parameters (", weight.meta_str(), "); convert one of them with .to()");
  MINIDL_CHECK(!training || x.size(0) * last_map > 1, module, ": input ", x.meta_str(), " leaves the last stage ",
               last_map, " position(s) per clip, and training-mode BatchNorm needs more than 1 value per channel; ",
               "use a batch of at least 2 or a larger input");
}

}  // namespace

// ---- R2Plus1D ----

struct R2Plus1D::Impl {
  Impl(const std::vector<int64_t>& widths_, int64_t blocks_, int64_t stem_width_, Generator* gen)
      : widths(widths_), blocks(blocks_), stem_width(stem_width_), avgpool(nn::Dims({1, 1, 1})) {
    // torchvision's R2Plus1dStem: a spatial 1x7x7 conv to the stem width, then a temporal 3x1x1 conv.
    stem.add(make_conv<nn::Conv3d>(3, stem_width, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}, gen));
    stem.add(std::make_shared<nn::BatchNorm3d>(stem_width));
    stem.add(std::make_shared<nn::ReLU>());
    stem.add(make_conv<nn::Conv3d>(stem_width, widths[0], {3, 1, 1}, 1, {1, 0, 0}, gen));
    stem.add(std::make_shared<nn::BatchNorm3d>(widths[0]));
    stem.add(std::make_shared<nn::ReLU>());
    for (size_t i = 0; i < 4; ++i)
      build_stage<VideoBlock>(layers[i], i == 0 ? widths[0] : widths[i - 1], widths[i], blocks, i == 0 ? 1 : 2, gen);
  }

  std::vector<int64_t> widths;
  int64_t blocks, stem_width;
  nn::Sequential stem;
  std::array<nn::Sequential, 4> layers;
  nn::AdaptiveAvgPool3d avgpool;
};

namespace {
int64_t checked_stem(const std::vector<int64_t>& widths, int64_t blocks, int64_t stem_width) {
  check_config("R2Plus1D", widths, blocks);
  MINIDL_CHECK(stem_width > 0, "R2Plus1D: stem_width must be positive, got ", stem_width);
  return stem_width;
}
}  // namespace

R2Plus1D::R2Plus1D(const std::vector<int64_t>& widths, int64_t blocks, int64_t stem_width, Generator* gen)
    : impl_(std::make_shared<Impl>(widths, blocks, checked_stem(widths, blocks, stem_width), gen)) {
  register_module("stem", &impl_->stem);
  for (size_t i = 0; i < 4; ++i) register_module("layer" + std::to_string(i + 1), &impl_->layers[i]);
  register_module("avgpool", &impl_->avgpool);
}

std::string R2Plus1D::describe() const {
  std::ostringstream os;
  os << "R2Plus1D(widths=" << list_str(impl_->widths) << ", blocks=" << impl_->blocks
     << ", stem_width=" << impl_->stem_width << ")";
  return os.str();
}

Tensor R2Plus1D::forward(const Tensor& x) {
  const bool shaped = x.defined() && x.dim() == 5;
  const int64_t last_map =
      shaped ? halved(x.size(2), 3) * halved(x.size(3), 4) * halved(x.size(4), 4) : 0;  // checked only when shaped
  check_input(describe(), x, 5, 3, "[N, 3, T, H, W] (RGB clips)", static_cast<nn::ConvNd&>(impl_->stem[0]).weight,
              is_training(), last_map);
  Tensor y = impl_->stem(x);
  for (auto& stage : impl_->layers) y = stage(y);
  return impl_->avgpool(y).flatten(1);
}

int64_t R2Plus1D::out_features() const { return impl_->widths.back(); }

// ---- AudioResNet ----

struct AudioResNet::Impl {
  Impl(const std::vector<int64_t>& widths_, int64_t blocks_, Generator* gen)
      : widths(widths_),
        blocks(blocks_),
        conv1(make_conv<nn::Conv2d>(1, widths[0], 7, 2, 3, gen)),
        bn1(widths[0]),
        maxpool(3, 2, 1),
        avgpool(nn::Dims({1, 1})) {
    for (size_t i = 0; i < 4; ++i)
      build_stage<ImageBlock>(layers[i], i == 0 ? widths[0] : widths[i - 1], widths[i], blocks, i == 0 ? 1 : 2, gen);
  }

  std::vector<int64_t> widths;
  int64_t blocks;
  std::shared_ptr<nn::Conv2d> conv1;
  nn::BatchNorm2d bn1;
  nn::ReLU relu;
  nn::MaxPool2d maxpool;
  std::array<nn::Sequential, 4> layers;
  nn::AdaptiveAvgPool2d avgpool;
};

namespace {
int64_t checked_blocks(const std::vector<int64_t>& widths, int64_t blocks) {
  check_config("AudioResNet", widths, blocks);
  return blocks;
}
}  // namespace

AudioResNet::AudioResNet(const std::vector<int64_t>& widths, int64_t blocks, Generator* gen)
    : impl_(std::make_shared<Impl>(widths, checked_blocks(widths, blocks), gen)) {
  register_module("conv1", impl_->conv1.get());
  register_module("bn1", &impl_->bn1);
  register_module("relu", &impl_->relu);
  register_module("maxpool", &impl_->maxpool);
  for (size_t i = 0; i < 4; ++i) register_module("layer" + std::to_string(i + 1), &impl_->layers[i]);
  register_module("avgpool", &impl_->avgpool);
}

std::string AudioResNet::describe() const {
  std::ostringstream os;
  os << "AudioResNet(widths=" << list_str(impl_->widths) << ", blocks=" << impl_->blocks << ")";
  return os.str();
}

Tensor AudioResNet::forward(const Tensor& x) {
  const bool shaped = x.defined() && x.dim() == 4;
  const int64_t last_map = shaped ? halved(x.size(2), 5) * halved(x.size(3), 5) : 0;
  check_input(describe(), x, 4, 1, "[N, 1, M, F] (log-mel images)", impl_->conv1->weight, is_training(), last_map);
  Tensor y = impl_->maxpool(impl_->relu(impl_->bn1((*impl_->conv1)(x))));
  for (auto& stage : impl_->layers) y = stage(y);
  return impl_->avgpool(y).flatten(1);
}

int64_t AudioResNet::out_features() const { return impl_->widths.back(); }

}  // namespace minidl::models
