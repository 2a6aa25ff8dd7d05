// The CUDA kernels, one .cu file per op family, with the same contract as their CPU twins in
// cpu/kernels.h: the front end (autograd/ops_*.cpp) has checked shapes, dtypes and devices and allocated
// `out`; inputs may be any strided view (broadcast strides of 0 included). Every kernel runs on the
// current stream of the tensors' device (cuda/runtime.h) and returns without waiting for it.
//
// dtypes: the math runs in float32 (float64 exists for gradchecks, which run on the CPU); copies, fills,
// comparisons and where take every dtype. A float64 tensor reaching a math kernel is a minidl::Error
// naming the op. Reductions are deterministic: each output is summed in an order fixed by the shapes.
//
// Plain C++ declarations: built without CUDA, cuda/kernels_stub.cpp defines them as errors (no CUDA
// tensor can exist there, so they are never reached).
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/conv_geometry.h"
#include "autograd/functors.h"
#include "autograd/tensor.h"
#include "optim/update_rules.h"

namespace minidl {
struct JcaWeights;  // autograd/ops.h
}

namespace minidl::cuda {

// ---- elementwise.cu ------------------------------------------------------------------------------
void unary(UnaryOp op, const UnaryParams& p, const Tensor& x, const Tensor& out);
void unary_backward(UnaryOp op, const UnaryParams& p, const Tensor& s, const Tensor& g, const Tensor& gx);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void compare(CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void ternary(TernaryOp op, const Tensor& g, const Tensor& a, const Tensor& b, const Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
void copy(const Tensor& src, const Tensor& dst);  // src broadcast to dst, any dtypes, same device
void fill(const Tensor& dst, double value);
void axpy(double alpha, const Tensor& x, const Tensor& y);  // y += alpha * x

// ---- reduce.cu -------------------------------------------------------------------------------------
void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out);
void var(const Tensor& x, const std::vector<int64_t>& dims, int64_t ddof, const Tensor& out);
void argmax(const Tensor& x, int64_t dim, const Tensor& out);

// ---- gemm.cu, matmul.cu --------------------------------------------------------------------------
// Which kernel matmul uses: SIMT float32 (exact float32 arithmetic) or tensor cores in TF32 (inputs
// rounded to 10-bit mantissas, float32 accumulation; about 7x the throughput on an H100). SIMT is the
// default, so CUDA results stay within float32 rounding of the CPU's. MINIDL_GEMM=tf32 selects TF32.
enum class GemmPath : uint8_t { Simt, Tf32 };
void set_gemm_path(GemmPath path);
GemmPath gemm_path();
// Batched: a [..., M, K], b [..., K, N], out [..., M, N], as cpu::matmul.
void matmul(const Tensor& a, const Tensor& b, const Tensor& out);
// Independent 2-d products out = a b of equal sizes (up to four) in one launch, one product per
// grid z index; each gives the bits matmul gives it. The two directions of an LSTM step, which alone
// leave most SMs idle. Products whose sizes, layouts or leading dimensions differ run one by one, and
// so does a group of one; returns whether the products ran as one launch.
struct GemmProblem {
  Tensor a, b, out;
};
bool matmul_group(const std::vector<GemmProblem>& problems);
// The raw kernels, for the benchmark and the tests: C[M,N] = A[M,K] B[K,N], row-major with leading
// dimensions lda, ldb, ldc, device pointers, on the current stream of `device`.
void sgemm(GemmPath path, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
           float* C, int64_t ldc, int device);

// ---- index.cu ------------------------------------------------------------------------------------------
void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void index_add(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& out);
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void scatter_add(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& out);

// ---- softmax.cu ----------------------------------------------------------------------------------------
void softmax(const Tensor& x, int64_t dim, bool log, const Tensor& out);
void softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log, const Tensor& gx);

// ---- loss.cu -------------------------------------------------------------------------------------------
void ccc_forward(const Tensor& pred, const Tensor& target, const Tensor& mask, double eps, const Tensor& ccc,
                 const Tensor& stats);
void ccc_backward(const Tensor& pred, const Tensor& target, const Tensor& mask, const Tensor& ccc, const Tensor& stats,
                  const Tensor& g, const Tensor& gpred, const Tensor& gtarget);

// ---- random.cu -----------------------------------------------------------------------------------------
// The same streams as cpu/random.cpp (autograd/random.h defines them): same seed and offset, same values.
void uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi);
void normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std);
void bernoulli(const Tensor& out, uint64_t seed, uint64_t offset, double p);
void dropout(const Tensor& x, uint64_t seed, uint64_t offset, double keep, const Tensor& y, const Tensor& mask);

// ---- sequence.cu: through Thrust ------------------------------------------------------------------
void fill_contiguous(const Tensor& dst, double value);      // fill() of a contiguous tensor
void arange(const Tensor& out, double start, double step);  // out contiguous: out[i] = start + i step

// ---- conv.cu ---------------------------------------------------------------------------------------------
// As cpu/conv.h, every tensor contiguous: y = conv(x, w) + bias (bias may be undefined), and its backward
// (each gradient may be undefined when not wanted; so may the input only an unwanted gradient reads).
void conv_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvShape& s, const Tensor& y);
void conv_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const ConvShape& s, const Tensor& gx,
                   const Tensor& gw, const Tensor& gb);
// Which kernels the convolutions (implicit GEMMs) use, as matmul's setting: SIMT float32 by default, or
// TF32 tensor cores (inputs rounded to TF32, float32 sums: what PyTorch does with its default
// torch.backends.cudnn.allow_tf32). MINIDL_CONV=tf32 selects TF32.
void set_conv_path(GemmPath path);
GemmPath conv_path();
// The convolutions' block tile: 128 x 128 where the GEMM has more than 64 rows and enough blocks to
// fill the GPU (Auto), or always 64 x 64 (Small) or 128 x 128 (Large), for measuring one against the
// other. MINIDL_CONV_TILE=small|large sets it at start. Either path, SIMT or TF32, takes either tile.
enum class ConvTile : uint8_t { Auto, Small, Large };
void set_conv_tile(ConvTile tile);
ConvTile conv_tile();
// The index tables the convolutions keep on the devices, one set per geometry, built on first use
// (cuda/conv_tables.cuh): how many, and their bytes (device memory outside the caching allocator).
struct ConvTableStats {
  int64_t tables = 0;
  size_t bytes = 0;
};
ConvTableStats conv_table_stats();

// ---- pool.cu ---------------------------------------------------------------------------------------------
// As cpu/conv.h's pooling, every tensor contiguous.
void max_pool_forward(const Tensor& x, const PoolShape& s, const Tensor& y, const Tensor& indices);
void max_pool_backward(const Tensor& gy, const Tensor& indices, const PoolShape& s, const Tensor& gx);
void avg_pool_forward(const Tensor& x, const PoolShape& s, int64_t divisor, const Tensor& y);
void avg_pool_backward(const Tensor& gy, const PoolShape& s, int64_t divisor, const Tensor& gx);

// ---- norm.cu ---------------------------------------------------------------------------------------------
// As cpu/norm.h (save_mean and save_invstd are float64).
void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, bool training, double momentum, double eps, const Tensor& out,
                        const Tensor& save_mean, const Tensor& save_invstd);
void batch_norm_backward(const Tensor& x, const Tensor& g, const Tensor& weight, const Tensor& save_mean,
                         const Tensor& save_invstd, bool training, const Tensor& gx, const Tensor& gweight,
                         const Tensor& gbias);
void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                        const Tensor& save_mean, const Tensor& save_invstd);
void layer_norm_backward(const Tensor& x, const Tensor& g, const Tensor& weight, const Tensor& save_mean,
                         const Tensor& save_invstd, const Tensor& gx, const Tensor& gweight, const Tensor& gbias);

// ---- lstm.cu ---------------------------------------------------------------------------------------------
// As cpu/lstm.h, for one or both directions of a layer over the same x: each direction's tensors are
// those cpu::lstm_forward / cpu::lstm_backward take for it. The directions' steps run side by side
// (per step one grouped recurrent GEMM and one pointwise kernel for all of them), and each direction's
// results are the bits it gets alone. In the backward, gx is each direction's own gradient of x.
struct LstmForwardDirection {
  Tensor h0, c0, w_ih, w_hh, b_ih, b_hh;
  bool reverse = false;
  Tensor output, h, c, gates, cells;
};
void lstm_forward(const Tensor& x, const std::vector<LstmForwardDirection>& directions);
struct LstmBackwardDirection {
  Tensor h0, c0, w_ih, w_hh, output, gates, cells;
  bool reverse = false;
  Tensor g_output, g_h, g_c;
  Tensor gx, gh0, gc0, gw_ih, gw_hh, gb;
};
void lstm_backward(const Tensor& x, const std::vector<LstmBackwardDirection>& directions);

// ---- attention.cu ----------------------------------------------------------------------------------------
// As cpu/attention.h (float32; the front end keeps L <= 64, d <= 1024, k <= 256). Forward in two launches,
// backward in four, without atomics.
void jca_forward(const Tensor& xa, const Tensor& xv, const JcaWeights& audio, const JcaWeights& visual,
                 const Tensor& out_a, const Tensor& out_v);
void jca_backward(const Tensor& xa, const Tensor& xv, const JcaWeights& audio, const JcaWeights& visual,
                  const Tensor& ga, const Tensor& gv, const Tensor& gxa, const Tensor& gxv,
                  const JcaWeights& grad_audio, const JcaWeights& grad_visual);

// ---- optim.cu --------------------------------------------------------------------------------------------
// The fused updates of optim/update_rules.h over every parameter given, a few dozen tensors per launch:
// contiguous float32 params, grads and moments on one GPU (buf undefined without momentum). Each element
// gets exactly the update a launch of its own would give it.
struct SgdSlot {
  optim::SgdF<float> rule;
  Tensor param, grad, buf;
};
struct AdamSlot {
  optim::AdamF<float> rule;
  Tensor param, grad, m, v;
};
void sgd_update(const std::vector<SgdSlot>& slots);
void adam_update(const std::vector<AdamSlot>& slots);
// x = x * float(factor) for every (contiguous float32, same GPU) tensor, batched like the updates.
void scale(const std::vector<Tensor>& tensors, double factor);
// sqrt(sum of squares) over every element of every (float32) tensor, into a one-element float32 tensor
// on the same device, in one pass batched like the updates (gradient clipping).
void global_norm(const std::vector<Tensor>& tensors, const Tensor& out);

}  // namespace minidl::cuda
