// CUDA convolution, forward and both backward passes, as implicit GEMMs: the im2col matrix is never
// materialised; each tile of it is gathered from the input straight into shared memory.
//
// One tile loop serves the three passes (per group g, with K = C_in/G prod(kernel), P = prod(out),
// Q = prod(in)):
//   forward      y[co, (b, p)]   = sum over k = (ci, kernel offset) of w[co, k] x_col[k, (b, p)]
//   data grad    gx[ci, (b, q)]  = sum over k = (co, kernel offset) of w[co, ci, offset] gy[co, (b, p(q, offset))]
//   weight grad  gw[co, k]       = sum over (b, p) of gy[co, (b, p)] x_col[k, (b, p)]
// A block computes a 64 x 64 tile of the GEMM in slices of 16 along its reduction, staging each slice of
// both operands in shared memory (double-buffered, the next slice's loads in flight while this one is
// multiplied), each of 256 threads accumulating a 4 x 4 sub-tile. Every thread loads the same column of
// the gathered operand for the whole loop, so what that column needs (its batch item, its output or input
// position, its base offset) is worked out once; what a reduction index needs (its channel, its kernel
// offset) comes from a small table built on the device before the launch, so the gather costs a table
// read, three unsigned bounds checks and one load instead of a cascade of integer divisions. The
// divisions left in the loops (by the output plane; by the stride, in a data gradient whose strides are
// not all 1) are a multiply and a shift (fast_divide.h).
//
// Two paths share the loop (conv_path(), as matmul's gemm_path()): SIMT float32, and TF32 tensor cores
// (cuda/mma.cuh), which round each staged element to TF32 and replace the 4 x 4 FFMA sub-tiles with
// mma.sync tiles of 16 x 8; the gathers, tables and epilogues are the same code.
//
// Positions outside the input read as zero (padding). The data gradient of a strided convolution visits
// every (input position, kernel offset) pair and keeps those that land on an output: simple, exact, and
// wasteful by the stride's product; a stride-aware split is the next step for speed. The weight gradient
// reduces over every batch item and output position, which for few output channels is a long reduction
// into few tiles: it is split into segments whose partial sums a second kernel adds in segment order, so
// the result stays deterministic (no atomics anywhere).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/fast_divide.h"
#include "cuda/kernels.h"
#include "cuda/mma.cuh"

namespace minidl::cuda {
namespace {

constexpr int kTile = 64, kSlice = 16, kThreads = 256;

// ConvShape for the device (std::array is not usable in device code), 32-bit where the front end's
// checks allow it.
struct Geom {
  int batch, cin, cout, groups, cin_g, cout_g;
  int in[3], kernel[3], out[3], stride[3], pad[3], dil[3];
  int KK, P, Q, K;  // kernel volume, output plane, input plane, C_in/G * KK
  // Division by the output plane and by the strides in the inner loops, without a divider.
  FastDivide by_P, by_stride[3];
};

Geom geom_of(const ConvShape& s) {
  Geom g{};
  g.batch = static_cast<int>(s.batch);
  g.cin = static_cast<int>(s.in_channels);
  g.cout = static_cast<int>(s.out_channels);
  g.groups = static_cast<int>(s.groups);
  g.cin_g = g.cin / g.groups;
  g.cout_g = g.cout / g.groups;
  g.KK = g.P = g.Q = 1;
  for (int d = 0; d < 3; ++d) {
    g.in[d] = static_cast<int>(s.in[d]);
    g.kernel[d] = static_cast<int>(s.kernel[d]);
    g.out[d] = static_cast<int>(s.out[d]);
    g.stride[d] = static_cast<int>(s.stride[d]);
    g.pad[d] = static_cast<int>(s.padding[d]);
    g.dil[d] = static_cast<int>(s.dilation[d]);
    g.KK *= g.kernel[d];
    g.P *= g.out[d];
    g.Q *= g.in[d];
  }
  g.K = g.cin_g * g.KK;
  g.by_P = FastDivide::of(std::max(g.P, 1));
  for (int d = 0; d < 3; ++d) g.by_stride[d] = FastDivide::of(g.stride[d]);
  return g;
}

// Table entry of a reduction index k = (channel, kernel offset), one 16-byte load in the gathers:
//   x: the channel's plane offset plus the offset's reach inside the plane (forward and weight grad), or
//      the output channel's plane offset (data grad);
//   y, z, w: the offset's reach along each spatial dim, (kernel index) x dilation.
// The data grad's weight-like operand also needs, per k = (co, offset), the offset of w[co, 0, offset]
// (weight_offsets; + ci * KK at use).
__global__ void build_table(Geom g, bool data_grad, int4* table, int* weight_offsets) {
  const int n = data_grad ? g.cout_g * g.KK : g.K;
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  const int c = k / g.KK, r = k % g.KK;
  const int kd = r / (g.kernel[1] * g.kernel[2]), kh = (r / g.kernel[2]) % g.kernel[1], kw = r % g.kernel[2];
  const int dz = kd * g.dil[0], dy = kh * g.dil[1], dx = kw * g.dil[2];
  const int plane = data_grad ? c * g.P : c * g.Q + (dz * g.in[1] + dy) * g.in[2] + dx;
  table[k] = make_int4(plane, dz, dy, dx);
  if (data_grad) weight_offsets[k] = (c * g.cin_g) * g.KK + r;
}

// Output position p -> its window's corner in the input (x, y, z; may be negative: padding) and the
// corner's offset in an input plane (w).
__global__ void build_corners(Geom g, int4* corners) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= g.P) return;
  const int od = p / (g.out[1] * g.out[2]), oh = (p / g.out[2]) % g.out[1], ow = p % g.out[2];
  const int z = od * g.stride[0] - g.pad[0], y = oh * g.stride[1] - g.pad[1], x = ow * g.stride[2] - g.pad[2];
  corners[p] = make_int4(z, y, x, (z * g.in[1] + y) * g.in[2] + x);
}

// One unsigned comparison per dim: a negative coordinate wraps to above any extent.
__device__ __forceinline__ bool inside(int z, int y, int x, const int (&n)[3]) {
  return static_cast<unsigned>(z) < static_cast<unsigned>(n[0]) &&
         static_cast<unsigned>(y) < static_cast<unsigned>(n[1]) &&
         static_cast<unsigned>(x) < static_cast<unsigned>(n[2]);
}

// Where element acc[f][i] of a thread's accumulators sits in the block's 64 x 64 tile.
//   SIMT: thread (tx, ty) = (t % 16, t / 16) holds the 4 x 4 at rows 4 ty + f, columns 4 tx + i.
//   TF32: warp w holds the 32 x 16 at rows 32 (w / 4), columns 16 (w % 4), as 2 x 2 mma tiles of 16 x 8;
//         acc[f] is tile (f / 2, f % 2) as mma_tf32_16x8x8 leaves it (d[i] at row g + 8 (i / 2), column
//         2 t + i % 2 with g = lane / 4, t = lane % 4: cuda/mma.cuh).
template <bool kTf32>
__device__ __forceinline__ void tile_position(int f, int i, int& row, int& col) {
  const int t = threadIdx.x;
  if (kTf32) {
    const int warp = t / kWarp, lane = t % kWarp;
    row = (warp / 4) * 32 + (f / 2) * 16 + lane / 4 + 8 * (i / 2);
    col = (warp % 4) * 16 + (f % 2) * 8 + 2 * (lane % 4) + i % 2;
  } else {
    row = (t / 16) * 4 + f;
    col = (t % 16) * 4 + i;
  }
}

// The shared tile loop. Op supplies a(m, k) (the weight-like operand, rows m), a per-thread column state
// for n, b(state, k) (the gathered operand) and the reduction range; acc receives the thread's 16
// elements of the tile (tile_position says which). Thread t loads row t / 4 of A at k-slice positions
// (t % 4) * 4 + 0..3, and column t % 64 of B at k-slice positions t / 64 + 4 j.
//
// kTf32 multiplies on the tensor cores: the elements are rounded to TF32 as they go into shared memory
// (once each, though two warps read each), and each warp's slice of 16 is two k-steps of four
// mma_tf32_16x8x8, whose fragments are 32-bit loads. Rows of 64 + 8 floats put the eight rows g and
// four columns t a fragment load touches in 32 different banks (8 t + g); the SIMT path's float4 row
// reads are conflict-free at any width, and 64 + 4 halves the conflicts of its column-wise stores.
template <bool kTf32, class Op>
__device__ void tile_loop(const Op& op, int M, int N, int k_begin, int k_end, int m0, int n0, float (&acc)[4][4]) {
  constexpr int kRow = kTile + (kTf32 ? 8 : 4);
  __shared__ __align__(16) float As[2][kSlice][kRow];
  __shared__ __align__(16) float Bs[2][kSlice][kRow];
  const int t = threadIdx.x;
  const int am = m0 + t / 4, ak = (t % 4) * 4;
  const int bn = n0 + t % kTile, bk = t / kTile;
  const typename Op::Column col = op.column(bn < N ? bn : N - 1);
  float ra[4], rb[4];
  auto load = [&](int k0) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int k = k0 + ak + j;
      ra[j] = am < M && k < k_end ? op.a(am, k) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int k = k0 + bk + 4 * j;
      rb[j] = bn < N && k < k_end ? op.b(col, k) : 0.0f;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int j = 0; j < 4; ++j) As[buf][ak + j][t / 4] = kTf32 ? round_to_tf32(ra[j]) : ra[j];
#pragma unroll
    for (int j = 0; j < 4; ++j) Bs[buf][bk + 4 * j][t % kTile] = kTf32 ? round_to_tf32(rb[j]) : rb[j];
  };
  // The SIMT path's 4 x 4 per thread, and the TF32 path's warp tile corner and lane coordinates.
  const int tx = t % 16, ty = t / 16;
  const int wm = (t / kWarp / 4) * 32, wn = (t / kWarp % 4) * 16, g = t % kWarp / 4, q = t % 4;
  load(k_begin);
  store(0);
  __syncthreads();
  int buf = 0;
  for (int k0 = k_begin; k0 < k_end; k0 += kSlice) {
    const bool more = k0 + kSlice < k_end;
    if (more) load(k0 + kSlice);
    if (kTf32) {
#pragma unroll
      for (int k = 0; k < kSlice; k += 8) {
        float a[2][4], b[2][2];
#pragma unroll
        for (int f = 0; f < 2; ++f) {
          a[f][0] = As[buf][k + q][wm + 16 * f + g];
          a[f][1] = As[buf][k + q][wm + 16 * f + g + 8];
          a[f][2] = As[buf][k + q + 4][wm + 16 * f + g];
          a[f][3] = As[buf][k + q + 4][wm + 16 * f + g + 8];
          b[f][0] = Bs[buf][k + q][wn + 8 * f + g];
          b[f][1] = Bs[buf][k + q + 4][wn + 8 * f + g];
        }
#pragma unroll
        for (int f = 0; f < 4; ++f) mma_tf32_16x8x8(acc[f], a[f / 2], b[f % 2]);
      }
    } else {
#pragma unroll
      for (int k = 0; k < kSlice; ++k) {
        const float4 a = load4(&As[buf][k][ty * 4]), b = load4(&Bs[buf][k][tx * 4]);
        const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
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

template <bool kTf32>
__global__ void __launch_bounds__(kThreads)
    conv_forward_kernel(Geom g, const float* x, const float* w, const float* bias, const int4* table, float* y) {
  const int group = blockIdx.z;
  const Forward op{g, x, w, table, group};
  const int M = g.cout_g, N = g.batch * g.P, m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile;
  float acc[4][4] = {};
  tile_loop<kTf32>(op, M, N, 0, g.K, m0, n0, acc);
#pragma unroll
  for (int f = 0; f < 4; ++f)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      int r, c;
      tile_position<kTf32>(f, i, r, c);
      const int m = m0 + r, n = n0 + c;
      if (m >= M || n >= N) continue;
      const int co = group * g.cout_g + m, b = n / g.P, p = n % g.P;
      y[(static_cast<int64_t>(b) * g.cout + co) * g.P + p] = acc[f][i] + (bias ? bias[co] : 0.0f);
    }
}

// ---- data gradient: M = C_in/G, N = batch x Q, reduction over k = (co, offset) -----------------------
// kUnitStride: every stride is 1 (most of W2's convolutions), so the output position an input position
// feeds through an offset is the difference itself, and the divisions by the stride drop out.
template <bool kUnitStride>
struct DataGrad {
  Geom g;
  const float *gy, *w;
  const int4* table;
  const int* weight_offsets;
  int group;
  struct Column {
    int64_t base;  // offset in gy of (b, first output channel of the group)
    int z, y, x;   // the input position plus padding
  };
  __device__ Column column(int n) const {
    const int b = n / g.Q, q = n % g.Q;
    Column c;
    c.z = q / (g.in[1] * g.in[2]) + g.pad[0];
    c.y = (q / g.in[2]) % g.in[1] + g.pad[1];
    c.x = q % g.in[2] + g.pad[2];
    c.base = (static_cast<int64_t>(b) * g.cout + group * g.cout_g) * g.P;
    return c;
  }
  // w[co, ci, offset] with k = (co, offset).
  __device__ float a(int m, int k) const {
    return w[static_cast<int64_t>(group * g.cout_g) * g.cin_g * g.KK + weight_offsets[k] + m * g.KK];
  }
  // The output position this input position feeds through the kernel offset, if any.
  __device__ float b(const Column& c, int k) const {
    const int4 e = table[k];
    int o[3] = {c.z - e.y, c.y - e.z, c.x - e.w};
    if (kUnitStride) {
      if (!inside(o[0], o[1], o[2], g.out)) return 0.0f;
    } else {
#pragma unroll
      for (int d = 0; d < 3; ++d) {
        if (o[d] < 0) return 0.0f;
        uint32_t q, r;
        g.by_stride[d].divmod(o[d], q, r);
        if (r != 0 || q >= static_cast<uint32_t>(g.out[d])) return 0.0f;
        o[d] = static_cast<int>(q);
      }
    }
    return gy[c.base + e.x + (static_cast<int64_t>(o[0]) * g.out[1] + o[1]) * g.out[2] + o[2]];
  }
};

template <bool kTf32, bool kUnitStride>
__global__ void __launch_bounds__(kThreads)
    conv_data_grad_kernel(Geom g, const float* gy, const float* w, const int4* table, const int* weight_offsets,
                          float* gx) {
  const int group = blockIdx.z;
  const DataGrad<kUnitStride> op{g, gy, w, table, weight_offsets, group};
  const int M = g.cin_g, N = g.batch * g.Q, m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile;
  float acc[4][4] = {};
  tile_loop<kTf32>(op, M, N, 0, g.cout_g * g.KK, m0, n0, acc);
#pragma unroll
  for (int f = 0; f < 4; ++f)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      int r, c;
      tile_position<kTf32>(f, i, r, c);
      const int m = m0 + r, n = n0 + c;
      if (m >= M || n >= N) continue;
      const int b = n / g.Q, q = n % g.Q;
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

template <bool kTf32>
__global__ void __launch_bounds__(kThreads)
    conv_weight_grad_kernel(Geom g, const float* gy, const float* x, const int4* table, const int4* corners,
                            int64_t seg, float* out) {
  const int group = blockIdx.z % g.groups, split = blockIdx.z / g.groups;
  const WeightGrad op{g, gy + static_cast<int64_t>(group) * g.cout_g * g.P,
                      x + static_cast<int64_t>(group) * g.cin_g * g.Q, table, corners};
  const int M = g.cout_g, N = g.K, m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile;
  const int64_t total = static_cast<int64_t>(g.batch) * g.P;
  const int64_t end = (split + 1) * seg < total ? (split + 1) * seg : total;
  const int k_begin = static_cast<int>(split * seg), k_end = static_cast<int>(end);
  float acc[4][4] = {};
  if (k_begin < k_end) tile_loop<kTf32>(op, M, N, k_begin, k_end, m0, n0, acc);
  // With one segment, out is gw [C_out, K]; with several, partial sums [splits, C_out, K].
  float* dst = out + static_cast<int64_t>(split) * g.cout * g.K;
#pragma unroll
  for (int f = 0; f < 4; ++f)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      int r, c;
      tile_position<kTf32>(f, i, r, c);
      const int m = m0 + r, n = n0 + c;
      if (m < M && n < N) dst[static_cast<int64_t>(group * g.cout_g + m) * g.K + n] = acc[f][i];
    }
}

__global__ void add_segments(const float* partial, int splits, int64_t n, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float s = partial[i];
  for (int k = 1; k < splits; ++k) s += partial[static_cast<int64_t>(k) * n + i];
  out[i] = s;
}

// Device scratch from the caching allocator, freed at the end of the scope (stream-ordered reuse makes
// that safe while the kernels that read it are still queued).
class Scratch {
 public:
  Scratch(size_t bytes, int device) : device_(device), p_(device_malloc(std::max<size_t>(bytes, 16), device)) {}
  ~Scratch() { device_free(p_, device_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  int device_;
  void* p_;
};

void check(const Tensor& t, const char* what) {
  MINIDL_CHECK(!t.defined() || (t.dtype() == kFloat32 && t.is_contiguous()), "conv: the CUDA kernels take contiguous ",
               "float32 tensors; the ", what, " is ", t.meta_str(), " (float64 is for CPU gradchecks)");
}

// Checked in 64 bits on the shape itself, before geom_of narrows it to int: the tiles index up to
// 64 past an extent (n0 + 63, k0 + kSlice), and a table entry adds a kernel offset's reach to a
// channel's plane offset and a window corner, so both keep that headroom below 2^31.
void check_limits(const ConvShape& s) {
  int64_t P = 1, Q = 1, KK = 1, padded_in = 1;
  for (int d = 0; d < 3; ++d) {
    P *= s.out[d];
    Q *= s.in[d];
    KK *= s.kernel[d];
    padded_in *= s.in[d] + 2 * s.padding[d] + (s.kernel[d] - 1) * s.dilation[d] + 1;
  }
  const int64_t big = (int64_t{1} << 31) - 64, cin_g = s.in_channels / s.groups, K = cin_g * KK;
  MINIDL_CHECK(s.batch * std::max(P, Q) < big && s.in_channels * Q < big && s.out_channels * P < big && K < big &&
                   s.out_channels * K < big && (cin_g * Q + padded_in) < big,
               "conv: this problem has more than 2^31 elements per tensor, beyond the CUDA kernels' 32-bit indexing");
  MINIDL_CHECK(s.groups <= 65535, "conv: ", s.groups, " groups are more than the CUDA kernels launch (65535)");
}

dim3 grid(int N, int M, int z) { return dim3((N + kTile - 1) / kTile, (M + kTile - 1) / kTile, z); }

std::atomic<GemmPath>& path_setting() {
  static std::atomic<GemmPath> path{[] {
    const char* env = std::getenv("MINIDL_CONV");
    return env && std::strcmp(env, "tf32") == 0 ? GemmPath::Tf32 : GemmPath::Simt;
  }()};
  return path;
}

// Calls launch(std::true_type) on the TF32 path and launch(std::false_type) on the SIMT one, so that each
// launch site names its kernel once, as kernel<decltype(tf32)::value>.
template <class Launch>
void on_current_path(Launch&& launch) {
  if (conv_path() == GemmPath::Tf32)
    launch(std::true_type{});
  else
    launch(std::false_type{});
}

}  // namespace

void set_conv_path(GemmPath path) { path_setting().store(path); }
GemmPath conv_path() { return path_setting().load(); }

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
  const Scratch table(sizeof(int4) * g.K, device);
  build_table<<<(g.K + 255) / 256, 256, 0, stream>>>(g, false, table.as<int4>(), nullptr);
  MINIDL_CUDA_CHECK_LAUNCH("conv (table)");
  on_current_path([&](auto tf32) {
    conv_forward_kernel<decltype(tf32)::value><<<grid(g.batch * g.P, g.cout_g, g.groups), kThreads, 0, stream>>>(
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
    const int kd = g.cout_g * g.KK;
    if (kd == 0) {
      fill(gx, 0.0);
    } else {
      const Scratch table(sizeof(int4) * kd, device), weight_offsets(sizeof(int) * kd, device);
      build_table<<<(kd + 255) / 256, 256, 0, stream>>>(g, true, table.as<int4>(), weight_offsets.as<int>());
      MINIDL_CUDA_CHECK_LAUNCH("conv backward (table)");
      const bool unit_stride = g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1;
      on_current_path([&](auto tf32) {
        auto launch = [&](auto unit) {
          conv_data_grad_kernel<decltype(tf32)::value, decltype(unit)::value>
              <<<grid(g.batch * g.Q, g.cin_g, g.groups), kThreads, 0, stream>>>(
                  g, device_data<float>(gy), device_data<float>(w), table.as<int4>(), weight_offsets.as<int>(),
                  device_data<float>(gx));
        };
        if (unit_stride)
          launch(std::true_type{});
        else
          launch(std::false_type{});
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
    // function of the shapes only, so the sums are the same on every run.
    const int64_t tiles = static_cast<int64_t>((g.K + kTile - 1) / kTile) * ((g.cout_g + kTile - 1) / kTile) * g.groups;
    const int64_t most = std::max<int64_t>(1, std::min<int64_t>(total / 1024, 65535 / g.groups));
    const int64_t splits = std::clamp<int64_t>(256 / std::max<int64_t>(1, tiles), 1, most);
    const int64_t seg = ((total + splits - 1) / splits + kSlice - 1) / kSlice * kSlice;
    const int nsplit = static_cast<int>((total + seg - 1) / seg);
    const Scratch table(sizeof(int4) * g.K, device), corners(sizeof(int4) * g.P, device);
    build_table<<<(g.K + 255) / 256, 256, 0, stream>>>(g, false, table.as<int4>(), nullptr);
    build_corners<<<(g.P + 255) / 256, 256, 0, stream>>>(g, corners.as<int4>());
    MINIDL_CUDA_CHECK_LAUNCH("conv backward (tables)");
    const int64_t n = static_cast<int64_t>(g.cout) * g.K;
    // With one segment the kernel writes gw itself; with several, partial sums that add_segments adds.
    const Scratch partial(nsplit == 1 ? 0 : sizeof(float) * n * nsplit, device);
    float* out = nsplit == 1 ? device_data<float>(gw) : partial.as<float>();
    on_current_path([&](auto tf32) {
      conv_weight_grad_kernel<decltype(tf32)::value><<<grid(g.K, g.cout_g, g.groups * nsplit), kThreads, 0, stream>>>(
          g, device_data<float>(gy), device_data<float>(x), table.as<int4>(), corners.as<int4>(), seg, out);
    });
    MINIDL_CUDA_CHECK_LAUNCH("conv backward (weight gradient)");
    if (nsplit > 1) {
      add_segments<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(partial.as<float>(), nsplit, n,
                                                                               device_data<float>(gw));
      MINIDL_CUDA_CHECK_LAUNCH("conv backward (weight gradient segments)");
    }
  }
}

}  // namespace minidl::cuda
