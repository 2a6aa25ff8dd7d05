// cuDNN's multi-layer (bi)directional LSTM behind cuda/cudnn/oracle.h (class cudnn::Lstm).
//
// Test and benchmark code only: the oracle that tests/cuda/test_cudnn_oracle.cpp compares nn::LSTM on the
// GPU (cuda/lstm.cu) against, and the speed reference of apps/bench_cudnn.cu (DESIGN.md W3: BiLSTM B64,
// T16, in 512, hidden 256, 2 layers). The minidl library never calls this file and does not link cuDNN.
//
// The RNN API of cudnn_adv_v9.h, in the order used:
//   construction  cudnnCreate, cudnnSetStream;
//                 cudnnCreateDropoutDescriptor + cudnnSetDropoutDescriptor(p = 0, no states): no dropout;
//                 cudnnCreateRNNDescriptor + cudnnSetRNNDescriptor_v8(ALGO_STANDARD, CUDNN_LSTM,
//                   CUDNN_RNN_DOUBLE_BIAS, UNI/BIDIRECTIONAL, CUDNN_LINEAR_INPUT, float data and math
//                   precision, FMA or DEFAULT math, projSize = hiddenSize (no projection),
//                   CUDNN_RNN_PADDED_IO_ENABLED, which the unpacked layouts require);
//                 cudnnCreateRNNDataDescriptor + cudnnSetRNNDataDescriptor for x and y
//                   (CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED: x [B, T, in] as nn::LSTM's batch_first,
//                   every sequence of length T);
//                 cudnnCreateTensorDescriptor + cudnnSetTensorNdDescriptor for the states [L D, B, H]
//                   (the pointers are null: zero initial states, final states not kept);
//                 cudnnGetRNNWeightSpaceSize, cudnnGetRNNTempSpaceSizes (training and inference);
//   load          cudnnGetRNNWeightParams per (pseudo-layer, linLayerID), cudnnGetTensorNdDescriptor to
//                 check each slot's shape, then one device-to-device copy per gate block;
//   forward       cudnnRNNForward (devSeqLengths: the lengths again, in device memory, as cuDNN 9 requires);
//   backward      cudnnRNNBackwardData_v8 (dx, reading y, dy and the reserve space), then the gradient
//                 weight space zeroed and cudnnRNNBackwardWeights_v8 with CUDNN_WGRAD_MODE_ADD (the mode
//                 the cuDNN documentation says this function supports; zeroed first, ADD is SET);
//   read-out      cudnnGetRNNWeightParams on the gradient weight space (the same layout as the weights).
//
// Weight slots. cuDNN's LSTM numbers its eight matrices (and, with double bias, eight bias vectors) per
// pseudo-layer: linLayerID 0, 1, 2, 3 belong to the input GEMM (W x) and 4, 5, 6, 7 to the recurrent GEMM
// (R h), and within each group the gates are input, forget, new memory (cell candidate), output: i, f, g,
// o, torch's order. So torch's gate q of weight_ih / bias_ih is linLayerID q and of weight_hh / bias_hh
// 4 + q (PyTorch's own cuDNN path flattens its weights in exactly this order). Each slot is a row-major
// [H, cols] matrix (cols = in_k for the input GEMM, H for the recurrent one), the same bytes as rows
// q H .. (q + 1) H of torch's [4H, cols] weight; that is checked against what cuDNN reports for every slot.
// Pseudo-layer = layer * D + direction (forward 0, reverse 1), torch's order of cells.
#include <cudnn.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "cuda/common.cuh"
#include "cuda/cudnn/oracle.h"
#include "cuda/runtime.h"
#include "layers/lstm.h"

namespace {

[[noreturn]] void cudnn_failed(cudnnStatus_t status, const char* file, int line, const char* call) {
  ::minidl::fail(file, ":", line, ": ", call, " failed: ", cudnnGetErrorString(status), " (cuDNN status ",
                 static_cast<int>(status), ")");
}

}  // namespace

// A failed cuDNN call becomes a minidl::Error naming the file, the line, the call and cuDNN's message.
#define CUDNN_CHECK(call)                                                                        \
  do {                                                                                           \
    const cudnnStatus_t minidl_st_ = (call);                                                     \
    if (minidl_st_ != CUDNN_STATUS_SUCCESS) cudnn_failed(minidl_st_, __FILE__, __LINE__, #call); \
  } while (0)

namespace minidl::cudnn {
namespace {

// Device memory from minidl's caching allocator, owned for the life of the oracle.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { release(); }
  void allocate(size_t bytes, int device) {
    release();
    device_ = device;
    bytes_ = bytes;
    if (bytes > 0) ptr_ = cuda::device_malloc(bytes, device);
  }
  void release() {
    if (ptr_) cuda::device_free(ptr_, device_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  int device_ = 0;
};

int to_int(int64_t v, const char* what) {
  MINIDL_CHECK(v > 0 && v <= 0x7fffffff, "cudnn::Lstm: ", what, " must be positive and fit an int, got ", v);
  return static_cast<int>(v);
}

// The four parameter kinds of a cell, in torch's registration order.
enum Kind { kWeightIh = 0, kWeightHh = 1, kBiasIh = 2, kBiasHh = 3 };
constexpr const char* kKindNames[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};

std::string param_name(int kind, int64_t layer, int64_t direction) {
  return std::string(kKindNames[kind]) + "_l" + std::to_string(layer) + (direction == 1 ? "_reverse" : "");
}

}  // namespace

struct Lstm::Impl {
  int device = 0;
  int64_t I = 0, H = 0, L = 0, D = 1, B = 0, T = 0;
  bool tf32 = false;

  cudnnHandle_t handle = nullptr;
  cudnnDropoutDescriptor_t dropout = nullptr;
  cudnnRNNDescriptor_t rnn = nullptr;
  cudnnRNNDataDescriptor_t xdesc = nullptr, ydesc = nullptr;
  cudnnTensorDescriptor_t hdesc = nullptr;                   // [L D, B, H]: the h and c states (all null)
  cudnnTensorDescriptor_t mdesc = nullptr, bdesc = nullptr;  // filled by cudnnGetRNNWeightParams

  DeviceBuffer seq_lengths, weights, dweights, work, reserve;

  Tensor x, y, dx;             // of the last training forward / backward
  bool forward_done = false;   // a training forward whose reserve space a backward may use
  bool backward_done = false;  // dx and the gradient weight space hold a backward's results

  ~Impl() {
    // Nothing here may throw; the statuses are ignored.
    const cuda::DeviceGuard guard(device);
    if (mdesc) cudnnDestroyTensorDescriptor(mdesc);
    if (bdesc) cudnnDestroyTensorDescriptor(bdesc);
    if (hdesc) cudnnDestroyTensorDescriptor(hdesc);
    if (ydesc) cudnnDestroyRNNDataDescriptor(ydesc);
    if (xdesc) cudnnDestroyRNNDataDescriptor(xdesc);
    if (rnn) cudnnDestroyRNNDescriptor(rnn);
    if (dropout) cudnnDestroyDropoutDescriptor(dropout);
    if (handle) cudnnDestroy(handle);
  }

  cudaStream_t stream() const { return cuda::stream_of(device); }

  // Binds the handle to minidl's current stream of the device (which the caller has made current).
  void bind() const { CUDNN_CHECK(cudnnSetStream(handle, stream())); }

  int64_t input_cols(int64_t layer) const { return layer == 0 ? I : D * H; }

  Shape param_shape(int kind, int64_t layer) const {
    switch (kind) {
      case kWeightIh: return {4 * H, input_cols(layer)};
      case kWeightHh: return {4 * H, H};
      default: return {4 * H};
    }
  }

  struct Param {
    int kind;
    int64_t layer, direction;
  };
  Param parse(const std::string& name) const {
    for (int64_t l = 0; l < L; ++l)
      for (int64_t d = 0; d < D; ++d)
        for (int k = 0; k < 4; ++k)
          if (name == param_name(k, l, d)) return {k, l, d};
    fail("cudnn::Lstm: no parameter named '", name, "' in an LSTM of ", L, " layer(s), ",
         D == 2 ? "bidirectional" : "unidirectional", " (names as torch's: weight_ih_l0, bias_hh_l1_reverse, ...)");
  }

  // The device address of gate block q of a parameter inside `space` (the weights or their gradients),
  // after checking that cuDNN's slot has the shape of that block.
  float* block(void* space, const Param& p, int q) const {
    const bool matrix = p.kind == kWeightIh || p.kind == kWeightHh;
    const bool input_gemm = p.kind == kWeightIh || p.kind == kBiasIh;
    const int lin = (input_gemm ? 0 : 4) + q;  // linLayerID: see the file comment
    const int pseudo = static_cast<int>(p.layer * D + p.direction);
    void* m = nullptr;
    void* b = nullptr;
    CUDNN_CHECK(cudnnGetRNNWeightParams(handle, rnn, pseudo, weights.bytes(), space, lin, mdesc, &m, bdesc, &b));
    const int64_t cols = matrix ? (input_gemm ? input_cols(p.layer) : H) : 1;
    cudnnDataType_t type = CUDNN_DATA_FLOAT;
    int nb = 0, dims[3] = {0, 0, 0}, strides[3] = {0, 0, 0};
    CUDNN_CHECK(cudnnGetTensorNdDescriptor(matrix ? mdesc : bdesc, 3, &type, &nb, dims, strides));
    void* at = matrix ? m : b;
    // cuDNN reports {1, rows, cols} for a matrix and {1, rows, 1} for a bias, rows-major.
    const bool fits = at != nullptr && type == CUDNN_DATA_FLOAT && nb == 3 && dims[0] == 1 && dims[1] == H &&
                      dims[2] == cols && strides[2] == 1 && (cols == 1 || strides[1] == cols);
    MINIDL_CHECK(fits, "cudnn::Lstm: cuDNN's slot for ", param_name(p.kind, p.layer, p.direction), " gate ", q,
                 " (pseudo-layer ", pseudo, ", linLayerID ", lin, ") is ", at ? "" : "absent, ", nb, " dims [", dims[0],
                 ", ", dims[1], ", ", dims[2], "] strides [", strides[0], ", ", strides[1], ", ", strides[2],
                 "], expected a row-major [1, ", H, ", ", cols, "] float32 block");
    return static_cast<float*>(at);
  }

  // Copies between a contiguous float32 [4H, cols] / [4H] tensor on the device and the four gate slots.
  void copy_param(void* space, const Param& p, float* tensor_data, bool into_space) const {
    const Shape shape = param_shape(p.kind, p.layer);
    const int64_t cols = shape.size() == 2 ? shape[1] : 1;
    const size_t bytes = static_cast<size_t>(H * cols) * sizeof(float);
    for (int q = 0; q < 4; ++q) {
      float* slot = block(space, p, q);
      float* part = tensor_data + q * H * cols;
      MINIDL_CUDA_CHECK(cudaMemcpyAsync(into_space ? slot : part, into_space ? part : slot, bytes,
                                        cudaMemcpyDeviceToDevice, stream()));
    }
  }

  Tensor read(void* space, const std::string& name) const {
    const Param p = parse(name);
    const cuda::DeviceGuard guard(device);
    MINIDL_CUDA_CHECK(guard.status());
    Tensor out = Tensor::empty(param_shape(p.kind, p.layer), kFloat32, Device::cuda(device));
    copy_param(space, p, static_cast<float*>(out.raw_data()), /*into_space=*/false);
    return out;
  }

  void check_data(const char* op, const char* what, const Tensor& t, int64_t features) const {
    const Shape want{B, T, features};
    MINIDL_CHECK(t.defined() && t.device().is_cuda() && t.device().index == device && t.dtype() == kFloat32 &&
                     t.is_contiguous() && t.shape() == want,
                 "cudnn::Lstm::", op, ": ", what, " must be a contiguous float32 ", shape_str(want),
                 " tensor on cuda:", device, ", got ", t.defined() ? t.meta_str() : "an undefined tensor");
  }
};

Lstm::Lstm(int64_t input_size, int64_t hidden_size, int64_t num_layers, bool bidirectional, int64_t batch,
           int64_t seq_len, bool tf32, int device)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.device = device;
  m.I = input_size;
  m.H = hidden_size;
  m.L = num_layers;
  m.D = bidirectional ? 2 : 1;
  m.B = batch;
  m.T = seq_len;
  m.tf32 = tf32;
  const int I = to_int(input_size, "input_size"), H = to_int(hidden_size, "hidden_size"),
            L = to_int(num_layers, "num_layers"), B = to_int(batch, "batch"), T = to_int(seq_len, "seq_len");
  const int DH = to_int(m.D * m.H, "directions * hidden_size"), LD = to_int(m.L * m.D, "layers * directions");
  to_int(m.B * m.T * std::max(m.I, m.D * m.H), "the number of elements of x or y");

  const cuda::DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  CUDNN_CHECK(cudnnCreate(&m.handle));
  m.bind();

  // No dropout: p = 0 needs no random states (PyTorch sets up its no-dropout descriptor the same way).
  CUDNN_CHECK(cudnnCreateDropoutDescriptor(&m.dropout));
  CUDNN_CHECK(cudnnSetDropoutDescriptor(m.dropout, m.handle, 0.0f, nullptr, 0, 0));

  CUDNN_CHECK(cudnnCreateRNNDescriptor(&m.rnn));
  CUDNN_CHECK(cudnnSetRNNDescriptor_v8(m.rnn, CUDNN_RNN_ALGO_STANDARD, CUDNN_LSTM, CUDNN_RNN_DOUBLE_BIAS,
                                       bidirectional ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT,
                                       CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH,
                                       I, H, /*projSize=*/H, L, m.dropout, CUDNN_RNN_PADDED_IO_ENABLED));

  // Every sequence has length T: on the host for the data descriptors, on the device for the calls.
  const std::vector<int32_t> lengths(static_cast<size_t>(B), T);
  m.seq_lengths.allocate(lengths.size() * sizeof(int32_t), device);
  cuda::copy(m.seq_lengths.get(), lengths.data(), lengths.size() * sizeof(int32_t), cuda::CopyKind::HostToDevice,
             device);
  float fill = 0.0f;  // written into padded positions of y; there are none (every length is T)
  CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&m.xdesc));
  CUDNN_CHECK(cudnnSetRNNDataDescriptor(m.xdesc, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, T, B, I,
                                        lengths.data(), &fill));
  CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&m.ydesc));
  CUDNN_CHECK(cudnnSetRNNDataDescriptor(m.ydesc, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, T, B, DH,
                                        lengths.data(), &fill));

  const int hdims[3] = {LD, B, H}, hstrides[3] = {B * H, H, 1};
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.hdesc));
  CUDNN_CHECK(cudnnSetTensorNdDescriptor(m.hdesc, CUDNN_DATA_FLOAT, 3, hdims, hstrides));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.mdesc));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.bdesc));

  size_t weight_bytes = 0, work_training = 0, work_inference = 0, reserve_bytes = 0, reserve_inference = 0;
  CUDNN_CHECK(cudnnGetRNNWeightSpaceSize(m.handle, m.rnn, &weight_bytes));
  CUDNN_CHECK(
      cudnnGetRNNTempSpaceSizes(m.handle, m.rnn, CUDNN_FWD_MODE_TRAINING, m.xdesc, &work_training, &reserve_bytes));
  CUDNN_CHECK(cudnnGetRNNTempSpaceSizes(m.handle, m.rnn, CUDNN_FWD_MODE_INFERENCE, m.xdesc, &work_inference,
                                        &reserve_inference));
  m.weights.allocate(weight_bytes, device);
  m.dweights.allocate(weight_bytes, device);
  m.work.allocate(std::max(work_training, work_inference), device);
  m.reserve.allocate(reserve_bytes, device);
  // Nothing uninitialised is ever read, padding between cuDNN's slots included.
  if (weight_bytes > 0) {
    MINIDL_CUDA_CHECK(cudaMemsetAsync(m.weights.get(), 0, weight_bytes, m.stream()));
    MINIDL_CUDA_CHECK(cudaMemsetAsync(m.dweights.get(), 0, weight_bytes, m.stream()));
  }
  // Every slot has the shape the parameters need (a mismatch is an error here, not a wrong result later).
  for (const std::string& name : parameter_names())
    for (int q = 0; q < 4; ++q) m.block(m.weights.get(), m.parse(name), q);
}

Lstm::~Lstm() = default;

std::vector<std::string> Lstm::parameter_names() const {
  std::vector<std::string> names;
  for (int64_t l = 0; l < impl_->L; ++l)
    for (int64_t d = 0; d < impl_->D; ++d)
      for (int k = 0; k < 4; ++k) names.push_back(param_name(k, l, d));
  return names;
}

size_t Lstm::weight_space_bytes() const { return impl_->weights.bytes(); }

void Lstm::load(const nn::LSTM& lstm) {
  const Impl& m = *impl_;
  MINIDL_CHECK(lstm.input_size() == m.I && lstm.hidden_size() == m.H && lstm.options().num_layers == m.L &&
                   lstm.directions() == m.D,
               "cudnn::Lstm::load: ", lstm.describe(), " does not match this oracle (input ", m.I, ", hidden ", m.H,
               ", ", m.L, " layer(s), ", m.D, " direction(s))");
  MINIDL_CHECK(!lstm.options().learned_initial_state && !lstm.h0.defined(), "cudnn::Lstm::load: ", lstm.describe(),
               " has a learned initial state; the oracle starts from zero states");
  MINIDL_CHECK(lstm.options().dropout == 0.0, "cudnn::Lstm::load: ", lstm.describe(),
               " has dropout between layers; the oracle has none");
  nn::NamedTensors params;
  for (int64_t l = 0; l < m.L; ++l)
    for (int64_t d = 0; d < m.D; ++d) {
      const nn::LSTM::Cell& c = lstm.cell(l, d);
      params.emplace_back(param_name(kWeightIh, l, d), c.weight_ih);
      params.emplace_back(param_name(kWeightHh, l, d), c.weight_hh);
      params.emplace_back(param_name(kBiasIh, l, d), c.bias_ih);
      params.emplace_back(param_name(kBiasHh, l, d), c.bias_hh);
    }
  load(params);
}

void Lstm::load(const nn::NamedTensors& parameters) {
  Impl& m = *impl_;
  std::map<std::string, Tensor> given;
  std::vector<std::string> problems;
  for (const auto& [name, t] : parameters) {
    if (!given.emplace(name, t).second) problems.push_back("'" + name + "' given twice");
  }
  const std::vector<std::string> names = parameter_names();
  for (const std::string& name : names) {
    const auto it = given.find(name);
    if (it == given.end()) {
      problems.push_back("'" + name + "' missing");
      continue;
    }
    const Impl::Param p = m.parse(name);
    const Shape want = m.param_shape(p.kind, p.layer);
    if (!it->second.defined())
      problems.push_back("'" + name + "' undefined");
    else if (it->second.shape() != want)
      problems.push_back("'" + name + "' is " + it->second.meta_str() + ", expected " + shape_str(want));
  }
  for (const auto& [name, t] : given)
    if (std::find(names.begin(), names.end(), name) == names.end()) problems.push_back("'" + name + "' unexpected");
  if (!problems.empty()) {
    std::ostringstream os;
    for (size_t i = 0; i < problems.size(); ++i) os << (i ? "; " : "") << problems[i];
    fail("cudnn::Lstm::load: ", os.str());
  }

  const cuda::DeviceGuard guard(m.device);
  MINIDL_CUDA_CHECK(guard.status());
  const Device gpu = Device::cuda(m.device);
  std::vector<Tensor> staged;  // kept alive until the copies are done
  for (const std::string& name : names) {
    Tensor t = given.at(name).detach();
    if (t.dtype() != kFloat32) t = t.to(kFloat32);
    if (t.device() != gpu) t = t.to(gpu);
    t = t.contiguous();
    staged.push_back(t);
    m.copy_param(m.weights.get(), m.parse(name), static_cast<float*>(t.raw_data()), /*into_space=*/true);
  }
  MINIDL_CUDA_CHECK(cudaStreamSynchronize(m.stream()));
  m.forward_done = m.backward_done = false;
}

Tensor Lstm::forward(const Tensor& x, bool training) {
  Impl& m = *impl_;
  m.check_data("forward", "x", x, m.I);
  const cuda::DeviceGuard guard(m.device);
  MINIDL_CUDA_CHECK(guard.status());
  m.bind();
  Tensor y = Tensor::empty({m.B, m.T, m.D * m.H}, kFloat32, Device::cuda(m.device));
  CUDNN_CHECK(cudnnRNNForward(m.handle, m.rnn, training ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE,
                              static_cast<const int32_t*>(m.seq_lengths.get()), m.xdesc, x.raw_data(), m.ydesc,
                              y.raw_data(), m.hdesc, /*hx=*/nullptr, /*hy=*/nullptr, m.hdesc, /*cx=*/nullptr,
                              /*cy=*/nullptr, m.weights.bytes(), m.weights.get(), m.work.bytes(), m.work.get(),
                              training ? m.reserve.bytes() : 0, training ? m.reserve.get() : nullptr));
  if (training) {
    m.x = x;
    m.y = y;
    m.forward_done = true;
  }
  return y;
}

void Lstm::backward(const Tensor& y, const Tensor& dy) {
  Impl& m = *impl_;
  MINIDL_CHECK(m.forward_done, "cudnn::Lstm::backward: needs a training forward first (one backward per forward)");
  MINIDL_CHECK(y.defined() && y.raw_data() == m.y.raw_data() && y.shape() == m.y.shape(),
               "cudnn::Lstm::backward: y must be the tensor the last training forward returned");
  m.check_data("backward", "dy", dy, m.D * m.H);
  const cuda::DeviceGuard guard(m.device);
  MINIDL_CUDA_CHECK(guard.status());
  m.bind();
  m.dx = Tensor::empty({m.B, m.T, m.I}, kFloat32, Device::cuda(m.device));
  const int32_t* lengths = static_cast<const int32_t*>(m.seq_lengths.get());
  // dhy, dcy null: no gradient reaches the final states; dhx, dcx null: the initial states' are not wanted.
  CUDNN_CHECK(cudnnRNNBackwardData_v8(
      m.handle, m.rnn, lengths, m.ydesc, y.raw_data(), dy.raw_data(), m.xdesc, m.dx.raw_data(), m.hdesc, /*hx=*/nullptr,
      /*dhy=*/nullptr, /*dhx=*/nullptr, m.hdesc, /*cx=*/nullptr, /*dcy=*/nullptr, /*dcx=*/nullptr, m.weights.bytes(),
      m.weights.get(), m.work.bytes(), m.work.get(), m.reserve.bytes(), m.reserve.get()));
  if (m.dweights.bytes() > 0) MINIDL_CUDA_CHECK(cudaMemsetAsync(m.dweights.get(), 0, m.dweights.bytes(), m.stream()));
  CUDNN_CHECK(cudnnRNNBackwardWeights_v8(m.handle, m.rnn, CUDNN_WGRAD_MODE_ADD, lengths, m.xdesc, m.x.raw_data(),
                                         m.hdesc, /*hx=*/nullptr, m.ydesc, y.raw_data(), m.dweights.bytes(),
                                         m.dweights.get(), m.work.bytes(), m.work.get(), m.reserve.bytes(),
                                         m.reserve.get()));
  m.forward_done = false;  // backward data rewrites the reserve space
  m.backward_done = true;
}

const Tensor& Lstm::dx() const {
  MINIDL_CHECK(impl_->backward_done, "cudnn::Lstm::dx: no backward has run");
  return impl_->dx;
}

Tensor Lstm::grad(const std::string& name) const {
  MINIDL_CHECK(impl_->backward_done, "cudnn::Lstm::grad('", name, "'): no backward has run");
  return impl_->read(impl_->dweights.get(), name);
}

Tensor Lstm::weight(const std::string& name) const { return impl_->read(impl_->weights.get(), name); }

}  // namespace minidl::cudnn
