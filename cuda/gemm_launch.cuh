// What the GEMM kernels of cuda/gemm.cu take, shared with the tensor front end in cuda/matmul.cu:
// an operand's layout and alignment, the output, and the per-batch (or per-product) offsets. Private to
// those two files; everyone else calls cuda/kernels.h.
#pragma once

#include <cstdint>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/indexing.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda::gemm_detail {

// Per-batch offsets of A, B and C: the batch index decomposed over the (merged) batch dims or, for a
// group of independent products (matmul_group), looked up in a table of each product's offsets from
// the launch's A, B and C (the first product's).
constexpr int kMaxGroup = 4;
struct Batch {
  int nd = 0;
  int64_t first = 0;  // batch index of blockIdx.z == 0 (launches are split at 65535 batches)
  int64_t shape[kMaxDims];
  int64_t sa[kMaxDims], sb[kMaxDims], sc[kMaxDims];
  int group = 0;  // > 0: blockIdx.z picks one of `group` products
  int64_t ga[kMaxGroup], gb[kMaxGroup], gc[kMaxGroup];
  __device__ __forceinline__ void offsets(int64_t& oa, int64_t& ob, int64_t& oc) const {
    if (group > 0) {
      oa = ga[blockIdx.z];
      ob = gb[blockIdx.z];
      oc = gc[blockIdx.z];
      return;
    }
    int64_t z = first + blockIdx.z;
    oa = ob = oc = 0;
    for (int d = nd - 1; d >= 0; --d) {
      const int64_t i = z % shape[d];
      z /= shape[d];
      oa += i * sa[d];
      ob += i * sb[d];
      oc += i * sc[d];
    }
  }
};
// An operand as the kernels read it: contiguous second index (row) or first index (!row), and its
// leading dimension.
struct Operand {
  const float* p;
  int64_t ld;
  bool row;
  bool vec = false;  // every batch's matrix starts 16-byte aligned and ld is divisible by 4
};

// Whether every batch's matrix of an operand at p, with leading dimension ld and batch strides
// `strides`, starts at a multiple of `q` floats from an aligned base.
inline bool batches_aligned(const void* p, int64_t ld, const std::vector<int64_t>& strides, int q) {
  if ((reinterpret_cast<uintptr_t>(p) % (4u * q)) != 0 || ld % q != 0) return false;
  for (int64_t s : strides)
    if (s % q != 0) return false;
  return true;
}

// A rows x cols matrix with strides rs, cs as an operand; false when neither index is contiguous.
inline bool as_operand(const float* p, int64_t rows, int64_t cols, int64_t rs, int64_t cs, Operand& out) {
  // A size-1 dim's stride never matters: pick the value that makes the operand contiguous.
  if (cols == 1) cs = 1;
  if (rows == 1) rs = cols;
  if (cs == 1 && (rs >= cols || rows == 1)) {
    out = {p, rows == 1 ? cols : rs, true, false};
    return true;
  }
  if (rs == 1 && (cs >= rows || cols == 1)) {
    out = {p, cols == 1 ? rows : cs, false, false};
    return true;
  }
  return false;
}

// The output of a launch: C, its leading dimension, and whether every batch's C is 16-byte aligned
// with ldc divisible by 4 (vec4), and whether it is 8-byte aligned with ldc even (vec2: the TF32
// kernel's paired stores).
struct Output {
  float* p;
  int64_t ld;
  bool vec4, vec2;
};
// Row tiles go on grid.y (at most 65535), so taller products run in chunks of this many rows: a
// multiple of every tile height (32, 64, 128), so chunk starts keep the operands' alignment.
constexpr int64_t kRowsPerLaunch = int64_t{16383} * 128;

// Tile counts are rounded up in int, so sizes stay a tile short of 2^31.
constexpr int64_t kMaxGemmDim = (int64_t{1} << 31) - 256;

// How many segments launch() cuts K of a single [M, K] x [K, N] product into (1: none), a function of
// the sizes alone (cuda/gemm.cu says when and why).
int64_t split_count(int M, int N, int K);

// Runs C = A B for `count` batches (or the products of a group) on the current stream of `device`:
// the TF32 kernel where asked for and the operands allow it, else a SIMT tile sized to the product; a
// single product with few tiles and a long K split along K.
void launch(GemmPath path, int M, int N, int K, const Operand& a, const Operand& b, const Output& c, Batch batch,
            int64_t count, int device);

}  // namespace minidl::cuda::gemm_detail
