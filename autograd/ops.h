// The differentiable ops. Each checks its inputs (shapes, dtypes, devices), runs the kernel of the
// tensors' device, and records its backward rule when an input requires grad.
//
// Where to find an op: the front end (checks + backward rule) is in autograd/ops_<family>.cpp, its CPU
// kernel in cpu/<family>.cpp, its CUDA kernel in cuda/<family>.cu.
//   elementwise: add sub mul div neg pow exp log sqrt abs tanh sigmoid relu leaky_relu clamp where
//                masked_fill and the comparisons
//   reduce:      sum mean var max min argmax sum_to
//   gemm:        matmul linear
//   index:       cat stack split pad index_select gather
//   softmax:     softmax log_softmax
//   loss:        ccc ccc_loss
//   conv:        conv (1-3 spatial dims)
//   pool:        max_pool avg_pool adaptive_avg_pool
//   norm:        batch_norm layer_norm
//   dropout:     dropout channel_dropout (ops_dropout.cpp; built on the elementwise kernels)
//   lstm:        lstm_layer lstm_bidirectional
//   attention:   joint_cross_attention (and its composed reference)
// Views (reshape, permute, narrow, expand, ...) are Tensor methods, in autograd/ops_view.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "autograd/random.h"
#include "autograd/tensor.h"

namespace minidl {

// ---- elementwise, with NumPy broadcasting; both operands must have the same dtype and device ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);  // d/db uses log(a): defined for a > 0
// Scalar forms: the scalar takes the tensor's dtype.
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor sub(double a, const Tensor& b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor div(double a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor pow(double base, const Tensor& exponent);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);  // gradient 0 at x == 0
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);  // gradient 0 at x == 0
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor clamp(const Tensor& x, double lo, double hi);  // gradient passes where lo <= x <= hi

// Comparisons give bool tensors (no gradient).
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);

// where(cond, a, b): a where cond is true, else b; cond is bool; all three broadcast together.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);  // value where mask is true

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(const Tensor& a, double b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(const Tensor& a, double b);
Tensor operator/(double a, const Tensor& b);

// ---- reductions over `dims` (empty = all dims); negative dims count from the end ----
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with divisor N - ddof (ddof 0: population, 1: sample).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t ddof = 1, bool keepdim = false);
// Largest / smallest value. The gradient is shared equally among tied maxima (like torch.amax).
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor min(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Index of the first largest value along `dim`, as int64 (no gradient).
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
// Sums a broadcast result back down to `shape` (the gradient of a broadcast).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- matrix products ----
// matmul follows NumPy: 1-D operands are promoted to a matrix and the added dim removed after; batch
// dims (all but the last two) broadcast. [..., M, K] @ [..., K, N] -> [..., M, N].
Tensor matmul(const Tensor& a, const Tensor& b);
// x @ weight^T + bias with weight [out, in], x [..., in], bias [out] (optional), like torch.nn.Linear.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- joining, splitting, padding, indexing ----
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Pieces of `split_size` along dim (the last may be shorter), or pieces of the given sizes.
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
// Constant padding in torch.nn.functional.pad's order: {left, right} of the last dim, then of the one
// before, and so on. Negative amounts crop.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0.0);
// Rows of x along dim picked by the 1-D int64 `index`.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (and so on), index int64 with x's number of dims.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);

// ---- softmax, along one dim, numerically stable (the row max is subtracted first) ----
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);

// ---- concordance correlation (MODEL.md §4) ----
// pred, target: [..., C]; mask: bool with pred's shape minus the last dim, or undefined for "all valid".
// Returns the CCC of each of the C columns over the valid rows, with population moments:
//   ccc = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2 + eps).
Tensor ccc(const Tensor& pred, const Tensor& target, const Tensor& mask = Tensor(), double eps = 1e-8);
// The training loss sum over columns of (1 - ccc): (1 - CCC_V) + (1 - CCC_A) for C = 2.
Tensor ccc_loss(const Tensor& pred, const Tensor& target, const Tensor& mask = Tensor(), double eps = 1e-8);

// ---- convolution ----
// Convolution (cross-correlation, as in torch) over 1, 2 or 3 spatial dims: x [B, C_in, *spatial],
// weight [C_out, C_in / groups, *kernel], bias [C_out] (optional). stride, padding (zeros) and dilation
// give one value per spatial dim, or one value for all of them.
Tensor conv(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
            const std::vector<int64_t>& stride = {1}, const std::vector<int64_t>& padding = {0},
            const std::vector<int64_t>& dilation = {1}, int64_t groups = 1);

// ---- pooling, over the trailing kernel.size() dims (1 to 3) of x [B, C, *spatial] ----
// stride defaults to the kernel. Max pooling pads with -inf, average pooling with zeros (counted in the
// average when count_include_pad, as torch does by default). The gradient of a max goes to the first
// maximum of its window.
Tensor max_pool(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride = {},
                const std::vector<int64_t>& padding = {0});
Tensor avg_pool(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride = {},
                const std::vector<int64_t>& padding = {0}, bool count_include_pad = true);
// Averages each spatial dim into exactly output_size cells, with torch's cell edges
// (floor(i n / out) to ceil((i + 1) n / out)).
Tensor adaptive_avg_pool(const Tensor& x, const std::vector<int64_t>& output_size);

// ---- normalisation ----
// x [B, C, *]: each channel is normalised over every other dim. Training: with the batch's mean and biased
// variance, and running_mean / running_var (if given) updated in place as
// running = (1 - momentum) running + momentum batch (the unbiased variance, like torch). Evaluation: with
// running_mean / running_var. weight and bias [C] are optional (affine = false).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);
// Normalises over the trailing dims given by normalized_shape; weight and bias have that shape (optional).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

// ---- dropout (masks from the Philox stream: the same seed gives the same masks on every device) ----
// Training: each element is zeroed with probability p and the rest scaled by 1 / (1 - p); evaluation: x.
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);
// The same for whole channels of x [B, C, *] (torch's Dropout1d/2d/3d).
Tensor channel_dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);

// ---- LSTM ----
// One layer in one direction over a whole sequence, as one fused op. x [B, T, I] (batch first),
// h0 and c0 [B, H]; weights in torch's layout and gate order (input, forget, cell, output):
// w_ih [4H, I], w_hh [4H, H], b_ih and b_hh [4H] (biases optional). reverse runs from step T-1 to 0.
// Returns the hidden state of every step, output [B, T, H], and the final state h, c [B, H] (after the
// last step processed); gradients flow back from all three.
struct LstmResult {
  Tensor output, h, c;
};
LstmResult lstm_layer(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                      const Tensor& b_ih, const Tensor& b_hh, bool reverse = false);
// Both directions of a bidirectional layer over the same x, as one op. result[0] is
// lstm_layer(x, forward...) and result[1] lstm_layer(x, backward..., reverse = true), the same values and
// gradients (x's gradient is the sum of the two). On CUDA both directions take each step together, so
// the layer is one chain of T steps instead of two.
struct LstmDirection {
  Tensor h0, c0, w_ih, w_hh, b_ih, b_hh;  // as lstm_layer's (h0, c0 and the biases may be undefined)
};
std::array<LstmResult, 2> lstm_bidirectional(const Tensor& x, const LstmDirection& forward,
                                             const LstmDirection& backward);

// ---- joint cross-attention (MODEL.md §1) ----
// One branch's weights, no biases: affine [L, L] (W_ja / W_jv, mixing time), w [k, L] (W_a / W_v),
// w_c [k, 2d] (W_ca / W_cv), w_h [L, k] (W_ha / W_hv).
struct JcaWeights {
  Tensor affine, w, w_c, w_h;
};
struct JcaResult {
  Tensor audio, visual;  // X_att,a and X_att,v [B, L, d]
};
// The attention block of the JCA fusion as one op, for X_a, X_v [B, L, d]: per sequence and branch, with
// J = [X_a, X_v] and that branch's weights,
//   C = tanh(X^T (W_j J) / sqrt(2d)),  H = relu(C W_c^T + X^T W^T),  X_att = (H W_h^T)^T + X.
// No [B, d, 2d] tensor is made: the kernels take the rows of X^T in blocks, and the backward recomputes
// what it needs from X_a, X_v and the weights. On CUDA: L <= 64, d <= 1024, k <= 256.
JcaResult joint_cross_attention(const Tensor& xa, const Tensor& xv, const JcaWeights& audio, const JcaWeights& visual);
// The same math composed of matmul, linear, tanh, relu and add (the model's code before the fused op): the
// reference the op is tested and timed against.
JcaResult joint_cross_attention_reference(const Tensor& xa, const Tensor& xv, const JcaWeights& audio,
                                          const JcaWeights& visual);

}  // namespace minidl
