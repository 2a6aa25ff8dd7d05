// CUDA matrix products: C = A B for matmul, bmm and linear (and so their backward), in two kernels.
//
// 1. sgemm_simt: float32 on the CUDA cores. A block computes a BM x BN tile of C, walking K in slices
//    of BK: each slice of A and B is staged in shared memory (A transposed, so both are read along the
//    tile's rows and columns), and each thread accumulates a TM x TN sub-tile in registers from
//    float4 reads of shared memory, TM x TN multiply-adds per pair of reads. The next slice's global
//    loads are issued before the current slice is computed and land in the other of two shared buffers,
//    so memory latency hides behind arithmetic with one barrier per slice. A thread's rows (and columns)
//    come in groups of four spaced 4 x (threads across) apart, which keeps its float4 reads of shared
//    memory free of bank conflicts.
// 2. sgemm_tf32: tensor cores through mma.sync (m16n8k8, TF32 inputs, float32 accumulation;
//    cuda/mma.cuh). 128 x 128 tiles, 8 warps of 64 x 32 (4 x 4 mma tiles each), K slices of 32 copied
//    global -> shared with cp.async in a three-stage pipeline, so two slices are in flight while one is
//    multiplied. Each thread rounds the groups it copied to TF32 in shared memory once they land, so
//    fragments need no conversion; they are 32-bit loads from rows padded so that each load hits 32
//    banks, and the results go straight from registers to C, two neighbouring columns per store. Needs
//    16-byte aligned operands with leading dimensions divisible by 4 (else the SIMT kernel runs).
//
// Both read either layout of each operand (row-major: the second index is contiguous; column-major: the
// first is, as a transposed view is), so the backward's A^T and B^T need no copies; any other strides
// are copied to row-major first (by the tensor front end, cuda/matmul.cu). Batches run as the third
// grid dimension, with per-batch offsets from the batch dims' strides (0 where an operand is broadcast).
// A single product with few tiles of C and a long K is split along K, its segments run as batches
// (split_count, near the end).
#include <cuda_pipeline.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/gemm_launch.cuh"
#include "cuda/indexing.cuh"
#include "cuda/kernels.h"
#include "cuda/mma.cuh"
#include "cuda/split_sum.cuh"

namespace minidl::cuda {
using namespace gemm_detail;
namespace {

// Four elements (r, c .. c+3) of a matrix whose second index is contiguous (element (r, c) at
// p[r * ld + c]), zeros outside rows x cols. `vec`: p is 16-byte aligned and ld divisible by 4, so a
// whole in-bounds group is one float4 load (c is always a multiple of 4).
__device__ __forceinline__ float4 load_group(const float* p, int64_t ld, int r, int c, int rows, int cols, bool vec) {
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
  if (r >= rows) return v;
  const float* q = p + static_cast<int64_t>(r) * ld + c;
  if (vec && c + 3 < cols) return load4(q);
  if (c < cols) v.x = q[0];
  if (c + 1 < cols) v.y = q[1];
  if (c + 2 < cols) v.z = q[2];
  if (c + 3 < cols) v.w = q[3];
  return v;
}

__device__ __forceinline__ float lane_of(const float4& v, int j) {
  return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

// ---- 1. SIMT -----------------------------------------------------------------------------------------
// Registers per thread the compiler may use, given to __launch_bounds__ as blocks per SM. 128 for the
// big tile lets two of its blocks share an SM's 64K registers in every layout (unbounded, the mixed
// layouts' transposing stores took 149: one block per SM). The small tiles took 48 and 56 unbounded;
// 48 and 64 keep them there without spills (a hint of one block per SM had let them grow to 79).
// Figures from ptxas for sm_90 (tools/kernel_report.py).
template <int BM, int BN, int TM, int TN>
constexpr int simt_min_blocks() {
  constexpr int registers = BM >= 128 ? 128 : BM >= 64 ? 48 : 64;
  return 65536 / ((BM / TM) * (BN / TN) * registers);
}

template <int BM, int BN, int BK, int TM, int TN, bool kARow, bool kBRow>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), (simt_min_blocks<BM, BN, TM, TN>()))
    sgemm_simt(int M, int N, int K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
               Batch batch, bool vec_a, bool vec_b, bool vec_c) {
  constexpr int TX = BN / TN, TY = BM / TM, T = TX * TY, PAD = 4;
  constexpr int VA = BM * BK / 4, VB = BK * BN / 4;  // float4 groups per slice
  constexpr int RA = (VA + T - 1) / T, RB = (VB + T - 1) / T;
  static_assert(TM % 4 == 0 && TN % 4 == 0 && BK % 4 == 0, "tiles are made of groups of four");
  __shared__ __align__(16) float As[2][BK][BM + PAD];
  __shared__ __align__(16) float Bs[2][BK][BN + PAD];

  int64_t oa, ob, oc;
  batch.offsets(oa, ob, oc);
  A += oa;
  B += ob;
  C += oc;
  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

  float4 ra[RA], rb[RB];
  // Global -> registers for the slice starting at k0.
  auto load = [&](int k0) {
#pragma unroll
    for (int u = 0; u < RA; ++u) {
      const int v = tid + u * T;
      if (v >= VA) break;
      if constexpr (kARow) {  // groups along k
        const int m = v / (BK / 4), k = (v % (BK / 4)) * 4;
        ra[u] = load_group(A, lda, m0 + m, k0 + k, M, K, vec_a);
      } else {  // groups along m
        const int k = v / (BM / 4), m = (v % (BM / 4)) * 4;
        ra[u] = load_group(A, lda, k0 + k, m0 + m, K, M, vec_a);
      }
    }
#pragma unroll
    for (int u = 0; u < RB; ++u) {
      const int v = tid + u * T;
      if (v >= VB) break;
      if constexpr (kBRow) {  // groups along n
        const int k = v / (BN / 4), n = (v % (BN / 4)) * 4;
        rb[u] = load_group(B, ldb, k0 + k, n0 + n, K, N, vec_b);
      } else {  // groups along k
        const int n = v / (BK / 4), k = (v % (BK / 4)) * 4;
        rb[u] = load_group(B, ldb, n0 + n, k0 + k, N, K, vec_b);
      }
    }
  };
  // Registers -> shared buffer `buf`: As[k][m], Bs[k][n].
  auto store = [&](int buf) {
#pragma unroll
    for (int u = 0; u < RA; ++u) {
      const int v = tid + u * T;
      if (v >= VA) break;
      if constexpr (kARow) {
        const int m = v / (BK / 4), k = (v % (BK / 4)) * 4;
#pragma unroll
        for (int j = 0; j < 4; ++j) As[buf][k + j][m] = lane_of(ra[u], j);
      } else {
        const int k = v / (BM / 4), m = (v % (BM / 4)) * 4;
        store4(&As[buf][k][m], ra[u]);
      }
    }
#pragma unroll
    for (int u = 0; u < RB; ++u) {
      const int v = tid + u * T;
      if (v >= VB) break;
      if constexpr (kBRow) {
        const int k = v / (BN / 4), n = (v % (BN / 4)) * 4;
        store4(&Bs[buf][k][n], rb[u]);
      } else {
        const int n = v / (BK / 4), k = (v % (BK / 4)) * 4;
#pragma unroll
        for (int j = 0; j < 4; ++j) Bs[buf][k + j][n] = lane_of(rb[u], j);
      }
    }
  };

  float acc[TM][TN] = {};
  const int slices = (K + BK - 1) / BK;
  load(0);
  store(0);
  __syncthreads();
  for (int s = 0; s < slices; ++s) {
    const int buf = s & 1;
    if (s + 1 < slices) load((s + 1) * BK);  // in flight while this slice is multiplied
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM / 4; ++i) {
        const float4 v = load4(&As[buf][k][i * 4 * TY + ty * 4]);
        a[4 * i] = v.x, a[4 * i + 1] = v.y, a[4 * i + 2] = v.z, a[4 * i + 3] = v.w;
      }
#pragma unroll
      for (int j = 0; j < TN / 4; ++j) {
        const float4 v = load4(&Bs[buf][k][j * 4 * TX + tx * 4]);
        b[4 * j] = v.x, b[4 * j + 1] = v.y, b[4 * j + 2] = v.z, b[4 * j + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (s + 1 < slices) store(buf ^ 1);  // the other buffer: nobody reads it since the last barrier
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + (i / 4) * 4 * TY + ty * 4 + i % 4;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < TN / 4; ++j) {
      const int n = n0 + j * 4 * TX + tx * 4;
      float* c = C + static_cast<int64_t>(m) * ldc + n;
      if (vec_c && n + 3 < N) {
        store4(c, make_float4(acc[i][4 * j], acc[i][4 * j + 1], acc[i][4 * j + 2], acc[i][4 * j + 3]));
      } else {
#pragma unroll
        for (int q = 0; q < 4; ++q)
          if (n + q < N) c[q] = acc[i][4 * j + q];
      }
    }
  }
}

// ---- 2. TF32 tensor cores -------------------------------------------------------------------------
// cp.async of one 16-byte group whose first `bytes` (0, 4, 8, 12 or 16) come from src and the rest are
// zeros, as one instruction: __pipeline_memcpy_async takes a run-time zero-fill size but compiles it to
// a branch over the sizes around every copy (they were a third of the TF32 main loop's instructions).
// The emulator has no PTX, so there the pipeline call stands in.
__device__ __forceinline__ void copy_group_async(float* dst, const float* src, int bytes) {
#if defined(MINIDL_CUDA_EMULATED)
  __pipeline_memcpy_async(dst, src, 16, 16 - bytes);
#else
  const unsigned shared = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared), "l"(src), "r"(bytes) : "memory");
#endif
}

constexpr int kTcBM = 128, kTcBN = 128, kTcBK = 32, kTcStages = 3, kTcThreads = 256;
// Row padding of a slice in shared memory, by orientation, so that a fragment load (eight rows g and
// four columns t, mma.cuh) touches 32 different banks: rows along K (M or N contiguous in the row, 32
// rows of 128) read element (t, g), bank 8 t + g with 128 + 8; rows along M or N (K contiguous, 128 rows
// of 32) read element (g, t), bank 4 g + t with 32 + 4. Both keep rows 16-byte aligned for cp.async.
constexpr int kTcPadK = 4, kTcPadMN = 8;
// One operand's slice in shared memory, either orientation: 128 x (32 + 4) or 32 x (128 + 8) floats.
constexpr int kTcSlice = kTcBM * (kTcBK + kTcPadK) > kTcBK*(kTcBM + kTcPadMN) ? kTcBM*(kTcBK + kTcPadK)
                                                                              : kTcBK*(kTcBM + kTcPadMN);
constexpr size_t kTcSmem = sizeof(float) * 2 * kTcSlice * kTcStages;

template <bool kARow, bool kBRow>
__global__ void __launch_bounds__(kTcThreads, 2)  // two blocks per SM: at most 128 registers
    sgemm_tf32(int M, int N, int K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
               Batch batch, bool pairs_c) {
  // Shared layouts follow the global ones, so cp.async copies 16-byte groups unchanged:
  //   A row-major: As[m][k] (ld 36)   A column-major: As[k][m] (ld 136)
  //   B row-major: Bs[k][n] (ld 136)  B column-major: Bs[n][k] (ld 36)
  constexpr int ldA = kARow ? kTcBK + kTcPadK : kTcBM + kTcPadMN;
  constexpr int ldB = kBRow ? kTcBN + kTcPadMN : kTcBK + kTcPadK;
  extern __shared__ __align__(128) float smem[];
  float* As = smem;                         // kTcStages slices
  float* Bs = smem + kTcStages * kTcSlice;  // kTcStages slices

  int64_t oa, ob, oc;
  batch.offsets(oa, ob, oc);
  A += oa;
  B += ob;
  C += oc;
  const int tid = threadIdx.x, warp = tid / kWarp, lane = tid % kWarp;
  const int wm = warp / 4, wn = warp % 4;  // 2 x 4 warps, each 64 x 32 of the tile
  const int m0 = blockIdx.y * kTcBM, n0 = blockIdx.x * kTcBN;

  // Group g (four floats) of a slice sits at row g / per_row of its stage, column (g % per_row) x 4:
  // a slice with K along its rows holds 8 groups a row, one with M or N along them 32.
  constexpr int perA = kARow ? kTcBK / 4 : kTcBM / 4, perB = kBRow ? kTcBN / 4 : kTcBK / 4;
  auto offset = [](int g, int per_row, int ld) { return (g / per_row) * ld + (g % per_row) * 4; };

  // Issues the copies of slice k0 into stage `st`: 1024 groups of four per operand, four per thread.
  // Groups reaching past the matrix are zero-filled; the source address stays inside the matrix.
  // Group tid + 256 u lies 256 / per_row rows below group tid, so a thread's four copies share a column
  // and lie a fixed stride apart: their addresses are worked out once, and a slice moves them by k0
  // rows or columns (which of the two, and which bounds move with it, is known at compile time).
  struct Source {
    const float* first;  // group tid's first element in slice 0 (only read where it is inside)
    int64_t u_stride, k_rows_ld;
    int row, col, rows, cols;
  };
  auto source = [&](const float* p, int64_t ld, bool k_rows, int mn0, int per_row, int rows, int cols) {
    const int row = (k_rows ? 0 : mn0) + tid / per_row, col = (k_rows ? mn0 : 0) + (tid % per_row) * 4;
    return Source{p + static_cast<int64_t>(row) * ld + col, (kTcThreads / per_row) * ld, ld, row, col, rows, cols};
  };
  const Source srcA = source(A, lda, !kARow, m0, perA, kARow ? M : K, kARow ? K : M);
  const Source srcB = source(B, ldb, kBRow, n0, perB, kBRow ? K : N, kBRow ? N : K);
  auto copy_operand = [&](const Source& src, bool k_rows, int per_row, float* stage, int ld_s, const float* base,
                          int k0) {
    const int64_t k_step = k_rows ? k0 * src.k_rows_ld : k0;
    const int c = src.col + (k_rows ? 0 : k0), columns_left = max(0, min(4, src.cols - c));
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int r = src.row + u * (kTcThreads / per_row) + (k_rows ? k0 : 0);
      const int valid = r < src.rows ? columns_left : 0;
      copy_group_async(stage + offset(tid + u * kTcThreads, per_row, ld_s),
                       valid > 0 ? src.first + u * src.u_stride + k_step : base, 4 * valid);
    }
  };
  auto load_stage = [&](int st, int k0) {
    copy_operand(srcA, !kARow, perA, As + st * kTcSlice, ldA, A, k0);
    copy_operand(srcB, kBRow, perB, Bs + st * kTcSlice, ldB, B, k0);
  };
  // Rounds this thread's groups of stage `st` to TF32 in place (to nearest, where the tensor cores would
  // drop the low bits): once per element, after the thread's own copies have landed and before the
  // barrier that hands the stage to the fragment loads of every warp (each element is loaded by two or
  // four warps, so rounding fragments instead cost twice to four times as many instructions).
  auto round_stage = [&](int st) {
    auto round4 = [](float* p) {
      float4 v = load4(p);
      v.x = round_to_tf32(v.x), v.y = round_to_tf32(v.y), v.z = round_to_tf32(v.z), v.w = round_to_tf32(v.w);
      store4(p, v);
    };
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int g = tid + u * kTcThreads;
      round4(As + st * kTcSlice + offset(g, perA, ldA));
      round4(Bs + st * kTcSlice + offset(g, perB, ldB));
    }
  };

  // The warp's 64 x 32 of C as 4 x 4 mma tiles of 16 x 8, each lane's four elements of each (mma.cuh).
  float acc[4][4][4] = {};
  const int g = lane / 4, q = lane % 4;

  const int slices = (K + kTcBK - 1) / kTcBK;
#pragma unroll
  for (int s = 0; s < kTcStages - 1; ++s) {
    if (s < slices) load_stage(s, s * kTcBK);
    __pipeline_commit();
  }
  for (int s = 0; s < slices; ++s) {
    __pipeline_wait_prior(kTcStages - 2);  // this thread's copies of slice s have landed...
    round_stage(s % kTcStages);
    __syncthreads();  // ...and everyone's, rounded; slice s - 1 is no longer read
    const int next = s + kTcStages - 1;
    if (next < slices) load_stage(next % kTcStages, next * kTcBK);
    __pipeline_commit();  // an empty group keeps the count of outstanding groups uniform
    const float* as = As + (s % kTcStages) * kTcSlice;
    const float* bs = Bs + (s % kTcStages) * kTcSlice;
    // Element (m, k) of the slice of A and (k, n) of the slice of B, in either layout.
    auto a_at = [&](int m, int k) { return kARow ? as[m * ldA + k] : as[k * ldA + m]; };
    auto b_at = [&](int k, int n) { return kBRow ? bs[k * ldB + n] : bs[n * ldB + k]; };
#pragma unroll
    for (int kk = 0; kk < kTcBK; kk += 8) {
      float fa[4][4], fb[4][2];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int m = wm * 64 + i * 16 + g;
        fa[i][0] = a_at(m, kk + q);
        fa[i][1] = a_at(m + 8, kk + q);
        fa[i][2] = a_at(m, kk + q + 4);
        fa[i][3] = a_at(m + 8, kk + q + 4);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int n = wn * 32 + j * 8 + g;
        fb[j][0] = b_at(kk + q, n);
        fb[j][1] = b_at(kk + q + 4, n);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_tf32_16x8x8(acc[i][j], fa[i], fb[j]);
    }
  }
  __pipeline_wait_prior(0);  // the last, empty groups: nothing outstanding when the block exits

  // Each lane holds pairs of neighbouring columns (2 q, 2 q + 1) of rows g and g + 8 of each tile:
  // one 8-byte store per pair where C allows it (pairs_c), else one element at a time.
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int m = m0 + wm * 64 + i * 16 + g + 8 * h, n = n0 + wn * 32 + j * 8 + 2 * q;
        if (m >= M || n >= N) continue;
        float* c = C + static_cast<int64_t>(m) * ldc + n;
        if (pairs_c && n + 1 < N) {
          store2(c, make_float2(acc[i][j][2 * h], acc[i][j][2 * h + 1]));
        } else {
          c[0] = acc[i][j][2 * h];
          if (n + 1 < N) c[1] = acc[i][j][2 * h + 1];
        }
      }
}

// ---- host side -------------------------------------------------------------------------------------
std::atomic<GemmPath>& path_setting() {
  static std::atomic<GemmPath> path{[] {
    const char* env = std::getenv("MINIDL_GEMM");
    return env && std::strcmp(env, "tf32") == 0 ? GemmPath::Tf32 : GemmPath::Simt;
  }()};
  return path;
}

// Calls fn with the operands' layouts as compile-time constants (std::true_type: row-major), so each
// kernel is instantiated for the four combinations and picked here, once per launch.
template <class Fn>
void with_layouts(bool a_row, bool b_row, Fn&& fn) {
  if (a_row)
    b_row ? fn(std::true_type{}, std::true_type{}) : fn(std::true_type{}, std::false_type{});
  else
    b_row ? fn(std::false_type{}, std::true_type{}) : fn(std::false_type{}, std::false_type{});
}

template <int BM, int BN, int BK, int TM, int TN>
void launch_simt(int M, int N, int K, const Operand& a, const Operand& b, const Output& c, const Batch& batch,
                 unsigned zcount, cudaStream_t stream) {
  const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM, zcount);
  const unsigned threads = (BM / TM) * (BN / TN);
  with_layouts(a.row, b.row, [&](auto ar, auto br) {
    sgemm_simt<BM, BN, BK, TM, TN, decltype(ar)::value, decltype(br)::value>
        <<<grid, threads, 0, stream>>>(M, N, K, a.p, a.ld, b.p, b.ld, c.p, c.ld, batch, a.vec, b.vec, c.vec4);
  });
}

// The 108 KiB of dynamic shared memory is an opt-in that holds for the device current when it is
// made, so it is made once per device and kernel instance.
template <bool kARow, bool kBRow>
void allow_tf32_shared_memory(int device) {
  static std::mutex mutex;
  static std::vector<char> done;
  const std::lock_guard<std::mutex> lock(mutex);
  if (device >= static_cast<int>(done.size())) done.resize(device + 1, 0);
  if (done[device]) return;
  MINIDL_CUDA_CHECK(cudaFuncSetAttribute(sgemm_tf32<kARow, kBRow>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(kTcSmem)));
  done[device] = 1;
}

template <bool kARow, bool kBRow>
void launch_tf32_kernel(int M, int N, int K, const Operand& a, const Operand& b, const Output& c, const Batch& batch,
                        unsigned zcount, cudaStream_t stream, int device) {
  allow_tf32_shared_memory<kARow, kBRow>(device);
  const dim3 grid((N + kTcBN - 1) / kTcBN, (M + kTcBM - 1) / kTcBM, zcount);
  sgemm_tf32<kARow, kBRow>
      <<<grid, kTcThreads, kTcSmem, stream>>>(M, N, K, a.p, a.ld, b.p, b.ld, c.p, c.ld, batch, c.vec2);
}

// C = A B on tiles of C, each block walking the whole K.
void launch_tiles(GemmPath path, int M, int N, int K, const Operand& a, const Operand& b, const Output& c, Batch batch,
                  int64_t count, int device) {
  const cudaStream_t stream = stream_of(device);
  const bool tf32 = path == GemmPath::Tf32 && M >= 64 && N >= 64 && K >= 32 && a.vec && b.vec;
  // The largest SIMT tile that still gives every SM a block or two.
  const int64_t sms = multiprocessors(device);
  auto tiles = [&](int64_t bm, int64_t bn) { return ((M + bm - 1) / bm) * ((N + bn - 1) / bn) * count; };
  const bool big = tiles(128, 128) >= sms, medium = tiles(64, 64) >= sms;
  for (int64_t r0 = 0; r0 < M; r0 += kRowsPerLaunch) {
    const int rows = static_cast<int>(std::min<int64_t>(kRowsPerLaunch, M - r0));
    Operand ar = a;
    ar.p += r0 * (a.row ? a.ld : 1);
    Output cr = c;
    cr.p += r0 * c.ld;
    for (int64_t first = 0; first < count; first += 65535) {
      batch.first = first;
      const unsigned z = static_cast<unsigned>(std::min<int64_t>(65535, count - first));
      if (tf32) {
        with_layouts(a.row, b.row, [&](auto ra, auto rb) {
          launch_tf32_kernel<decltype(ra)::value, decltype(rb)::value>(rows, N, K, ar, b, cr, batch, z, stream, device);
        });
      } else if (big) {
        launch_simt<128, 128, 8, 8, 8>(rows, N, K, ar, b, cr, batch, z, stream);
      } else if (medium) {
        launch_simt<64, 64, 8, 4, 4>(rows, N, K, ar, b, cr, batch, z, stream);
      } else {
        launch_simt<32, 32, 8, 4, 4>(rows, N, K, ar, b, cr, batch, z, stream);
      }
      MINIDL_CUDA_CHECK_LAUNCH(tf32 ? "matmul (tf32)" : "matmul");
    }
  }
}

}  // namespace

namespace gemm_detail {

// Split K: a product with few tiles of C and a long K (a layer's weight gradient, K = the batch's rows:
// W1's [16, 16] x 16384) would be a handful of blocks each walking all of K while the other SMs idle.
// Such a product is cut along K into segments of at least kMinSplit (which usually decides), enough of
// them for about kSplitTiles 64 x 64 tiles in all, each segment a partial C of its own;
// add_splits (cuda/split_sum.cuh) then adds them in segment order, so the result is deterministic. The count depends
// on the sizes alone (not on the GPU), so every device sums in the same order.
constexpr int64_t kMinSplit = 512, kSplitTiles = 128, kFewTiles = 64;

int64_t split_count(int M, int N, int K) {
  const int64_t tiles = ((M + 63) / 64) * int64_t{(N + 63) / 64};
  if (tiles >= kFewTiles || K < 2 * kMinSplit) return 1;
  return std::clamp<int64_t>(kSplitTiles / tiles, 1, K / kMinSplit);
}

void launch(GemmPath path, int M, int N, int K, const Operand& a, const Operand& b, const Output& c, Batch batch,
            int64_t count, int device) {
  if (count == 1 && batch.nd == 0 && batch.group == 0) {
    const int64_t splits = split_count(M, N, K);
    if (splits > 1) {
      // Segments of a multiple of 32 (the TF32 kernel's K slice; offsets keep 16-byte alignment), the
      // full ones as the batches of one launch, a shorter last one as a launch of its own (on the SIMT
      // kernel if it is below the TF32 kernel's 32: still a function of the sizes alone).
      const int seg = static_cast<int>(((K + splits - 1) / splits + 31) / 32 * 32);
      const int full = K / seg, tail = K - full * seg;
      const int parts = full + (tail > 0);
      const int64_t mn = int64_t{M} * N;
      const Scratch partial(sizeof(float) * mn * parts, device);
      const Output out{partial.as<float>(), N, N % 4 == 0, N % 2 == 0};
      const int64_t a_step = a.row ? 1 : a.ld, b_step = b.row ? b.ld : 1;  // one k along A's row, B's column
      Batch segments{};
      segments.nd = 1;
      segments.shape[0] = full;
      segments.sa[0] = a_step * seg;
      segments.sb[0] = b_step * seg;
      segments.sc[0] = mn;
      launch_tiles(path, M, N, seg, a, b, out, segments, full, device);
      if (tail > 0) {
        Operand at = a, bt = b;
        at.p += a_step * seg * full;
        bt.p += b_step * seg * full;
        launch_tiles(path, M, N, tail, at, bt, Output{out.p + mn * full, N, out.vec4, out.vec2}, Batch{}, 1, device);
      }
      launch_add_splits(partial.as<float>(), parts, M, N, c.p, c.ld, device, "matmul (split sums)");
      return;
    }
  }
  launch_tiles(path, M, N, K, a, b, c, batch, count, device);
}

}  // namespace gemm_detail

void set_gemm_path(GemmPath path) { path_setting().store(path); }
GemmPath gemm_path() { return path_setting().load(); }

void sgemm(GemmPath path, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
           float* C, int64_t ldc, int device) {
  MINIDL_CHECK(M >= 0 && N >= 0 && K >= 0 && M < kMaxGemmDim && N < kMaxGemmDim && K < kMaxGemmDim, "sgemm: sizes ", M,
               " x ", N, " x ", K, " are out of range");
  if (M == 0 || N == 0) return;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      MINIDL_CUDA_CHECK(cudaMemsetAsync(C + i * ldc, 0, sizeof(float) * N, stream_of(device)));
    return;
  }
  const Operand a{A, lda, true, batches_aligned(A, lda, {}, 4)}, b{B, ldb, true, batches_aligned(B, ldb, {}, 4)};
  const Output c{C, ldc, batches_aligned(C, ldc, {}, 4), batches_aligned(C, ldc, {}, 2)};
  launch(path, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), a, b, c, Batch{}, 1, device);
}

}  // namespace minidl::cuda
