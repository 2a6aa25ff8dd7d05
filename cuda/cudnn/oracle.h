// cuDNN as an oracle and a yardstick: the reference results the GPU tests compare minidl's own CUDA
// kernels against (tests/cuda/test_cudnn_oracle.cpp), and the speed reference of the kernel benchmarks
// (apps/bench_cudnn.cu, DESIGN.md workload W3). The library itself never calls cuDNN: only the test
// program and the benchmark link these files (cuda/cudnn/conv.cu, cuda/cudnn/lstm.cu) and -lcudnn.
//
// Plain C++ declarations, no cuDNN types, so that C++ test files include this without the cuDNN headers.
// Every failed cuDNN call becomes a minidl::Error with the file, the line, the call and cuDNN's message.
// Everything runs on minidl's current stream of the tensors' device (cudnnSetStream before each call),
// so it is ordered with minidl's kernels and the CUDA-event timing of the benchmarks sees it; workspaces
// come from minidl's caching allocator (cuda::device_malloc).
//
// Convolutions. Tensors as cuda/kernels.h's conv_forward/conv_backward take them: contiguous float32 on
// one CUDA device, x [batch, in_channels, *in], w [out_channels, in_channels / groups, *kernel],
// y [batch, out_channels, *out], with the geometry of a ConvShape (always 3 spatial dims). A problem whose
// leading spatial dim is unused (in 1, kernel 1, padding 0: every 1-D and 2-D convolution) is handed to
// cuDNN as the 2-D problem it is, with 4-dim NCHW descriptors, so that cuDNN may use its 2-D kernels, as
// PyTorch's Conv2d does; every other problem gets 5-dim NCDHW descriptors. Groups go through
// cudnnSetConvolutionGroupCount. Each call overwrites its output (beta 0).
//   tf32 false: CUDNN_FMA_MATH, plain float32 arithmetic (the oracle of the tests, "fp32 strict");
//   tf32 true:  CUDNN_TENSOR_OP_MATH, inputs rounded to TF32 on tensor cores (PyTorch's default for
//               convolutions, the second column of the benchmark); the chosen algorithm's own math type
//               where cuDNN ranks one without a tensor-op variant first, as PyTorch does.
// The descriptors and the algorithm of each (pass, geometry, math) are made once and cached.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/conv_geometry.h"
#include "autograd/shape.h"
#include "autograd/tensor.h"
#include "layers/module.h"  // nn::NamedTensors

namespace minidl::nn {
class LSTM;
}

namespace minidl::cudnn {

// True when a cuDNN handle can be created on device 0 (a device exists and libcudnn loads and accepts it).
bool available();
// cuDNN's run-time version, "9.19.0".
std::string version();

// ---- convolution ------------------------------------------------------------------------------------
// The geometry conv() would compute for x and w of these shapes (1 to 3 spatial dims; stride, padding and
// dilation with one value per spatial dim or one for all), for the tests and the benchmark.
ConvShape conv_shape(const Shape& x, const Shape& w, const std::vector<int64_t>& stride = {1},
                     const std::vector<int64_t>& padding = {0}, const std::vector<int64_t>& dilation = {1},
                     int64_t groups = 1);

// y = conv(x, w) (no bias).
void conv_forward(const Tensor& x, const Tensor& w, const ConvShape& s, const Tensor& y, bool tf32);
// gx = the gradient of sum(conv(x, w) * gy) with respect to x.
void conv_backward_data(const Tensor& w, const Tensor& gy, const ConvShape& s, const Tensor& gx, bool tf32);
// gw = the gradient of sum(conv(x, w) * gy) with respect to w.
void conv_backward_filter(const Tensor& x, const Tensor& gy, const ConvShape& s, const Tensor& gw, bool tf32);

// How the algorithm of a new (pass, geometry, math) is chosen; applies to plans made after the call.
enum class AlgoChoice {
  // The default, for the tests: the first of cuDNN's heuristic ranking (cudnnGetConvolution*Algorithm_v7)
  // that is a GEMM-like or direct algorithm (no FFT, no Winograd, whose transforms add rounding error of
  // their own). Falls back to any working algorithm when none of those applies.
  Accurate,
  // cuDNN's heuristic first choice, whatever it is: what PyTorch runs with cudnn.benchmark off.
  Heuristic,
  // Every algorithm timed once by cudnnFindConvolution*AlgorithmEx and the fastest kept: what PyTorch
  // runs with cudnn.benchmark on. Slow to plan (each new geometry runs every algorithm).
  Fastest,
};
void set_algo_choice(AlgoChoice choice);
AlgoChoice algo_choice();

enum class ConvPass { Forward, BackwardData, BackwardFilter };
// The cached plan's algorithm, math type and workspace, e.g. "IMPLICIT_PRECOMP_GEMM, FMA, 0 KiB", or
// "(not planned)" before the first call of that pass, geometry and math.
std::string conv_algorithm(ConvPass pass, const ConvShape& s, bool tf32);

// ---- LSTM -------------------------------------------------------------------------------------------
// A stack of LSTM layers, optionally bidirectional, as nn::LSTM with batch_first = true computes it, run
// by cuDNN's RNN API (cudnnRNNForward, cudnnRNNBackwardData_v8, cudnnRNNBackwardWeights_v8) for one
// fixed batch B and sequence length T. The initial states are zero; there is no dropout and no learned
// initial state. Inputs x [B, T, input_size] and gradients dy [B, T, D H] are contiguous float32 tensors
// on `device`; forward returns y [B, T, D H] (D = 2 when bidirectional, forward direction first).
//
// Parameters are named as torch.nn.LSTM (and nn::LSTM) name them: weight_ih_l{k}, weight_hh_l{k},
// bias_ih_l{k}, bias_hh_l{k}, with the suffix "_reverse" for the backward direction; weight_ih [4H, in],
// weight_hh [4H, H], biases [4H], gates stacked in the order i, f, g, o. cuDNN keeps them in its own
// opaque weight space; load() copies each gate's block into the slot cudnnGetRNNWeightParams reports
// (pseudo-layer = layer * D + direction; linLayerID 0-3 the input-GEMM gates i, f, g, o, 4-7 the
// recurrent ones, so gate q of weight_ih/bias_ih is linLayerID q and of weight_hh/bias_hh 4 + q).
//
// tf32 false uses CUDNN_FMA_MATH (float32 arithmetic); true uses CUDNN_DEFAULT_MATH, which lets cuDNN
// use TF32 tensor cores on sm_80 and later (what PyTorch does with its default allow_tf32).
class Lstm {
 public:
  Lstm(int64_t input_size, int64_t hidden_size, int64_t num_layers, bool bidirectional, int64_t batch, int64_t seq_len,
       bool tf32 = false, int device = 0);
  ~Lstm();
  Lstm(const Lstm&) = delete;
  Lstm& operator=(const Lstm&) = delete;

  // Copies the parameters of `lstm` (same sizes, batch_first, no learned initial state) into the weight
  // space. The module's tensors may be on any device.
  void load(const nn::LSTM& lstm);
  // The same from a list of torch-named tensors: every parameter of this configuration must be there with
  // its shape, and nothing else.
  void load(const nn::NamedTensors& parameters);

  // y [B, T, D H]. training keeps cuDNN's reserve space for backward (CUDNN_FWD_MODE_TRAINING);
  // otherwise the inference mode runs.
  Tensor forward(const Tensor& x, bool training = true);
  // Backpropagates dy from the y of the last training forward (the same tensor): the input gradient
  // (dx()) and the gradient of every parameter (grad()). Zero gradients flow in through the final states.
  void backward(const Tensor& y, const Tensor& dy);

  // The input gradient of the last backward, [B, T, input_size].
  const Tensor& dx() const;
  // The gradient of a parameter by its torch name, read out of the gradient weight space into a new
  // tensor of the parameter's shape on the device.
  Tensor grad(const std::string& name) const;
  // A parameter as it sits in the weight space (what load wrote), by its torch name.
  Tensor weight(const std::string& name) const;
  // Every parameter name, in torch's registration order.
  std::vector<std::string> parameter_names() const;
  size_t weight_space_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace minidl::cudnn
