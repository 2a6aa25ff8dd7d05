// nn::LSTM: a stack of LSTM layers, optionally bidirectional, with torch.nn.LSTM's parameters, names, shapes,
// initialisation and return values, built on the fused op lstm_layer (autograd/ops_lstm.cpp).
//
//   nn::LSTM lstm(512, 256, {.num_layers = 2, .bidirectional = true, .batch_first = true});
//   auto [output, h_n, c_n] = lstm.forward(x);   // x [B, T, 512] -> output [B, T, 512], h_n/c_n [4, B, 256]
//
// Parameters, per layer k and direction (suffix "_reverse" for the backward one), as torch names them:
//   weight_ih_l{k} [4H, in_k], weight_hh_l{k} [4H, H], bias_ih_l{k} [4H], bias_hh_l{k} [4H]
// with in_0 = input_size and in_k = directions * H above (a bidirectional layer feeds the concatenation of
// both directions to the next). Gate order i, f, g, o. All drawn from U(-1/sqrt(H), 1/sqrt(H)) in
// registration order, as torch's reset_parameters does. A state_dict therefore loads into torch.nn.LSTM.
//
// learned_initial_state adds parameters "h0" and "c0" of shape [num_layers * directions, H], xavier-uniform
// initialised and expanded over the batch, as the authors' LSTM wrapper does (PAPER-NOTES.md §2.4); an
// initial state passed to forward() takes precedence over them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/random.h"
#include "autograd/tensor.h"
#include "layers/module.h"

namespace minidl::nn {

struct LSTMOptions {
  int64_t num_layers = 1;
  bool bidirectional = false;
  bool batch_first = false;  // x [B, T, in] instead of torch's default [T, B, in]
  double dropout = 0.0;      // on the output of every layer but the last, in training only
  bool learned_initial_state = false;
};

struct LSTMOutput {
  Tensor output;  // [B, T, D*H] (batch_first) or [T, B, D*H]: the last layer's hidden states
  Tensor h_n;     // [num_layers * D, B, H]: the final hidden state of each layer and direction
  Tensor c_n;     // [num_layers * D, B, H]: the final cell state
};

class LSTM : public Module {
 public:
  // `gen` draws the initial weights (default: the global generator) and, kept, the dropout masks.
  LSTM(int64_t input_size, int64_t hidden_size, const LSTMOptions& options = {}, Generator* gen = nullptr);

  std::string type_name() const override { return "LSTM"; }
  std::string describe() const override;

  // x [T, B, in] or [B, T, in] (batch_first). h0 and c0 [num_layers * D, B, H], both or neither; without
  // them the state starts from the learned one, or from zeros.
  LSTMOutput forward(const Tensor& x, const Tensor& h0 = Tensor(), const Tensor& c0 = Tensor());
  LSTMOutput operator()(const Tensor& x, const Tensor& h0 = Tensor(), const Tensor& c0 = Tensor()) {
    const ModuleScope scope(scope_path());
    return forward(x, h0, c0);
  }

  int64_t input_size() const { return input_size_; }
  int64_t hidden_size() const { return hidden_size_; }
  int64_t directions() const { return options_.bidirectional ? 2 : 1; }
  const LSTMOptions& options() const { return options_; }

  // The parameters of one layer and direction (0 forward, 1 reverse).
  struct Cell {
    Tensor weight_ih, weight_hh, bias_ih, bias_hh;
  };
  const Cell& cell(int64_t layer, int64_t direction) const;

  Tensor h0, c0;  // learned initial state (undefined unless learned_initial_state)

 private:
  // Index layer * directions() + direction, torch's order. Sized once in the constructor: the module
  // holds pointers to these tensors.
  std::vector<Cell> cells_;
  int64_t input_size_, hidden_size_;
  LSTMOptions options_;
  Generator* gen_;
};

}  // namespace minidl::nn
