// The CPU kernels: plain C++ and OpenMP, the reference every CUDA kernel is tested against.
//
// Contract for every kernel: the front end (autograd/ops_*.cpp) has already checked shapes, dtypes and
// devices and allocated `out`. Inputs may be any strided view (broadcast strides of 0 included); outputs
// are written through their strides too, but are usually fresh contiguous tensors. Floating kernels
// accept float32 and float64. Reductions are deterministic: the summation order depends only on the
// shapes, never on the number of threads.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/functors.h"
#include "autograd/tensor.h"

namespace minidl::cpu {

// ---- elementwise.cpp ----------------------------------------------------------------------------
// Inputs broadcast to out's shape.
void unary(UnaryOp op, const UnaryParams& p, const Tensor& x, const Tensor& out);
// gx = grad of op given s (x or y, see unary_backward_reads_output) and the incoming gradient g.
void unary_backward(UnaryOp op, const UnaryParams& p, const Tensor& s, const Tensor& g, const Tensor& gx);
// out may be a itself (same storage, shape, strides and offset), never a different view of a's storage.
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void compare(CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out);  // out is bool
void ternary(TernaryOp op, const Tensor& g, const Tensor& a, const Tensor& b, const Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
// dst = src broadcast to dst's shape, converting between any two dtypes (to bool: value != 0).
void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, double value);
void axpy(double alpha, const Tensor& x, const Tensor& y);  // y += alpha * x, x broadcast to y

// ---- reduce.cpp ---------------------------------------------------------------------------------
// Reduces x over `dims` (sorted, distinct) into out, which is contiguous and holds one element per kept
// position (x's shape with the reduced dims removed or set to 1). Sums accumulate in double.
void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out);
void var(const Tensor& x, const std::vector<int64_t>& dims, int64_t ddof, const Tensor& out);
void argmax(const Tensor& x, int64_t dim, const Tensor& out);  // out int64, first maximum wins

// ---- gemm.cpp -----------------------------------------------------------------------------------
// C = A B (or C += A B when accumulate) for row-major-or-any-strided matrices: element (i, j) of A is
// A[i * rsa + j * csa]. Cache-blocked and packed; the inner kernel is vectorised by the compiler.
template <class T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb,
          T* C, int64_t rsc, int64_t csc, bool accumulate);
// Batched: a [..., M, K], b [..., K, N], out [..., M, N], all with the same batch shape (a and b may be
// broadcast along it with stride 0).
void matmul(const Tensor& a, const Tensor& b, const Tensor& out);

// ---- index.cpp ----------------------------------------------------------------------------------
void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void index_add(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& out);  // out[index[i]] += src[i]
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void scatter_add(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& out);

// ---- softmax.cpp --------------------------------------------------------------------------------
void softmax(const Tensor& x, int64_t dim, bool log, const Tensor& out);
// gx from the forward output y and incoming g: softmax  gx = y (g - sum(g y)); log_softmax  gx = g - e^y sum(g).
void softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log, const Tensor& gx);

// ---- loss.cpp -----------------------------------------------------------------------------------
// pred, target [R, C] and mask [R] (bool, or undefined = all valid). Writes ccc [C] and, per column, the
// statistics backward needs into stats [C, 4]: mean(x), mean(y), the denominator D, and the count.
void ccc_forward(const Tensor& pred, const Tensor& target, const Tensor& mask, double eps, const Tensor& ccc,
                 const Tensor& stats);
// With g = dL/dccc [C]: dL/dpred = g 2/(N D) ((y - my) - ccc (x - my)), and symmetrically for target.
// Either output may be undefined (not needed).
void ccc_backward(const Tensor& pred, const Tensor& target, const Tensor& mask, const Tensor& ccc, const Tensor& stats,
                  const Tensor& g, const Tensor& gpred, const Tensor& gtarget);

// ---- random.cpp ---------------------------------------------------------------------------------
// Fill `out` (contiguous, float) from the Philox stream at (seed, offset); see autograd/random.h.
void uniform(const Tensor& out, uint64_t seed, uint64_t offset, double lo, double hi);
void normal(const Tensor& out, uint64_t seed, uint64_t offset, double mean, double std);
void bernoulli(const Tensor& out, uint64_t seed, uint64_t offset, double p);
// Dropout in one pass over contiguous x, y and mask of one float dtype: element i is kept when its
// bernoulli(keep) draw is 1; mask[i] = kept ? T(1 / keep) : 0 and y[i] = x[i] mask[i].
void dropout(const Tensor& x, uint64_t seed, uint64_t offset, double keep, const Tensor& y, const Tensor& mask);
void arange(const Tensor& out, double start, double step);

}  // namespace minidl::cpu

// The layer kernels have their own headers (their signatures are longer): convolution and pooling,
// batch and layer normalisation, the fused LSTM, the joint cross-attention block.
#include "cpu/attention.h"
#include "cpu/conv.h"
#include "cpu/lstm.h"
#include "cpu/norm.h"
