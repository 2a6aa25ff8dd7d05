// cuDNN convolutions (forward, backward data, backward filter) behind cuda/cudnn/oracle.h.
//
// Test and benchmark code only: the oracle that tests/cuda/test_cudnn_oracle.cpp compares minidl's own
// convolution kernels (cuda/conv.cu) against, and the speed reference of apps/bench_cudnn.cu. The minidl
// library never calls this file and does not link cuDNN.
//
// The legacy convolution API (cudnn_cnn_v9.h), per call:
//   once per (pass, geometry, math, algorithm choice, device), cached:
//     cudnnCreateTensorDescriptor/cudnnSetTensorNdDescriptor     x and y (4 or 5 dims, contiguous strides)
//     cudnnCreateFilterDescriptor/cudnnSetFilterNdDescriptor     w (NCHW order)
//     cudnnCreateConvolutionDescriptor/cudnnSetConvolutionNdDescriptor, cudnnSetConvolutionGroupCount,
//     cudnnSetConvolutionMathType                                 cross-correlation, float32 compute
//     cudnnGetConvolutionNdForwardOutputDim                       checked against the ConvShape
//     cudnnGetConvolution*AlgorithmMaxCount, then cudnnGetConvolution*Algorithm_v7 (heuristics) or
//     cudnnFindConvolution*AlgorithmEx (timed), then cudnnSetConvolutionMathType with the chosen math
//     and cudnnGetConvolution*WorkspaceSize
//   every call: cudnnSetStream (minidl's current stream), the workspace from cuda::device_malloc, and
//     cudnnConvolutionForward / cudnnConvolutionBackwardData / cudnnConvolutionBackwardFilter.
#include <cudnn.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/error.h"
#include "cuda/common.cuh"
#include "cuda/cudnn/oracle.h"
#include "cuda/runtime.h"

namespace {

[[noreturn]] void cudnn_failed(cudnnStatus_t status, const char* file, int line, const char* call,
                               const std::string& context) {
  ::minidl::fail(file, ":", line, ": ", call, " failed: ", cudnnGetErrorString(status), " (cuDNN status ",
                 static_cast<int>(status), ")", context.empty() ? "" : ", ", context);
}

}  // namespace

// A failed cuDNN call becomes a minidl::Error naming the file, the line, the call and cuDNN's message;
// CUDNN_CHECK_IN adds what was being done (the algorithm, the geometry).
#define CUDNN_CHECK(call)                                                                            \
  do {                                                                                               \
    const cudnnStatus_t minidl_st_ = (call);                                                         \
    if (minidl_st_ != CUDNN_STATUS_SUCCESS) cudnn_failed(minidl_st_, __FILE__, __LINE__, #call, ""); \
  } while (0)
#define CUDNN_CHECK_IN(call, context)                                                                       \
  do {                                                                                                      \
    const cudnnStatus_t minidl_st_ = (call);                                                                \
    if (minidl_st_ != CUDNN_STATUS_SUCCESS) cudnn_failed(minidl_st_, __FILE__, __LINE__, #call, (context)); \
  } while (0)

namespace minidl::cudnn {
namespace {

// Every entry point takes this lock: the handles' streams, the plan cache and the algorithm choice are
// shared state.
std::mutex& oracle_mutex() {
  static std::mutex m;
  return m;
}

// One handle per device, made on first use and kept until the process ends. It is never destroyed: a
// static destructor would run after the CUDA runtime has begun to shut down.
cudnnHandle_t handle_for(int device) {
  static auto* handles = new std::map<int, cudnnHandle_t>();
  const auto it = handles->find(device);
  if (it != handles->end()) return it->second;
  const cuda::DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  cudnnHandle_t h = nullptr;
  CUDNN_CHECK(cudnnCreate(&h));
  handles->emplace(device, h);
  return h;
}

// A handle bound to minidl's current stream of `device` (the calling thread's), which must be current.
cudnnHandle_t bound_handle(int device) {
  cudnnHandle_t h = handle_for(device);
  CUDNN_CHECK(cudnnSetStream(h, cuda::stream_of(device)));
  return h;
}

AlgoChoice& choice_setting() {
  static AlgoChoice choice = AlgoChoice::Accurate;
  return choice;
}

// Device memory from minidl's caching allocator for one scope. Freed blocks are reused only by later
// work on the same stream, so freeing right after queueing the convolution is safe.
class Workspace {
 public:
  Workspace(size_t bytes, int device) : device_(device) {
    if (bytes > 0) ptr_ = cuda::device_malloc(bytes, device);
  }
  ~Workspace() {
    if (ptr_) cuda::device_free(ptr_, device_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
  int device_;
};

int to_int(int64_t v, const char* what) {
  MINIDL_CHECK(v >= 0 && v <= 0x7fffffff, "cudnn oracle: ", what, " ", v, " does not fit cuDNN's int");
  return static_cast<int>(v);
}

std::string dims_str(const Dims3& d) {
  return std::to_string(d[0]) + "x" + std::to_string(d[1]) + "x" + std::to_string(d[2]);
}

std::string geometry_str(const ConvShape& s) {
  std::ostringstream os;
  os << "conv [" << s.batch << ", " << s.in_channels << ", " << dims_str(s.in) << "] -> [" << s.batch << ", "
     << s.out_channels << ", " << dims_str(s.out) << "], kernel " << dims_str(s.kernel) << ", stride "
     << dims_str(s.stride) << ", padding " << dims_str(s.padding) << ", dilation " << dims_str(s.dilation)
     << ", groups " << s.groups;
  return os.str();
}

// The dims handed to cuDNN: 4 (N, C, H, W) when the leading spatial dim is unused, else 5 (N, C, D, H, W).
struct CudnnDims {
  int nb = 0;  // tensor dims
  int x[5] = {}, w[5] = {}, y[5] = {};
  int pad[3] = {}, stride[3] = {}, dilation[3] = {};
};

CudnnDims cudnn_dims(const ConvShape& s) {
  MINIDL_CHECK(s.batch >= 1 && s.in_channels >= 1 && s.out_channels >= 1 && s.groups >= 1 &&
                   s.in_channels % s.groups == 0 && s.out_channels % s.groups == 0,
               "cudnn oracle: inconsistent channels or groups in ", geometry_str(s));
  CudnnDims d;
  const int first = (s.in[0] == 1 && s.kernel[0] == 1 && s.padding[0] == 0) ? 1 : 0;
  d.nb = 5 - first;
  d.x[0] = to_int(s.batch, "batch");
  d.x[1] = to_int(s.in_channels, "in_channels");
  d.w[0] = to_int(s.out_channels, "out_channels");
  d.w[1] = to_int(s.in_channels / s.groups, "in_channels / groups");
  d.y[0] = d.x[0];
  d.y[1] = d.w[0];
  for (int k = first; k < 3; ++k) {
    const int i = k - first;
    d.x[2 + i] = to_int(s.in[k], "input size");
    d.w[2 + i] = to_int(s.kernel[k], "kernel size");
    d.y[2 + i] = to_int(s.out[k], "output size");
    d.pad[i] = to_int(s.padding[k], "padding");
    d.stride[i] = to_int(s.stride[k], "stride");
    d.dilation[i] = to_int(s.dilation[k], "dilation");
  }
  return d;
}

std::vector<int> contiguous_strides(const int* dims, int nb) {
  std::vector<int> st(static_cast<size_t>(nb));
  int64_t acc = 1;
  for (int i = nb - 1; i >= 0; --i) {
    st[static_cast<size_t>(i)] = to_int(acc, "tensor stride");
    acc *= dims[i];
  }
  return st;
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "DEFAULT_MATH";
    case CUDNN_TENSOR_OP_MATH: return "TENSOR_OP_MATH";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "TENSOR_OP_MATH_ALLOW_CONVERSION";
    case CUDNN_FMA_MATH: return "FMA_MATH";
  }
  return "?";
}

// The descriptors and the algorithm of one (pass, geometry, math, choice, device).
struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algo = -1;
  cudnnMathType_t math = CUDNN_FMA_MATH;
  size_t workspace = 0;
  std::string what;  // "IMPLICIT_PRECOMP_GEMM, FMA_MATH, 0 KiB workspace"

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
};

void make_descriptors(Plan& p, const ConvShape& s, bool tf32) {
  const CudnnDims d = cudnn_dims(s);
  const std::vector<int> xs = contiguous_strides(d.x, d.nb), ys = contiguous_strides(d.y, d.nb);
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  CUDNN_CHECK(cudnnSetTensorNdDescriptor(p.x, CUDNN_DATA_FLOAT, d.nb, d.x, xs.data()));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
  CUDNN_CHECK(cudnnSetTensorNdDescriptor(p.y, CUDNN_DATA_FLOAT, d.nb, d.y, ys.data()));
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
  CUDNN_CHECK(cudnnSetFilterNdDescriptor(p.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d.nb, d.w));
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
  CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(p.conv, d.nb - 2, d.pad, d.stride, d.dilation, CUDNN_CROSS_CORRELATION,
                                              CUDNN_DATA_FLOAT));
  CUDNN_CHECK(cudnnSetConvolutionGroupCount(p.conv, to_int(s.groups, "groups")));
  CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
  // cuDNN's idea of the output size must be the ConvShape's, or the two sides compute different things.
  int out[5] = {};
  CUDNN_CHECK(cudnnGetConvolutionNdForwardOutputDim(p.conv, p.x, p.w, d.nb, out));
  for (int i = 0; i < d.nb; ++i)
    MINIDL_CHECK(out[i] == d.y[i], "cudnn oracle: cuDNN computes output dim ", i, " = ", out[i],
                 " where the ConvShape has ", d.y[i], " (", geometry_str(s), ")");
}

// The data pointers of one call: x is the input or its gradient, w the filter or its gradient, y the
// output or its gradient.
struct Args {
  void* x;
  void* w;
  void* y;
};

// ---- the three passes, as one interface for the planner -----------------------------------------------
struct Forward {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  using Algo = cudnnConvolutionFwdAlgo_t;
  static constexpr ConvPass kPass = ConvPass::Forward;
  static constexpr const char* kName = "forward";
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) { return cudnnGetConvolutionForwardAlgorithmMaxCount(h, n); }
  static cudnnStatus_t rank(cudnnHandle_t h, const Plan& p, int n, int* got, Perf* perf) {
    return cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.conv, p.y, n, got, perf);
  }
  static cudnnStatus_t time(cudnnHandle_t h, const Plan& p, const Args& a, int n, int* got, Perf* perf, void* ws,
                            size_t bytes) {
    return cudnnFindConvolutionForwardAlgorithmEx(h, p.x, a.x, p.w, a.w, p.conv, p.y, a.y, n, got, perf, ws, bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const Plan& p, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.conv, p.y, algo, bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const Plan& p, const Args& a, void* ws) {
    const float one = 1.0f, zero = 0.0f;
    return cudnnConvolutionForward(h, &one, p.x, a.x, p.w, a.w, p.conv, static_cast<Algo>(p.algo), ws, p.workspace,
                                   &zero, p.y, a.y);
  }
  static bool accurate(Algo a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
  }
  static const char* name(Algo a) {
    switch (a) {
      case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return "IMPLICIT_GEMM";
      case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return "IMPLICIT_PRECOMP_GEMM";
      case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return "GEMM";
      case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return "DIRECT";
      case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return "FFT";
      case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return "FFT_TILING";
      case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD: return "WINOGRAD";
      case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
      default: return "?";
    }
  }
};

struct BackwardData {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  using Algo = cudnnConvolutionBwdDataAlgo_t;
  static constexpr ConvPass kPass = ConvPass::BackwardData;
  static constexpr const char* kName = "backward data";
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) {
    return cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, n);
  }
  static cudnnStatus_t rank(cudnnHandle_t h, const Plan& p, int n, int* got, Perf* perf) {
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, p.conv, p.x, n, got, perf);
  }
  static cudnnStatus_t time(cudnnHandle_t h, const Plan& p, const Args& a, int n, int* got, Perf* perf, void* ws,
                            size_t bytes) {
    return cudnnFindConvolutionBackwardDataAlgorithmEx(h, p.w, a.w, p.y, a.y, p.conv, p.x, a.x, n, got, perf, ws,
                                                       bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const Plan& p, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w, p.y, p.conv, p.x, algo, bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const Plan& p, const Args& a, void* ws) {
    const float one = 1.0f, zero = 0.0f;
    return cudnnConvolutionBackwardData(h, &one, p.w, a.w, p.y, a.y, p.conv, static_cast<Algo>(p.algo), ws, p.workspace,
                                        &zero, p.x, a.x);
  }
  static bool accurate(Algo a) {
    return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  }
  static const char* name(Algo a) {
    switch (a) {
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0: return "ALGO_0";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1: return "ALGO_1";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT: return "FFT";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING: return "FFT_TILING";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD: return "WINOGRAD";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
      default: return "?";
    }
  }
};

struct BackwardFilter {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  using Algo = cudnnConvolutionBwdFilterAlgo_t;
  static constexpr ConvPass kPass = ConvPass::BackwardFilter;
  static constexpr const char* kName = "backward filter";
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) {
    return cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, n);
  }
  static cudnnStatus_t rank(cudnnHandle_t h, const Plan& p, int n, int* got, Perf* perf) {
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.conv, p.w, n, got, perf);
  }
  static cudnnStatus_t time(cudnnHandle_t h, const Plan& p, const Args& a, int n, int* got, Perf* perf, void* ws,
                            size_t bytes) {
    return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, p.x, a.x, p.y, a.y, p.conv, p.w, a.w, n, got, perf, ws,
                                                         bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const Plan& p, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x, p.y, p.conv, p.w, algo, bytes);
  }
  static cudnnStatus_t run(cudnnHandle_t h, const Plan& p, const Args& a, void* ws) {
    const float one = 1.0f, zero = 0.0f;
    return cudnnConvolutionBackwardFilter(h, &one, p.x, a.x, p.y, a.y, p.conv, static_cast<Algo>(p.algo), ws,
                                          p.workspace, &zero, p.w, a.w);
  }
  static bool accurate(Algo a) {
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
  }
  static const char* name(Algo a) {
    switch (a) {
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0: return "ALGO_0";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1: return "ALGO_1";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT: return "FFT";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3: return "ALGO_3";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD: return "WINOGRAD";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING: return "FFT_TILING";
      default: return "?";
    }
  }
};

// Picks the algorithm of a plan whose descriptors are made, and leaves the descriptor on its math type.
// Candidates in cuDNN's order (heuristic rank, or measured time); skipped: those cuDNN reports as failed,
// any that would convert to half precision, tensor-op ones when float32 math is asked for, and (Accurate,
// first round) FFT and Winograd. The first whose workspace size cuDNN can tell is taken.
template <class P>
void choose(cudnnHandle_t h, Plan& p, const Args* args, bool tf32, AlgoChoice choice, int device, const ConvShape& s) {
  int n = 0;
  CUDNN_CHECK(P::max_count(h, &n));
  n = std::max(n, 1);
  std::vector<typename P::Perf> perf(static_cast<size_t>(n));
  int got = 0;
  if (choice == AlgoChoice::Fastest) {
    MINIDL_CHECK(args != nullptr, "cudnn oracle: timing algorithms needs the call's tensors");
    size_t free_bytes = 0, total_bytes = 0;
    MINIDL_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const size_t cap = std::min<size_t>(size_t{1} << 30, free_bytes / 4);  // algorithms needing more are skipped
    const Workspace ws(cap, device);
    CUDNN_CHECK_IN(P::time(h, p, *args, n, &got, perf.data(), ws.get(), cap),
                   std::string(P::kName) + " of " + geometry_str(s));
    // Find ran every algorithm on the stream; the workspace goes back only after they are done with it.
    MINIDL_CUDA_CHECK(cudaStreamSynchronize(cuda::stream_of(device)));
  } else {
    CUDNN_CHECK_IN(P::rank(h, p, n, &got, perf.data()), std::string(P::kName) + " of " + geometry_str(s));
  }
  std::ostringstream seen;
  for (int round = 0; round < 2; ++round) {
    const bool only_accurate = choice == AlgoChoice::Accurate && round == 0;
    for (int i = 0; i < got; ++i) {
      const typename P::Perf& r = perf[static_cast<size_t>(i)];
      if (round == 0)
        seen << (i ? ", " : "") << P::name(r.algo) << "/" << math_name(r.mathType) << ": "
             << cudnnGetErrorString(r.status);
      if (r.status != CUDNN_STATUS_SUCCESS) continue;
      if (r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
      if (!tf32 && r.mathType == CUDNN_TENSOR_OP_MATH) continue;
      if (only_accurate && !P::accurate(r.algo)) continue;
      // TF32 is permitted for every entry (as torch's allow_tf32 does), not only for those cuDNN listed
      // as tensor-op ones, so the TF32 column never silently measures a float32 kernel's default math.
      const cudnnMathType_t math = tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
      if (cudnnSetConvolutionMathType(p.conv, math) != CUDNN_STATUS_SUCCESS) continue;
      size_t bytes = 0;
      if (P::workspace(h, p, r.algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
      p.algo = static_cast<int>(r.algo);
      p.math = math;
      p.workspace = bytes;
      std::ostringstream what;
      what << P::name(r.algo) << ", " << math_name(math) << ", " << (bytes + 1023) / 1024 << " KiB workspace";
      if (choice == AlgoChoice::Fastest) what << ", " << r.time << " ms when timed";
      if (only_accurate == false && choice == AlgoChoice::Accurate) what << " (no GEMM-like algorithm applies)";
      p.what = what.str();
      return;
    }
    if (choice != AlgoChoice::Accurate) break;
  }
  fail("cudnn oracle: no usable ", P::kName, " algorithm (", tf32 ? "TF32" : "float32", " math) for ", geometry_str(s),
       "; cuDNN offered: ", seen.str());
}

std::vector<int64_t> plan_key(ConvPass pass, const ConvShape& s, bool tf32, AlgoChoice choice, int device) {
  std::vector<int64_t> k{static_cast<int64_t>(pass),
                         tf32 ? 1 : 0,
                         static_cast<int64_t>(choice),
                         device,
                         s.batch,
                         s.in_channels,
                         s.out_channels,
                         s.groups};
  for (const Dims3* d : {&s.in, &s.kernel, &s.out, &s.stride, &s.padding, &s.dilation})
    k.insert(k.end(), d->begin(), d->end());
  return k;
}

// Plans live until the process ends (never destroyed, like the handles).
std::map<std::vector<int64_t>, std::unique_ptr<Plan>>& plans() {
  static auto* cache = new std::map<std::vector<int64_t>, std::unique_ptr<Plan>>();
  return *cache;
}

template <class P>
const Plan& plan_for(cudnnHandle_t h, const ConvShape& s, bool tf32, const Args& args, int device) {
  const AlgoChoice choice = choice_setting();
  const std::vector<int64_t> key = plan_key(P::kPass, s, tf32, choice, device);
  auto it = plans().find(key);
  if (it != plans().end()) return *it->second;
  auto p = std::make_unique<Plan>();
  make_descriptors(*p, s, tf32);
  choose<P>(h, *p, &args, tf32, choice, device, s);
  return *plans().emplace(key, std::move(p)).first->second;
}

// x [d0, d1, ...] with numel d0 d1 rest, contiguous float32 on `device`.
void check_tensor(const char* op, const char* what, const Tensor& t, int64_t d0, int64_t d1, int64_t rest, int device,
                  const ConvShape& s) {
  MINIDL_CHECK(t.defined(), "cudnn ", op, ": ", what, " is undefined");
  MINIDL_CHECK(t.device().is_cuda() && t.device().index == device && t.dtype() == kFloat32 && t.is_contiguous(),
               "cudnn ", op, ": ", what, " must be a contiguous float32 tensor on cuda:", device, ", got ",
               t.meta_str());
  MINIDL_CHECK(t.dim() >= 3 && t.size(0) == d0 && t.size(1) == d1 && t.numel() == d0 * d1 * rest, "cudnn ", op, ": ",
               what, " ", t.meta_str(), " does not fit ", geometry_str(s));
}

int64_t volume(const Dims3& d) { return d[0] * d[1] * d[2]; }

template <class P>
void execute(const char* op, const ConvShape& s, bool tf32, const Tensor& x, const Tensor& w, const Tensor& y) {
  const int device = x.defined() ? x.device().index : 0;
  check_tensor(op, P::kPass == ConvPass::BackwardData ? "gx" : "x", x, s.batch, s.in_channels, volume(s.in), device, s);
  check_tensor(op, P::kPass == ConvPass::BackwardFilter ? "gw" : "w", w, s.out_channels,
               s.groups > 0 ? s.in_channels / s.groups : 0, volume(s.kernel), device, s);
  check_tensor(op, P::kPass == ConvPass::Forward ? "y" : "gy", y, s.batch, s.out_channels, volume(s.out), device, s);
  std::lock_guard<std::mutex> lock(oracle_mutex());
  const cuda::DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  cudnnHandle_t h = bound_handle(device);
  const Args args{x.raw_data(), w.raw_data(), y.raw_data()};
  const Plan& p = plan_for<P>(h, s, tf32, args, device);
  const Workspace ws(p.workspace, device);
  CUDNN_CHECK_IN(P::run(h, p, args, ws.get()), p.what + ", " + geometry_str(s));
}

}  // namespace

bool available() {
  try {
    if (cuda::device_count() == 0) return false;
    std::lock_guard<std::mutex> lock(oracle_mutex());
    handle_for(0);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string version() {
  const size_t v = cudnnGetVersion();  // major * 10000 + minor * 100 + patch from cuDNN 9 on
  const size_t major_unit = v >= 90000 ? 10000 : 1000;
  return std::to_string(v / major_unit) + "." + std::to_string(v % major_unit / 100) + "." + std::to_string(v % 100);
}

ConvShape conv_shape(const Shape& x, const Shape& w, const std::vector<int64_t>& stride,
                     const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups) {
  const int64_t rank = static_cast<int64_t>(x.size()) - 2;
  MINIDL_CHECK(rank >= 1 && rank <= 3 && w.size() == x.size(), "cudnn conv_shape: x ", shape_str(x), " and w ",
               shape_str(w), " must both be [N, C, *spatial] with 1 to 3 spatial dims");
  auto per_dim = [&](const std::vector<int64_t>& v, const char* what) {
    MINIDL_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == rank, "cudnn conv_shape: ", what, " ", shape_str(v),
                 " needs 1 or ", rank, " values");
    return v.size() == 1 ? std::vector<int64_t>(static_cast<size_t>(rank), v[0]) : v;
  };
  const std::vector<int64_t> st = per_dim(stride, "stride"), pad = per_dim(padding, "padding"),
                             dil = per_dim(dilation, "dilation");
  ConvShape s;
  s.batch = x[0];
  s.in_channels = x[1];
  s.out_channels = w[0];
  s.groups = groups;
  MINIDL_CHECK(groups >= 1 && x[1] % groups == 0 && w[0] % groups == 0 && w[1] * groups == x[1], "cudnn conv_shape: x ",
               shape_str(x), " and w ", shape_str(w), " do not fit groups ", groups);
  const int64_t lead = 3 - rank;
  for (int64_t d = 0; d < rank; ++d) {
    const size_t i = static_cast<size_t>(lead + d), j = static_cast<size_t>(d);
    s.in[i] = x[j + 2];
    s.kernel[i] = w[j + 2];
    s.stride[i] = st[j];
    s.padding[i] = pad[j];
    s.dilation[i] = dil[j];
    s.out[i] = (s.in[i] + 2 * s.padding[i] - s.dilation[i] * (s.kernel[i] - 1) - 1) / s.stride[i] + 1;
    MINIDL_CHECK(s.stride[i] >= 1 && s.dilation[i] >= 1 && s.padding[i] >= 0 && s.out[i] >= 1, "cudnn conv_shape: x ",
                 shape_str(x), ", w ", shape_str(w), ", stride ", shape_str(stride), ", padding ", shape_str(padding),
                 ", dilation ", shape_str(dilation), " leave no output");
  }
  return s;
}

void conv_forward(const Tensor& x, const Tensor& w, const ConvShape& s, const Tensor& y, bool tf32) {
  execute<Forward>("conv_forward", s, tf32, x, w, y);
}

void conv_backward_data(const Tensor& w, const Tensor& gy, const ConvShape& s, const Tensor& gx, bool tf32) {
  execute<BackwardData>("conv_backward_data", s, tf32, gx, w, gy);
}

void conv_backward_filter(const Tensor& x, const Tensor& gy, const ConvShape& s, const Tensor& gw, bool tf32) {
  execute<BackwardFilter>("conv_backward_filter", s, tf32, x, gw, gy);
}

void set_algo_choice(AlgoChoice choice) {
  std::lock_guard<std::mutex> lock(oracle_mutex());
  choice_setting() = choice;
}

AlgoChoice algo_choice() {
  std::lock_guard<std::mutex> lock(oracle_mutex());
  return choice_setting();
}

std::string conv_algorithm(ConvPass pass, const ConvShape& s, bool tf32) {
  std::lock_guard<std::mutex> lock(oracle_mutex());
  for (int device = 0; device < 64; ++device) {
    const auto it = plans().find(plan_key(pass, s, tf32, choice_setting(), device));
    if (it != plans().end()) return it->second->what;
  }
  return "(not planned)";
}

}  // namespace minidl::cudnn
