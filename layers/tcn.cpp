// TemporalBlock and TCN (layers/tcn.h): built from the Conv1d (causal), LeakyReLU and Dropout modules, so
// every piece a block uses is a module of its own and shows up in summary() and in train() / eval().
#include "layers/tcn.h"

#include <sstream>

#include "autograd/error.h"
#include "autograd/ops.h"
#include "layers/dropout.h"
#include "layers/init.h"

namespace minidl::nn {
namespace {

// Checked before any member that could fail on the same numbers is built, so the error names the block.
int64_t checked_in(int64_t in, int64_t out, int64_t kernel, int64_t dilation, double dropout) {
  MINIDL_CHECK(in > 0 && out > 0 && kernel > 0 && dilation > 0, "TemporalBlock: in (", in, "), out (", out,
               "), kernel (", kernel, ") and dilation (", dilation, ") must be positive");
  MINIDL_CHECK(dropout >= 0.0 && dropout < 1.0, "TemporalBlock: dropout must be in [0, 1), got ", dropout);
  return in;
}

std::unique_ptr<Unary> make_dropout(double p, bool channels, Generator* gen) {
  if (channels) return std::make_unique<Dropout1d>(p, gen);
  return std::make_unique<Dropout>(p, gen);
}

}  // namespace

TemporalBlock::TemporalBlock(int64_t in, int64_t out, int64_t kernel, int64_t dilation, double dropout,
                             const TCNOptions& options, Generator* gen)
    : conv1(checked_in(in, out, kernel, dilation, dropout), out, kernel, 1, 0, dilation, 1, true, gen, true),
      conv2(out, out, kernel, 1, 0, dilation, 1, true, gen, true),
      in_(in),
      out_(out),
      relu1_(options.negative_slope),
      relu2_(options.negative_slope),
      relu_(options.negative_slope),
      dropout1_(make_dropout(dropout, options.channel_dropout, gen)),
      dropout2_(make_dropout(dropout, options.channel_dropout, gen)) {
  if (in != out) downsample = std::make_unique<Conv1d>(in, out, 1, 1, 0, 1, 1, true, gen);
  // locuslab's init_weights: the weights (not the biases) from N(0, 0.01).
  init::normal_(conv1.weight, 0.0, 0.01, gen);
  init::normal_(conv2.weight, 0.0, 0.01, gen);
  if (downsample) init::normal_(downsample->weight, 0.0, 0.01, gen);
  // torch's order: conv1, relu1, dropout1, conv2, relu2, dropout2, downsample, relu.
  register_module("conv1", &conv1);
  register_module("relu1", &relu1_);
  register_module("dropout1", dropout1_.get());
  register_module("conv2", &conv2);
  register_module("relu2", &relu2_);
  register_module("dropout2", dropout2_.get());
  if (downsample) register_module("downsample", downsample.get());
  register_module("relu", &relu_);
}

std::string TemporalBlock::describe() const {
  std::ostringstream os;
  os << "TemporalBlock(" << in_ << ", " << out_ << ", kernel=" << conv1.kernel_size()[0]
     << ", dilation=" << conv1.dilation()[0] << ")";
  return os.str();
}

Tensor TemporalBlock::forward(const Tensor& x) {
  check_defined("TemporalBlock", x);
  MINIDL_CHECK(x.dim() == 3 && x.size(1) == in_, describe(), ": input must be [B, ", in_, ", T], got ", x.meta_str());
  Tensor y = (*dropout1_)(relu1_(conv1(x)));
  y = (*dropout2_)(relu2_(conv2(y)));
  return relu_(y + (downsample ? (*downsample)(x) : x));
}

TCN::TCN(int64_t in, const std::vector<int64_t>& channels, int64_t kernel, double dropout, const TCNOptions& options,
         Generator* gen)
    : in_(in), kernel_(kernel), channels_(channels) {
  MINIDL_CHECK(!channels.empty(), "TCN: needs at least one level (channels is empty)");
  MINIDL_CHECK(channels.size() < 62, "TCN: ", channels.size(), " levels would need a dilation of 2^",
               channels.size() - 1, ", which does not fit");
  int64_t width = in;
  for (size_t i = 0; i < channels.size(); ++i) {
    blocks_.push_back(
        std::make_shared<TemporalBlock>(width, channels[i], kernel, int64_t{1} << i, dropout, options, gen));
    network.add(blocks_.back());
    width = channels[i];
  }
  register_module("network", &network);
}

std::string TCN::describe() const {
  std::ostringstream os;
  os << "TCN(" << in_ << ", channels=[";
  for (size_t i = 0; i < channels_.size(); ++i) os << (i ? ", " : "") << channels_[i];
  os << "], kernel=" << kernel_ << ")";
  return os.str();
}

Tensor TCN::forward(const Tensor& x) {
  check_defined("TCN", x);
  MINIDL_CHECK(x.dim() == 3 && x.size(1) == in_, describe(), ": input must be [B, ", in_, ", T], got ", x.meta_str());
  return network(x);
}

int64_t TCN::receptive_field() const { return 1 + 2 * (kernel_ - 1) * ((int64_t{1} << channels_.size()) - 1); }

TemporalBlock& TCN::block(size_t i) {
  MINIDL_CHECK(i < blocks_.size(), "TCN: no block ", i, " in ", describe());
  return *blocks_[i];
}

}  // namespace minidl::nn
