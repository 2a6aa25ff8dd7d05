// CUDA convolution, forward and both backward passes, as implicit GEMMs: the im2col matrix is never
// materialised; each tile of it is gathered from the input straight into shared memory.
//
// One tile loop serves the three passes (per group g, with K = C_in/G prod(kernel), P = prod(out),
// Q = prod(in)):
//   forward      y[co, (b, p)]   = sum over k = (ci, kernel offset) of w[co, k] x_col[k, (b, p)]
//   data grad    gx[ci, (b, q)]  = sum over k = (co, kernel offset) of w[co, ci, offset] gy[co, (b, p(q, offset))]
//   weight grad  gw[co, k]       = sum over (b, p) of gy[co, (b, p)] x_col[k, (b, p)]
// A block computes a 64 x 64 tile of the GEMM, or 128 x 128 where the GEMM has more than 64 rows (Tile,
// conv_tile()), in slices of 16 along its reduction, staging each slice of both operands in shared
// memory (double-buffered, the next slice's loads in flight while this one is multiplied), each of 256
// threads accumulating a 4 x 4 or 8 x 8 sub-tile. Every thread loads the same column of
// the gathered operand for the whole loop, so what that column needs (its batch item, its output or input
// position, its base offset) is worked out once; what a reduction index needs (its channel, its kernel
// offset) comes from a small table built on the device on a geometry's first call and kept
// (cuda/conv_tables.cuh), so the gather costs a table read, three unsigned bounds checks and one load
// instead of a cascade of integer divisions. The one division left in a loop (the weight gradient's, by
// the output plane) is a multiply and a shift (fast_divide.h).
//
// Two paths share the loop (conv_path(), as matmul's gemm_path()): SIMT float32, and TF32 tensor cores
// (cuda/mma.cuh), which round each staged element to TF32 and replace the FFMA sub-tiles with mma.sync
// tiles of 16 x 8; the gathers, tables and epilogues are the same code.
//
// Positions outside the input read as zero (padding). The data gradient is a GEMM per phase of the
// strides (input positions equal modulo the stride), over only the kernel offsets that reach an output
// from that phase, so a strided convolution costs no more per useful product than a unit-stride one;
// the phases run side by side in one launch.
// The weight gradient
// reduces over every batch item and output position, which for few output channels is a long reduction
// into few tiles: it is split into segments whose partial sums a second kernel adds in segment order, so
// the result stays deterministic (no atomics anywhere).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/conv_tables.cuh"
#include "cuda/kernels.h"
#include "cuda/mma.cuh"
#include "cuda/split_sum.cuh"

namespace minidl::cuda {
namespace {

constexpr int kSlice = 16, kThreads = 256;

// The block's tile of the GEMM, 256 threads in eight warps either way. Small, 64 x 64: on the SIMT
// path 4 x 4 per thread, on the TF32 path 32 x 16 per warp (2 x 2 mma tiles). Large, 128 x 128: 8 x 8
// per thread (two 4 x 4 blocks 64 apart each way, so that the float4 reads of shared memory stay
// those of the small tile), or 64 x 32 per warp (4 x 4 mma tiles). Each element gathered into shared
// memory then feeds twice as many products, and each read of shared memory twice as many FFMA or
// mma.sync: in the small tile the bookkeeping around the arithmetic is 40% of the SIMT loop and 95% of
// the TF32 one (docs/perf.md). The warps lie 2 along M by 4 along N.
template <bool kTf32, bool kLarge>
struct Tile {
  static constexpr int M = kLarge ? 128 : 64, N = M;
  static constexpr int kWarpRows = M / 2, kWarpCols = N / 4;  // TF32: a warp's part of the tile
  static constexpr int kFragsN = kWarpCols / 8;               // TF32: (kWarpRows / 16) x kFragsN mma tiles
  static constexpr int kParts = M / 64;                       // SIMT: 4 x 4 blocks per thread, each way
  static constexpr int kFrags = kTf32 ? (kWarpRows / 16) * kFragsN : 4 * kParts * kParts;  // acc[kFrags][4]
  static constexpr int kRow = M + (kTf32 ? 8 : 4);                                         // shared row, padded
  static constexpr int kAPer = M * kSlice / kThreads;  // consecutive k of one row of A each thread loads
  static constexpr int kBStep = kThreads / N;          // k rows apart of B's column that a thread loads
  static constexpr int kBPer = kSlice / kBStep;
};

// Blocks per SM each kernel is compiled for (__launch_bounds__), so registers per thread at most 65536 /
// (blocks x 256). Small tiles: three (80 registers). Left to itself ptxas gave the SIMT ones 87-95
// (two blocks per SM) and the TF32 data gradient 87; at 80 the loops are as long and nothing spills, at
// 64 (four blocks) three of them spill into their loops. Large tiles: two on the TF32 path (128 registers, forward
// spilling one offset, see docs/perf.md), one on the SIMT path (153-163).
template <bool kTf32, bool kLarge>
constexpr int kMinBlocks = kLarge ? (kTf32 ? 2 : 1) : 3;

// Where element acc[f][i] of a thread's accumulators sits in the block's tile.
//   SIMT: thread (tx, ty) = (t % 16, t / 16) holds 4 x 4 blocks at rows 64 p + 4 ty, columns 64 c + 4 tx
//         (p, c < kParts); acc[f] is row r = f / kParts of them (block r / 4, row r % 4), block column
//         c = f % kParts, and acc[f][i] its column i.
//   TF32: warp w holds the kWarpRows x kWarpCols at rows kWarpRows (w / 4), columns kWarpCols (w % 4), as
//         mma tiles of 16 x 8; acc[f] is tile (f / kFragsN, f % kFragsN) as mma_tf32_16x8x8 leaves it
//         (d[i] at row g + 8 (i / 2), column 2 t + i % 2 with g = lane / 4, t = lane % 4: cuda/mma.cuh).
template <bool kTf32, bool kLarge>
__device__ __forceinline__ void tile_position(int f, int i, int& row, int& col) {
  using T = Tile<kTf32, kLarge>;
  const int t = threadIdx.x;
  if (kTf32) {
    const int warp = t / kWarp, lane = t % kWarp;
    row = (warp / 4) * T::kWarpRows + (f / T::kFragsN) * 16 + lane / 4 + 8 * (i / 2);
    col = (warp % 4) * T::kWarpCols + (f % T::kFragsN) * 8 + 2 * (lane % 4) + i % 2;
  } else {
    const int r = f / T::kParts;
    row = (r / 4) * 64 + (t / 16) * 4 + r % 4;
    col = (f % T::kParts) * 64 + (t % 16) * 4 + i;
  }
}

// The shared tile loop. Op supplies a(m, k) (the weight-like operand, rows m), a per-thread column state
// for n, b(state, k) (the gathered operand) and the reduction range; acc receives the thread's elements
// of the tile (tile_position says which). Thread t loads kAPer consecutive k-slice positions of one row
// of A, and column t % N of B at k-slice positions t / N + kBStep j.
//
// kTf32 multiplies on the tensor cores: the elements are rounded to TF32 as they go into shared memory
// (once each, though two warps read each), and each warp's slice of 16 is two k-steps of mma_tf32_16x8x8
// over its mma tiles, whose fragments are 32-bit loads. Rows of M + 8 floats put the eight rows g and
// four columns t a fragment load touches in 32 different banks (8 t + g); the SIMT path's float4 row
// reads are conflict-free at any width, and 64 + 4 halves the conflicts of its column-wise stores.
template <bool kTf32, bool kLarge, class Op>
__device__ void tile_loop(const Op& op, int M, int N, int k_begin, int k_end, int m0, int n0,
                          float (&acc)[Tile<kTf32, kLarge>::kFrags][4]) {
  using T = Tile<kTf32, kLarge>;
  constexpr int kRow = T::kRow;
  __shared__ __align__(16) float As[2][kSlice][kRow];
  __shared__ __align__(16) float Bs[2][kSlice][kRow];
  const int t = threadIdx.x;
  const int arow = t / (kSlice / T::kAPer), am = m0 + arow, ak = (t % (kSlice / T::kAPer)) * T::kAPer;
  const int bn = n0 + t % T::N, bk = t / T::N;
  const typename Op::Column col = op.column(bn < N ? bn : N - 1);
  float ra[T::kAPer], rb[T::kBPer];
  auto load = [&](int k0) {
#pragma unroll
    for (int j = 0; j < T::kAPer; ++j) {
      const int k = k0 + ak + j;
      ra[j] = am < M && k < k_end ? op.a(am, k) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < T::kBPer; ++j) {
      const int k = k0 + bk + T::kBStep * j;
      rb[j] = bn < N && k < k_end ? op.b(col, k) : 0.0f;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int j = 0; j < T::kAPer; ++j) As[buf][ak + j][arow] = kTf32 ? round_to_tf32(ra[j]) : ra[j];
#pragma unroll
    for (int j = 0; j < T::kBPer; ++j) Bs[buf][bk + T::kBStep * j][t % T::N] = kTf32 ? round_to_tf32(rb[j]) : rb[j];
  };
  // The SIMT path's thread coordinates, and the TF32 path's warp tile corner and lane coordinates.
  const int tx = t % 16, ty = t / 16;
  const int wm = (t / kWarp / 4) * T::kWarpRows, wn = (t / kWarp % 4) * T::kWarpCols, g = t % kWarp / 4, q = t % 4;
  load(k_begin);
  store(0);
  __syncthreads();
  int buf = 0;
  for (int k0 = k_begin; k0 < k_end; k0 += kSlice) {
    const bool more = k0 + kSlice < k_end;
    if (more) load(k0 + kSlice);
    if (kTf32) {
      constexpr int FM = T::kWarpRows / 16, FN = T::kFragsN;
#pragma unroll
      for (int k = 0; k < kSlice; k += 8) {
        float a[FM][4], b[FN][2];
#pragma unroll
        for (int f = 0; f < FM; ++f) {
          a[f][0] = As[buf][k + q][wm + 16 * f + g];
          a[f][1] = As[buf][k + q][wm + 16 * f + g + 8];
          a[f][2] = As[buf][k + q + 4][wm + 16 * f + g];
          a[f][3] = As[buf][k + q + 4][wm + 16 * f + g + 8];
        }
#pragma unroll
        for (int f = 0; f < FN; ++f) {
          b[f][0] = Bs[buf][k + q][wn + 8 * f + g];
          b[f][1] = Bs[buf][k + q + 4][wn + 8 * f + g];
        }
#pragma unroll
        for (int f = 0; f < FM * FN; ++f) mma_tf32_16x8x8(acc[f], a[f / FN], b[f % FN]);
      }
    } else {
      constexpr int P = T::kParts;
#pragma unroll
      for (int k = 0; k < kSlice; ++k) {
        float av[4 * P], bv[4 * P];
#pragma unroll
        for (int p = 0; p < P; ++p) {
          const float4 a = load4(&As[buf][k][64 * p + ty * 4]), b = load4(&Bs[buf][k][64 * p + tx * 4]);
          av[4 * p] = a.x, av[4 * p + 1] = a.y, av[4 * p + 2] = a.z, av[4 * p + 3] = a.w;
          bv[4 * p] = b.x, bv[4 * p + 1] = b.y, bv[4 * p + 2] = b.z, bv[4 * p + 3] = b.w;
        }
#pragma unroll
        for (int r = 0; r < 4 * P; ++r)
#pragma unroll
          for (int c = 0; c < P; ++c)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[r * P + c][j] = fmaf(av[r], bv[4 * c + j], acc[r * P + c][j]);
      }
    }
    if (more) store(buf ^ 1);
    __syncthreads();
    buf ^= 1;
  }
}

// ---- forward: M = C_out/G, N = batch x P, reduction over k = (ci, offset) ---------------------------
struct Forward {
  Geom g;
  const float *x, *w;
  const int4* table;
  int group;
  struct Column {
    int64_t base;  // offset in x of (b, first channel of the group, window corner)
    int z, y, x;   // the window corner
  };
  __device__ Column column(int n) const {
    const int b = n / g.P, p = n % g.P;
    const int od = p / (g.out[1] * g.out[2]), oh = (p / g.out[2]) % g.out[1], ow = p % g.out[2];
    Column c;
    c.z = od * g.stride[0] - g.pad[0];
    c.y = oh * g.stride[1] - g.pad[1];
    c.x = ow * g.stride[2] - g.pad[2];
    c.base = (static_cast<int64_t>(b) * g.cin + group * g.cin_g) * g.Q +
             (static_cast<int64_t>(c.z) * g.in[1] + c.y) * g.in[2] + c.x;
    return c;
  }
  __device__ float a(int m, int k) const { return w[static_cast<int64_t>(group * g.cout_g + m) * g.K + k]; }
  __device__ float b(const Column& c, int k) const {
    const int4 e = table[k];
    if (!inside(c.z + e.y, c.y + e.z, c.x + e.w, g.in)) return 0.0f;
    return x[c.base + e.x];
  }
};

template <bool kTf32, bool kLarge>
__global__ void __launch_bounds__(kThreads, kMinBlocks<kTf32, kLarge>)
    conv_forward_kernel(Geom g, const float* x, const float* w, const float* bias, const int4* table, float* y) {
  using T = Tile<kTf32, kLarge>;
  const int group = blockIdx.z;
  const Forward op{g, x, w, table, group};
  const int M = g.cout_g, N = g.batch * g.P, m0 = blockIdx.y * T::M, n0 = blockIdx.x * T::N;
  float acc[T::kFrags][4] = {};
  tile_loop<kTf32, kLarge>(op, M, N, 0, g.K, m0, n0, acc);
#pragma unroll
  for (int f = 0; f < T::kFrags; ++f)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      int r, c;
      tile_position<kTf32, kLarge>(f, i, r, c);
      const int m = m0 + r, n = n0 + c;
      if (m >= M || n >= N) continue;
      const int co = group * g.cout_g + m, b = n / g.P, p = n % g.P;
      y[(static_cast<int64_t>(b) * g.cout + co) * g.P + p] = acc[f][i] + (bias ? bias[co] : 0.0f);
    }
}

// ---- data gradient: M = C_in/G, N = batch x (input positions of one phase), k = (co, offset) -------------
// The phases of the strides and their tables are in cuda/conv_tables.cuh.

struct DataGrad {
  Geom g;
  Phase ph;
  const float *gy, *w;  // the group's first output channel of batch item 0, and its first filter
  const int4* table;
  const int* weight_offsets;
  struct Column {
    int64_t base;  // offset in gy of (b, o = j)
    int j[3];
  };
  __device__ Column column(int n) const {
    Column c;
    int b;
    phase_column(ph, n, b, c.j);
    c.base =
        static_cast<int64_t>(b) * g.cout * g.P + (static_cast<int64_t>(c.j[0]) * g.out[1] + c.j[1]) * g.out[2] + c.j[2];
    return c;
  }
  // w[co, ci, offset] with k = (co, tap).
  __device__ float a(int m, int k) const { return w[weight_offsets[k] + m * g.KK]; }
  // gy at output o = j + delta, if that is inside.
  __device__ float b(const Column& c, int k) const {
    const int4 e = table[k];
    if (!inside(c.j[0] + e.y, c.j[1] + e.z, c.j[2] + e.w, g.out)) return 0.0f;
    return gy[c.base + e.x];
  }
};

template <bool kTf32, bool kLarge>
__global__ void __launch_bounds__(kThreads, kMinBlocks<kTf32, kLarge>)
    conv_data_grad_kernel(Geom g, Phases phases, const float* gy, const float* w, const int4* tables,
                          const int* weight_offsets, float* gx) {
  const int slot = blockIdx.z / g.groups, group = blockIdx.z % g.groups;
  const Phase ph = phases.phase[slot];
  using T = Tile<kTf32, kLarge>;
  const int M = g.cin_g, N = g.batch * ph.P, m0 = blockIdx.y * T::M, n0 = blockIdx.x * T::N;
  if (n0 >= N) return;  // the grid has the columns of the launch's largest phase
  const DataGrad op{g,
                    ph,
                    gy + static_cast<int64_t>(group) * g.cout_g * g.P,
                    w + static_cast<int64_t>(group) * g.cout_g * g.cin_g * g.KK,
                    tables + static_cast<int64_t>(slot) * phases.table_stride,
                    weight_offsets + static_cast<int64_t>(slot) * phases.table_stride};
  float acc[T::kFrags][4] = {};
  tile_loop<kTf32, kLarge>(op, M, N, 0, ph.K, m0, n0, acc);  // a phase no offset reaches gets zeros
#pragma unroll
  for (int f = 0; f < T::kFrags; ++f)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      int r, c;
      tile_position<kTf32, kLarge>(f, i, r, c);
      const int m = m0 + r, n = n0 + c;
      if (m >= M || n >= N) continue;
      int b, j[3];
      phase_column(ph, n, b, j);
      const int q = ((ph.first[0] + j[0] * g.stride[0]) * g.in[1] + ph.first[1] + j[1] * g.stride[1]) * g.in[2] +
                    ph.first[2] + j[2] * g.stride[2];
      gx[(static_cast<int64_t>(b) * g.cin + group * g.cin_g + m) * g.Q + q] = acc[f][i];
    }
}

// ---- weight gradient: M = C_out/G, N = K, reduction over (b, p) ---------------------------------------
struct WeightGrad {
  Geom g;
  const float *gy, *x;  // the group's first output and input channel of batch item 0
  const int4 *table, *corners;
  using Column = int4;  // the table entry of the column's k: plane offset and reaches
  __device__ Column column(int n) const { return table[n]; }
  __device__ float a(int m, int k) const {
    uint32_t b, p;
    g.by_P.divmod(k, b, p);
    return gy[static_cast<int64_t>(b) * (g.cout * g.P) + m * g.P + p];
  }
  __device__ float b(const Column& c, int k) const {
    uint32_t b, p;
    g.by_P.divmod(k, b, p);
    const int4 corner = corners[p];
    if (!inside(corner.x + c.y, corner.y + c.z, corner.z + c.w, g.in)) return 0.0f;
    return x[static_cast<int64_t>(b) * (g.cin * g.Q) + c.x + corner.w];
  }
};

template <bool kTf32, bool kLarge>
__global__ void __launch_bounds__(kThreads, kMinBlocks<kTf32, kLarge>)
    conv_weight_grad_kernel(Geom g, const float* gy, const float* x, const int4* table, const int4* corners,
                            int64_t seg, float* out) {
  const int group = blockIdx.z % g.groups, split = blockIdx.z / g.groups;
  const WeightGrad op{g, gy + static_cast<int64_t>(group) * g.cout_g * g.P,
                      x + static_cast<int64_t>(group) * g.cin_g * g.Q, table, corners};
  using T = Tile<kTf32, kLarge>;
  const int M = g.cout_g, N = g.K, m0 = blockIdx.y * T::M, n0 = blockIdx.x * T::N;
  const int64_t total = static_cast<int64_t>(g.batch) * g.P;
  const int64_t end = (split + 1) * seg < total ? (split + 1) * seg : total;
  const int k_begin = static_cast<int>(split * seg), k_end = static_cast<int>(end);
  float acc[T::kFrags][4] = {};
  if (k_begin < k_end) tile_loop<kTf32, kLarge>(op, M, N, k_begin, k_end, m0, n0, acc);
  // With one segment, out is gw [C_out, K]; with several, partial sums [splits, C_out, K].
  float* dst = out + static_cast<int64_t>(split) * g.cout * g.K;
#pragma unroll
  for (int f = 0; f < T::kFrags; ++f)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      int r, c;
      tile_position<kTf32, kLarge>(f, i, r, c);
      const int m = m0 + r, n = n0 + c;
      if (m < M && n < N) dst[static_cast<int64_t>(group * g.cout_g + m) * g.K + n] = acc[f][i];
    }
}

void check(const Tensor& t, const char* what) {
  MINIDL_CHECK(!t.defined() || (t.dtype() == kFloat32 && t.is_contiguous()), "conv: the CUDA kernels take contiguous ",
               "float32 tensors; the ", what, " is ", t.meta_str(), " (float64 is for CPU gradchecks)");
}

// Checked in 64 bits on the shape itself, before geom_of narrows it to int: the tiles index up to
// 128 past an extent (n0 + 127, k0 + kSlice), and a table entry adds a kernel offset's reach to a
// channel's plane offset and a window corner (a data-gradient entry, a phase's delta to an output
// channel's plane), so both keep that headroom below 2^31.
void check_limits(const ConvShape& s) {
  int64_t P = 1, Q = 1, KK = 1, padded_in = 1, reach_out = 1;
  for (int d = 0; d < 3; ++d) {
    P *= s.out[d];
    Q *= s.in[d];
    KK *= s.kernel[d];
    padded_in *= s.in[d] + 2 * s.padding[d] + (s.kernel[d] - 1) * s.dilation[d] + 1;
    reach_out *= s.out[d] + s.in[d] + s.padding[d] + (s.kernel[d] - 1) * s.dilation[d] + 1;  // bounds j + delta
  }
  const int64_t big = (int64_t{1} << 31) - 128, cin_g = s.in_channels / s.groups, K = cin_g * KK;
  MINIDL_CHECK(s.batch * std::max(P, Q) < big && s.in_channels * Q < big && s.out_channels * P < big && K < big &&
                   s.out_channels * K < big && (cin_g * Q + padded_in) < big && (s.out_channels * P + reach_out) < big,
               "conv: this problem has more than 2^31 elements per tensor, beyond the CUDA kernels' 32-bit indexing");
  MINIDL_CHECK(s.groups <= 65535, "conv: ", s.groups, " groups are more than the CUDA kernels launch (65535)");
}

std::atomic<GemmPath>& path_setting() {
  static std::atomic<GemmPath> path{[] {
    const char* env = std::getenv("MINIDL_CONV");
    return env && std::strcmp(env, "tf32") == 0 ? GemmPath::Tf32 : GemmPath::Simt;
  }()};
  return path;
}

std::atomic<ConvTile>& tile_setting() {
  static std::atomic<ConvTile> tile{[] {
    const char* env = std::getenv("MINIDL_CONV_TILE");
    if (env && std::strcmp(env, "small") == 0) return ConvTile::Small;
    if (env && std::strcmp(env, "large") == 0) return ConvTile::Large;
    return ConvTile::Auto;
  }()};
  return tile;
}

int64_t tiles(int64_t n, int tile) { return (n + tile - 1) / tile; }

// Whether the GEMM of M rows by N columns, z deep (groups, segments), takes the large tile: with more
// than 64 rows (fewer and half of it would multiply padding) and blocks enough to fill the GPU twice
// over (or 256, what the weight gradient's segments aim at).
bool large_tile(int M, int64_t N, int64_t z, int device) {
  switch (tile_setting().load()) {
    case ConvTile::Small: return false;
    case ConvTile::Large: return true;
    case ConvTile::Auto: break;
  }
  return M > 64 && tiles(M, 128) * tiles(N, 128) * z >= std::min(256, 2 * multiprocessors(device));
}

// Calls launch(tf32, large) with std::bool_constant arguments for the current path and the tile
// chosen, so that each launch site names its kernel once, as
// kernel<decltype(tf32)::value, decltype(large)::value>, and sizes its grid with the same tile.
template <class Launch>
void on_current_path(bool large, Launch&& launch) {
  auto with_tile = [&](auto tf32) {
    if (large)
      launch(tf32, std::true_type{});
    else
      launch(tf32, std::false_type{});
  };
  if (conv_path() == GemmPath::Tf32)
    with_tile(std::true_type{});
  else
    with_tile(std::false_type{});
}

// The grid of a GEMM of M x N in tiles of `tile`, z deep.
template <class Large>
dim3 grid(int N, int M, int z, Large) {
  constexpr int tile = Large::value ? 128 : 64;
  return dim3(static_cast<unsigned>(tiles(N, tile)), static_cast<unsigned>(tiles(M, tile)), static_cast<unsigned>(z));
}

}  // namespace

void set_conv_path(GemmPath path) { path_setting().store(path); }
GemmPath conv_path() { return path_setting().load(); }
void set_conv_tile(ConvTile tile) { tile_setting().store(tile); }
ConvTile conv_tile() { return tile_setting().load(); }
ConvTableStats conv_table_stats() { return kept_tables().stats(); }

void conv_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvShape& s, const Tensor& y) {
  check(x, "input");
  check(w, "weight");
  check(bias, "bias");
  check_limits(s);
  const Geom g = geom_of(s);
  if (y.numel() == 0) return;
  const int device = x.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  const cudaStream_t stream = stream_of(device);
  if (g.K == 0) {
    if (bias.defined())
      copy(bias.view({1, g.cout, 1}).expand({g.batch, g.cout, g.P}), y.view({g.batch, g.cout, g.P}));
    else
      fill(y, 0.0);
    return;
  }
  const Table table(table_key(TableKind::Reduction, g), sizeof(int4) * g.K, device, stream, [&](void* p) {
    build_table<<<(g.K + 255) / 256, 256, 0, stream>>>(g, static_cast<int4*>(p));
    MINIDL_CUDA_CHECK_LAUNCH("conv (table)");
  });
  const bool use_large = large_tile(g.cout_g, int64_t{g.batch} * g.P, g.groups, device);
  on_current_path(use_large, [&](auto tf32, auto large) {
    conv_forward_kernel<decltype(tf32)::value, decltype(large)::value>
        <<<grid(g.batch * g.P, g.cout_g, g.groups, large), kThreads, 0, stream>>>(
            g, device_data<float>(x), device_data<float>(w), bias.defined() ? device_data<float>(bias) : nullptr,
            table.as<int4>(), device_data<float>(y));
  });
  MINIDL_CUDA_CHECK_LAUNCH("conv");
}

void conv_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const ConvShape& s, const Tensor& gx,
                   const Tensor& gw, const Tensor& gb) {
  check(gy, "output gradient");
  check_limits(s);
  const Geom g = geom_of(s);
  const int device = gy.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  const cudaStream_t stream = stream_of(device);
  if (gb.defined()) reduce(ReduceOp::Sum, gy.view({g.batch, g.cout, g.P}), {0, 2}, gb);
  if (gx.defined() && gx.numel() > 0) {
    check(w, "weight");
    // Every phase (the strides' product of them; one for unit strides) writes its positions of gx,
    // zeros where no offset reaches an output; up to kPhasesPerLaunch phases share a launch (and its
    // tile choice), with tables of at most C_out/G x KK entries each: the int4 entries of the launch's
    // phases, then their weight offsets.
    std::vector<Phase> all;
    int first[3];
    for (first[0] = 0; first[0] < g.stride[0]; ++first[0])
      for (first[1] = 0; first[1] < g.stride[1]; ++first[1])
        for (first[2] = 0; first[2] < g.stride[2]; ++first[2]) {
          const Phase ph = phase_of(g, first);
          if (ph.P > 0) all.push_back(ph);  // an input shorter than the stride has no position in a phase
        }
    const int per_launch = std::min(kPhasesPerLaunch, 65535 / g.groups), most = g.cout_g * g.KK;
    for (size_t at = 0; at < all.size(); at += per_launch) {
      Phases phases{};
      phases.count = static_cast<int>(std::min<size_t>(per_launch, all.size() - at));
      phases.table_stride = most;
      int widest = 0, longest = 0;  // the launch's most columns (positions) and largest reduction
      for (int i = 0; i < phases.count; ++i) {
        phases.phase[i] = all[at + i];
        widest = std::max(widest, phases.phase[i].P);
        longest = std::max(longest, phases.phase[i].K);
      }
      const int64_t entries = int64_t{most} * phases.count;
      const Table tables(table_key(TableKind::Phases, g, static_cast<int>(at)), (sizeof(int4) + sizeof(int)) * entries,
                         device, stream, [&](void* p) {
                           if (longest == 0) return;  // no phase has a tap: nothing reads the tables
                           build_phase_tables<<<dim3((longest + 255) / 256, phases.count), 256, 0, stream>>>(
                               g, phases, static_cast<int4*>(p),
                               reinterpret_cast<int*>(static_cast<int4*>(p) + entries));
                           MINIDL_CUDA_CHECK_LAUNCH("conv backward (tables)");
                         });
      const int* weight_offsets = reinterpret_cast<const int*>(tables.as<int4>() + entries);
      const int64_t columns = int64_t{g.batch} * widest, z = int64_t{g.groups} * phases.count;
      const bool use_large = large_tile(g.cin_g, columns, z, device);
      on_current_path(use_large, [&](auto tf32, auto large) {
        conv_data_grad_kernel<decltype(tf32)::value, decltype(large)::value>
            <<<grid(static_cast<int>(columns), g.cin_g, static_cast<int>(z), large), kThreads, 0, stream>>>(
                g, phases, device_data<float>(gy), device_data<float>(w), tables.as<int4>(), weight_offsets,
                device_data<float>(gx));
      });
      MINIDL_CUDA_CHECK_LAUNCH("conv backward (input gradient)");
    }
  }
  if (gw.defined() && gw.numel() > 0) {
    check(x, "input");
    const int64_t total = static_cast<int64_t>(g.batch) * g.P;
    if (total == 0) {
      fill(gw, 0.0);
      return;
    }
    // Enough segments that about 256 blocks share the work, each segment at least 1024 long: a
    // function of the shapes (and the tile) only, so the sums are the same on every run.
    const int64_t most = std::max<int64_t>(1, std::min<int64_t>(total / 1024, 65535 / g.groups));
    auto splits_for = [&](int tile) {
      const int64_t blocks = tiles(g.K, tile) * tiles(g.cout_g, tile) * g.groups;
      return std::clamp<int64_t>(256 / std::max<int64_t>(1, blocks), 1, most);
    };
    const bool use_large = large_tile(g.cout_g, g.K, g.groups * splits_for(128), device);
    const int64_t splits = splits_for(use_large ? 128 : 64);
    const int64_t seg = ((total + splits - 1) / splits + kSlice - 1) / kSlice * kSlice;
    const int nsplit = static_cast<int>((total + seg - 1) / seg);
    const Table table(table_key(TableKind::Reduction, g), sizeof(int4) * g.K, device, stream, [&](void* p) {
      build_table<<<(g.K + 255) / 256, 256, 0, stream>>>(g, static_cast<int4*>(p));
      MINIDL_CUDA_CHECK_LAUNCH("conv backward (table)");
    });
    const Table corners(table_key(TableKind::Corners, g), sizeof(int4) * g.P, device, stream, [&](void* p) {
      build_corners<<<(g.P + 255) / 256, 256, 0, stream>>>(g, static_cast<int4*>(p));
      MINIDL_CUDA_CHECK_LAUNCH("conv backward (corners)");
    });
    const int64_t n = static_cast<int64_t>(g.cout) * g.K;
    // With one segment the kernel writes gw itself; with several, partial sums that add_splits adds.
    const Scratch partial(nsplit == 1 ? 0 : sizeof(float) * n * nsplit, device);
    float* out = nsplit == 1 ? device_data<float>(gw) : partial.as<float>();
    on_current_path(use_large, [&](auto tf32, auto large) {
      conv_weight_grad_kernel<decltype(tf32)::value, decltype(large)::value>
          <<<grid(g.K, g.cout_g, g.groups * nsplit, large), kThreads, 0, stream>>>(
              g, device_data<float>(gy), device_data<float>(x), table.as<int4>(), corners.as<int4>(), seg, out);
    });
    MINIDL_CUDA_CHECK_LAUNCH("conv backward (weight gradient)");
    if (nsplit > 1) {
      launch_add_splits(partial.as<float>(), nsplit, 1, n, device_data<float>(gw), n, device,
                        "conv backward (weight gradient segments)");
    }
  }
}

}  // namespace minidl::cuda
