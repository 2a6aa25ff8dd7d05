// nn::LSTM: layers and directions of the fused lstm_layer op, glued the way torch.nn.LSTM does it.
//
// Per layer, one op runs the whole sequence in each direction (lstm_bidirectional for both at once); a
// bidirectional layer concatenates the two outputs along the features (forward first) and feeds that to
// the next layer, with dropout in between in training. The final states of every layer and direction are stacked in
// torch's order.
#include "layers/lstm.h"

#include <cmath>
#include <sstream>

#include "autograd/error.h"
#include "autograd/ops.h"
#include "layers/init.h"

namespace minidl::nn {

LSTM::LSTM(int64_t input_size, int64_t hidden_size, const LSTMOptions& options, Generator* gen)
    : input_size_(input_size), hidden_size_(hidden_size), options_(options), gen_(gen) {
  MINIDL_CHECK(input_size > 0 && hidden_size > 0 && options.num_layers > 0, "LSTM: input_size (", input_size,
               "), hidden_size (", hidden_size, ") and num_layers (", options.num_layers, ") must be positive");
  MINIDL_CHECK(options.dropout >= 0.0 && options.dropout < 1.0, "LSTM: dropout must be in [0, 1), got ",
               options.dropout);
  const int64_t D = directions(), H = hidden_size, L = options.num_layers;
  cells_.resize(static_cast<size_t>(L * D));  // never resized again: registered by address below
  const double bound = 1.0 / std::sqrt(static_cast<double>(H));
  for (int64_t l = 0; l < L; ++l)
    for (int64_t d = 0; d < D; ++d) {
      Cell& c = cells_[static_cast<size_t>(l * D + d)];
      const int64_t in = l == 0 ? input_size : D * H;
      c.weight_ih = Tensor::empty({4 * H, in});
      c.weight_hh = Tensor::empty({4 * H, H});
      c.bias_ih = Tensor::empty({4 * H});
      c.bias_hh = Tensor::empty({4 * H});
      const std::string suffix = "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      // Drawn in registration order, like torch's reset_parameters over self.parameters().
      for (auto [name, t] : {std::pair{"weight_ih", &c.weight_ih}, std::pair{"weight_hh", &c.weight_hh},
                             std::pair{"bias_ih", &c.bias_ih}, std::pair{"bias_hh", &c.bias_hh}}) {
        init::uniform_(*t, -bound, bound, gen);
        register_parameter(name + suffix, t);
      }
    }
  if (options.learned_initial_state) {
    h0 = Tensor::empty({L * D, H});
    c0 = Tensor::empty({L * D, H});
    init::xavier_uniform_(h0, 1.0, gen);
    init::xavier_uniform_(c0, 1.0, gen);
    register_parameter("h0", &h0);
    register_parameter("c0", &c0);
  }
}

std::string LSTM::describe() const {
  std::ostringstream os;
  os << "LSTM(" << input_size_ << ", " << hidden_size_ << ", num_layers=" << options_.num_layers
     << ", bidirectional=" << (options_.bidirectional ? "true" : "false")
     << ", batch_first=" << (options_.batch_first ? "true" : "false");
  if (options_.dropout > 0) os << ", dropout=" << options_.dropout;
  if (options_.learned_initial_state) os << ", learned_initial_state=true";
  os << ")";
  return os.str();
}

const LSTM::Cell& LSTM::cell(int64_t layer, int64_t direction) const {
  MINIDL_CHECK(layer >= 0 && layer < options_.num_layers && direction >= 0 && direction < directions(),
               "LSTM: no cell (layer ", layer, ", direction ", direction, ") in ", describe());
  return cells_[static_cast<size_t>(layer * directions() + direction)];
}

LSTMOutput LSTM::forward(const Tensor& x, const Tensor& h0_in, const Tensor& c0_in) {
  const int64_t D = directions(), H = hidden_size_, L = options_.num_layers;
  const Tensor& w = cells_[0].weight_ih;
  check_defined("LSTM", x, "input");
  const char* layout = options_.batch_first ? "[B, T, input_size]" : "[T, B, input_size]";
  MINIDL_CHECK(x.dim() == 3 && x.size(2) == input_size_, "LSTM: input must be ", layout, " with input_size ",
               input_size_, ", got ", x.meta_str(), " (", describe(), ")");
  MINIDL_CHECK(x.dtype() == w.dtype() && x.device() == w.device(), "LSTM: input ", x.meta_str(),
               " does not match the parameters ", w.meta_str(), "; convert the input or call to() on the module");
  MINIDL_CHECK(h0_in.defined() == c0_in.defined(), "LSTM: pass both h0 and c0 or neither (got ",
               h0_in.defined() ? h0_in.meta_str() : "none", " and ", c0_in.defined() ? c0_in.meta_str() : "none", ")");
  // One contiguous batch-first copy of a time-major input, shared by both directions of the first layer.
  Tensor seq = options_.batch_first ? x : x.transpose(0, 1).contiguous();
  const int64_t B = seq.size(0);
  if (h0_in.defined()) {
    const Shape want{L * D, B, H};
    for (const auto& [s, name] : {std::pair{&h0_in, "h0"}, std::pair{&c0_in, "c0"}})
      MINIDL_CHECK(s->shape() == want, "LSTM: initial state ", name,
                   " must be [num_layers * directions, B, H] = ", shape_str(want), ", got ", s->meta_str(),
                   " for input ", x.meta_str());
  }

  // The initial state of layer l, direction d: undefined (zeros), the caller's, or the learned one.
  auto initial = [&](int64_t k) {
    LstmDirection in;
    if (h0_in.defined()) {
      in.h0 = h0_in.select(0, k);
      in.c0 = c0_in.select(0, k);
    } else if (h0.defined()) {
      in.h0 = h0.select(0, k).unsqueeze(0).expand({B, H});
      in.c0 = c0.select(0, k).unsqueeze(0).expand({B, H});
    }
    const Cell& c = cells_[static_cast<size_t>(k)];
    in.w_ih = c.weight_ih;
    in.w_hh = c.weight_hh;
    in.b_ih = c.bias_ih;
    in.b_hh = c.bias_hh;
    return in;
  };
  std::vector<Tensor> hs, cs;
  for (int64_t l = 0; l < L; ++l) {
    std::vector<LstmResult> r;
    if (D == 1) {
      const LstmDirection in = initial(l);
      r.push_back(lstm_layer(seq, in.h0, in.c0, in.w_ih, in.w_hh, in.b_ih, in.b_hh));
    } else {  // one op, so that on CUDA the directions' steps run together
      const std::array<LstmResult, 2> both = lstm_bidirectional(seq, initial(2 * l), initial(2 * l + 1));
      r.assign(both.begin(), both.end());
    }
    for (const LstmResult& d : r) {
      hs.push_back(d.h);
      cs.push_back(d.c);
    }
    seq = D == 1 ? r[0].output : cat({r[0].output, r[1].output}, 2);
    if (l + 1 < L && options_.dropout > 0) seq = dropout(seq, options_.dropout, is_training(), gen_);
  }
  return {options_.batch_first ? seq : seq.transpose(0, 1).contiguous(), stack(hs, 0), stack(cs, 0)};
}

}  // namespace minidl::nn
