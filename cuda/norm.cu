// CUDA batch norm and layer norm, forward and backward: the contracts of cpu/norm.h and the formulas
// derived at the top of cpu/norm.cpp. Data float32, read through its strides (any view, broadcast
// gradients of stride 0 included); every statistic and every sum in double, as on the CPU; save_mean and
// save_invstd float64; running statistics updated in place. Deterministic: no atomics, every sum is
// folded in an order fixed by the shapes alone (not by the GPU model or its number of SMs).
//
// Batch norm. A channel's N = B * S values are spread over the whole tensor, and the common shapes have
// few channels of many values ([64, 8, 4, 28, 28]: 8 channels of 200704), so one block per channel would
// leave most of the GPU idle. Each channel is cut into segments of at least kMinSegment values, enough of
// them that about kWantBlocks blocks exist; a block of 256 threads folds one segment into a partial state,
// and a second kernel, one thread per channel, folds that channel's segments in segment order (the
// segmented scheme of cuda/reduce.cu). An elementwise pass then writes the output (or gx).
//   forward: the state is Welford's (count, mean, M2), merged with Chan's formula. The CPU's two passes
//     would need a second read of x and two more launches; Welford in double is as stable (no
//     E[x^2] - E[x]^2 cancellation: a channel of values near 1000 with a spread of 0.1 loses nothing) and
//     reads x once. The per-channel kernel also updates the running statistics (unbiased variance) or, in
//     evaluation mode, only reads them.
//   backward: the state is the pair (sum g, sum g (x - mean)) over the same segments; the per-channel
//     kernel writes gbias and gweight and keeps the sums for the gx pass. Evaluation mode with only gx
//     wanted needs no sums (gx = w r g).
// Walking a segment, a thread visits values n, n + 256, ... of its channel, i.e. (b, s) = (n / S, n % S);
// it divides once and then steps b and s by 256 / S and 256 % S with one carry, so no per-element division.
// Neighbouring threads read neighbouring s, which coalesces for S >= 32; for [B, C] inputs (S = 1) they
// read rows C apart: correct but slower, acceptable for the small inputs of BatchNorm1d.
//
// Layer norm. A row's N values are the trailing (normalised) dims, usually contiguous: a warp takes a row
// of up to 1024 values, a block of 256 threads a longer one. The row is re-read from the cache, so the
// statistics are two-pass like the CPU's (mean, then squared deviations), with fixed-tree double sums
// (warp_sum / block_sum of cuda/common.cuh). gweight and gbias are column sums over the M rows: one thread
// per (column, segment of rows) sums its rows in order, consecutive threads taking consecutive columns so
// that the reads coalesce, and a second kernel sums each column's segments in order. Wide rows give
// enough threads with a single segment, which then writes the result directly.
//
// Every result is a double rounded once to float32, with the CPU's expressions in the CPU's order (the
// build's --fmad=false keeps a * b + c two roundings, as on the CPU); what differs from the CPU is only
// the association of the double sums, so the two agree to within an ulp of float32 in practice.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "autograd/functors.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

constexpr int kThreads = 256;  // every kernel's block size; the segment walk relies on it
constexpr int kRowsPerBlock = kThreads / kWarp;
constexpr int kLongRow = 1024;                 // layer norm: a block per row above this, a warp per row below
constexpr int64_t kMinSegment = 4096;          // batch norm: at least 16 values per thread in a segment
constexpr int64_t kWantBlocks = 1024;          // batch norm: blocks worth making (an H200 has 132 SMs)
constexpr int64_t kMinRowsPerSegment = 32;     // layer norm column sums: rows per segment at least
constexpr int64_t kWantColumnThreads = 65536;  // layer norm column sums: threads worth making

// ---- operands ---------------------------------------------------------------------------------------
// A [B, C, S] (or [M, N]) operand: element (i, j, k) at p[i s0 + j s1 + k s2]. Null when undefined.
template <class T>
struct Strided3 {
  T* p = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0;
  __device__ __forceinline__ T& at(int64_t i, int64_t j, int64_t k) const { return p[i * s0 + j * s1 + k * s2]; }
};

template <class T>
Strided3<T> strided3(const Tensor& t) {
  Strided3<T> v;
  if (!t.defined()) return v;
  v.p = device_data<std::remove_const_t<T>>(t);
  v.s0 = t.stride(0);
  v.s1 = t.stride(1);
  v.s2 = t.dim() > 2 ? t.stride(2) : 0;
  return v;
}

// A [C] (or [N]) operand that may be absent: weight, bias, running statistics, gweight, gbias.
template <class T>
struct Vec {
  T* p = nullptr;
  int64_t s = 0;
  __device__ __forceinline__ double get(int64_t i, double absent) const {
    return p ? static_cast<double>(p[i * s]) : absent;
  }
};

template <class T>
Vec<T> vec(const Tensor& t) {
  Vec<T> v;
  if (!t.defined()) return v;
  v.p = device_data<std::remove_const_t<T>>(t);
  v.s = t.stride(0);
  return v;
}

// Scratch for partial states: from the caching allocator, returned to the same stream's bin when the
// tensor dies, so its next user is ordered after the kernels queued here (as in cuda/reduce.cu).
Tensor scratch_bytes(size_t bytes, Device device) {
  return Tensor::empty({static_cast<int64_t>((bytes + 15) / 16) * 2}, kFloat64, device);
}

void check_float32(const char* op, const Tensor& t) {
  MINIDL_CHECK(t.dtype() == kFloat32, op, ": the CUDA kernels compute in float32, got ", t.meta_str(),
               " (float64 is for CPU gradchecks)");
}

void check_rank(const char* op, const Tensor& t, int64_t rank, const char* layout) {
  MINIDL_CHECK(t.dim() == rank, op, ": the CUDA kernel reads its data as ", layout, " (the front end's view), got ",
               t.meta_str());
}

unsigned blocks_of(int64_t n, int64_t per_block, const char* op) {
  const int64_t blocks = (n + per_block - 1) / per_block;
  MINIDL_CHECK(blocks < (int64_t{1} << 31), op, ": too much work for one launch (", n, " items)");
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

// ---- batch norm: the shape and its segments ----------------------------------------------------------
struct BnShape {
  int64_t B = 0, C = 0, S = 0, N = 0;  // N = B S values per channel
  int64_t segments = 0, seg_len = 0;   // segment k of a channel: values [k seg_len, min(N, (k + 1) seg_len))
  int64_t step_b = 0, step_s = 0;      // kThreads values further on: kThreads / S rows and kThreads % S
  bool small = true;                   // B C S < 2^32: elementwise index arithmetic in 32 bits
};

// The segments depend on the shape alone, so a shape gives the same bits on every GPU.
BnShape bn_shape(const Tensor& t, const char* op) {
  BnShape sh;
  sh.B = t.size(0);
  sh.C = t.size(1);
  sh.S = t.size(2);
  sh.N = sh.B * sh.S;
  sh.small = sh.N * sh.C < (int64_t{1} << 32);
  if (sh.N > 0 && sh.C > 0) {
    const int64_t by_size = (sh.N + kMinSegment - 1) / kMinSegment;
    const int64_t by_occupancy = (kWantBlocks + sh.C - 1) / sh.C;
    const int64_t want = std::max<int64_t>(1, std::min(by_size, by_occupancy));
    sh.seg_len = (sh.N + want - 1) / want;
    sh.segments = (sh.N + sh.seg_len - 1) / sh.seg_len;  // no empty segment at the end
    sh.step_b = kThreads / sh.S;
    sh.step_s = kThreads % sh.S;
    MINIDL_CHECK(sh.C * sh.segments < (int64_t{1} << 31), op, ": too many channels for one launch (", sh.C, ")");
  }
  return sh;
}

// Calls fn(b, s) for the values lo + threadIdx.x, lo + threadIdx.x + kThreads, ... below hi of a channel.
template <class Fn>
__device__ __forceinline__ void walk_segment(const BnShape& sh, int64_t lo, int64_t hi, Fn&& fn) {
  int64_t n = lo + threadIdx.x;
  if (n >= hi) return;
  int64_t b = n / sh.S, s = n - b * sh.S;
  for (; n < hi; n += kThreads) {
    fn(b, s);
    b += sh.step_b;
    s += sh.step_s;  // step_s < S: at most one carry
    if (s >= sh.S) {
      s -= sh.S;
      ++b;
    }
  }
}

// Linear index i of the logical [B, C, S] tensor as (b, c, s).
__device__ __forceinline__ void split3(int64_t i, const BnShape& sh, int64_t& b, int64_t& c, int64_t& s) {
  if (sh.small) {
    uint32_t r = static_cast<uint32_t>(i);
    const uint32_t S = static_cast<uint32_t>(sh.S), C = static_cast<uint32_t>(sh.C);
    s = r % S;
    r /= S;
    c = r % C;
    b = r / C;
  } else {
    s = i % sh.S;
    const int64_t r = i / sh.S;
    c = r % sh.C;
    b = r / sh.C;
  }
}

// ---- batch norm kernels ---------------------------------------------------------------------------------
// Block (c, k) = blockIdx.x = c segments + k: the Welford state of segment k of channel c.
__global__ void bn_stats_partial(Strided3<const float> x, BnShape sh, Welford* partial) {
  __shared__ Welford per_warp[kThreads / kWarp];
  const int64_t c = blockIdx.x / sh.segments, k = blockIdx.x % sh.segments;
  const int64_t lo = k * sh.seg_len, hi = lo + sh.seg_len < sh.N ? lo + sh.seg_len : sh.N;
  Welford st{0.0, 0.0, 0.0};
  walk_segment(sh, lo, hi, [&](int64_t b, int64_t s) { st.add(static_cast<double>(x.at(b, c, s))); });
  // A fixed order (group_fold): the same bits every run.
  st = group_fold(st, kThreads, per_warp, [](Welford& a, const Welford& b) { a.merge(b); });
  if (threadIdx.x == 0) partial[blockIdx.x] = st;
}

// One thread per channel: the statistics (merged segments in training, the running ones otherwise), the
// running-statistics update, and save_mean / save_invstd.
__global__ void bn_stats_channels(const Welford* partial, BnShape sh, bool training, double momentum, double eps,
                                  Vec<float> rm, Vec<float> rv, double* save_mean, double* save_invstd) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= sh.C) return;
  double mean = 0, var = 0;
  if (training) {
    Welford st{0.0, 0.0, 0.0};
    for (int64_t k = 0; k < sh.segments; ++k) st.merge(partial[c * sh.segments + k]);
    mean = st.mean;
    var = st.m2 / static_cast<double>(sh.N);
    if (rm.p) {  // the front end passes both or neither
      const double unbiased = st.m2 / static_cast<double>(sh.N - 1);
      float& m_ref = rm.p[c * rm.s];
      float& v_ref = rv.p[c * rv.s];
      m_ref = static_cast<float>(running_average(static_cast<double>(m_ref), mean, momentum));
      v_ref = static_cast<float>(running_average(static_cast<double>(v_ref), unbiased, momentum));
    }
  } else {
    mean = rm.get(c, 0.0);
    var = rv.get(c, 1.0);
  }
  save_mean[c] = mean;
  save_invstd[c] = 1.0 / sqrt(var + eps);
}

__global__ void bn_forward_apply(Strided3<const float> x, Vec<const float> w, Vec<const float> bias, const double* mean,
                                 const double* invstd, BnShape sh, Strided3<float> out) {
  const int64_t total = sh.N * sh.C, step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    int64_t b, c, s;
    split3(i, sh, b, c, s);
    const double scale = invstd[c] * w.get(c, 1.0), shift = bias.get(c, 0.0);
    out.at(b, c, s) = static_cast<float>((static_cast<double>(x.at(b, c, s)) - mean[c]) * scale + shift);
  }
}

// Block (c, k): sum g and sum g (x - mean) over segment k of channel c (the second only when x is given).
__global__ void bn_grad_partial(Strided3<const float> x, Strided3<const float> g, const double* mean, BnShape sh,
                                double2* partial) {
  __shared__ double scratch[kWarp];
  const int64_t c = blockIdx.x / sh.segments, k = blockIdx.x % sh.segments;
  const int64_t lo = k * sh.seg_len, hi = lo + sh.seg_len < sh.N ? lo + sh.seg_len : sh.N;
  const double mu = mean[c];
  double sum_g = 0, sum_gd = 0;
  if (x.p) {
    walk_segment(sh, lo, hi, [&](int64_t b, int64_t s) {
      const double gv = static_cast<double>(g.at(b, c, s));
      sum_g += gv;
      sum_gd += gv * (static_cast<double>(x.at(b, c, s)) - mu);
    });
  } else {
    walk_segment(sh, lo, hi, [&](int64_t b, int64_t s) { sum_g += static_cast<double>(g.at(b, c, s)); });
  }
  sum_g = block_sum(sum_g, scratch);  // every thread takes part: no early return above
  sum_gd = block_sum(sum_gd, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = make_double2(sum_g, sum_gd);
}

// One thread per channel: the segments' sums in order, gbias = sum g, gweight = r sum g (x - mean); the
// sums are kept for the gx pass.
__global__ void bn_grad_channels(const double2* partial, BnShape sh, const double* invstd, Vec<float> gw, Vec<float> gb,
                                 double2* sums) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= sh.C) return;
  double sum_g = 0, sum_gd = 0;
  for (int64_t k = 0; k < sh.segments; ++k) {
    const double2 p = partial[c * sh.segments + k];
    sum_g += p.x;
    sum_gd += p.y;
  }
  if (gb.p) gb.p[c * gb.s] = static_cast<float>(sum_g);
  if (gw.p) gw.p[c * gw.s] = static_cast<float>(sum_gd * invstd[c]);
  sums[c] = make_double2(sum_g, sum_gd);
}

// gx = w r (g - mean(g) - xhat mean(g xhat)) in training, w r g in evaluation (cpu/norm.cpp).
__global__ void bn_grad_input(Strided3<const float> x, Strided3<const float> g, Vec<const float> w, const double* mean,
                              const double* invstd, const double2* sums, bool training, BnShape sh,
                              Strided3<float> gx) {
  const int64_t total = sh.N * sh.C, step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const double n = static_cast<double>(sh.N);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    int64_t b, c, s;
    split3(i, sh, b, c, s);
    const double r = invstd[c], k = w.get(c, 1.0) * r, gv = static_cast<double>(g.at(b, c, s));
    if (training) {
      const double2 sm = sums[c];
      const double mean_g = sm.x / n, mean_gxhat = (sm.y * r) / n;
      const double xhat = (static_cast<double>(x.at(b, c, s)) - mean[c]) * r;
      gx.at(b, c, s) = static_cast<float>(k * (gv - mean_g - xhat * mean_gxhat));
    } else {
      gx.at(b, c, s) = static_cast<float>(k * gv);
    }
  }
}

// ---- layer norm kernels ---------------------------------------------------------------------------------
// A group per row: a block (kBlock) or a warp. Every thread of the group gets the sum, the same bits.
template <bool kBlock>
__device__ __forceinline__ double group_sum(double v, double* scratch) {
  if constexpr (kBlock)
    return block_sum(v, scratch);
  else
    return warp_sum(v);
}

template <bool kBlock>
__device__ __forceinline__ int64_t group_row() {
  return kBlock ? static_cast<int64_t>(blockIdx.x)
                : static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
}

template <bool kBlock>
__global__ void ln_forward_rows(Strided3<const float> x, Vec<const float> w, Vec<const float> bias, int64_t M,
                                int64_t N, double eps, Strided3<float> out, double* save_mean, double* save_invstd) {
  __shared__ double scratch[kWarp];
  const int group = kBlock ? kThreads : kWarp;
  const int lane = kBlock ? threadIdx.x : threadIdx.x % kWarp;
  const int64_t m = group_row<kBlock>();
  // The warp path has no block barrier, and a warp's lanes share m, so a whole warp leaves together.
  if (m >= M) return;
  double sum = 0;
  for (int64_t j = lane; j < N; j += group) sum += static_cast<double>(x.at(m, j, 0));
  const double mean = group_sum<kBlock>(sum, scratch) / static_cast<double>(N);
  double ss = 0;
  for (int64_t j = lane; j < N; j += group) {
    const double d = static_cast<double>(x.at(m, j, 0)) - mean;
    ss += d * d;
  }
  const double r = 1.0 / sqrt(group_sum<kBlock>(ss, scratch) / static_cast<double>(N) + eps);
  if (lane == 0) {
    save_mean[m] = mean;
    save_invstd[m] = r;
  }
  for (int64_t j = lane; j < N; j += group)
    out.at(m, j, 0) =
        static_cast<float>((static_cast<double>(x.at(m, j, 0)) - mean) * r * w.get(j, 1.0) + bias.get(j, 0.0));
}

// gx = r (h - mean(h) - xhat mean(h xhat)) with h = w g, per row.
template <bool kBlock>
__global__ void ln_grad_rows(Strided3<const float> x, Strided3<const float> g, Vec<const float> w,
                             const double* save_mean, const double* save_invstd, int64_t M, int64_t N,
                             Strided3<float> gx) {
  __shared__ double scratch[kWarp];
  const int group = kBlock ? kThreads : kWarp;
  const int lane = kBlock ? threadIdx.x : threadIdx.x % kWarp;
  const int64_t m = group_row<kBlock>();
  if (m >= M) return;  // as in ln_forward_rows
  const double mean = save_mean[m], r = save_invstd[m];
  double sum_h = 0, sum_hxhat = 0;
  for (int64_t j = lane; j < N; j += group) {
    const double h = static_cast<double>(g.at(m, j, 0)) * w.get(j, 1.0);
    sum_h += h;
    sum_hxhat += h * (static_cast<double>(x.at(m, j, 0)) - mean) * r;
  }
  const double mean_h = group_sum<kBlock>(sum_h, scratch) / static_cast<double>(N);
  const double mean_hxhat = group_sum<kBlock>(sum_hxhat, scratch) / static_cast<double>(N);
  for (int64_t j = lane; j < N; j += group) {
    const double h = static_cast<double>(g.at(m, j, 0)) * w.get(j, 1.0);
    const double xhat = (static_cast<double>(x.at(m, j, 0)) - mean) * r;
    gx.at(m, j, 0) = static_cast<float>(r * (h - mean_h - xhat * mean_hxhat));
  }
}

// Thread (j, k) = item k N + j: column j's sums of g xhat and of g over the rows of segment k, in row
// order. With one segment it writes gweight / gbias, otherwise partial[k N + j].
__global__ void ln_param_partial(Strided3<const float> x, Strided3<const float> g, const double* save_mean,
                                 const double* save_invstd, int64_t M, int64_t N, int64_t segments, int64_t seg_len,
                                 double2* partial, Vec<float> gw, Vec<float> gb) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= N * segments) return;
  const int64_t j = item % N, k = item / N;
  const int64_t lo = k * seg_len, hi = lo + seg_len < M ? lo + seg_len : M;
  double acc_w = 0, acc_b = 0;
  for (int64_t m = lo; m < hi; ++m) {
    const double gv = static_cast<double>(g.at(m, j, 0));
    if (gw.p) acc_w += gv * ((static_cast<double>(x.at(m, j, 0)) - save_mean[m]) * save_invstd[m]);
    acc_b += gv;
  }
  if (partial) {
    partial[k * N + j] = make_double2(acc_w, acc_b);
  } else {
    if (gw.p) gw.p[j * gw.s] = static_cast<float>(acc_w);
    if (gb.p) gb.p[j * gb.s] = static_cast<float>(acc_b);
  }
}

__global__ void ln_param_finish(const double2* partial, int64_t N, int64_t segments, Vec<float> gw, Vec<float> gb) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= N) return;
  double acc_w = 0, acc_b = 0;
  for (int64_t k = 0; k < segments; ++k) {
    const double2 p = partial[k * N + j];
    acc_w += p.x;
    acc_b += p.y;
  }
  if (gw.p) gw.p[j * gw.s] = static_cast<float>(acc_w);
  if (gb.p) gb.p[j * gb.s] = static_cast<float>(acc_b);
}

}  // namespace

// ---- host wrappers --------------------------------------------------------------------------------------

void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, bool training, double momentum, double eps, const Tensor& out,
                        const Tensor& save_mean, const Tensor& save_invstd) {
  const char* op = "batch_norm";
  check_float32(op, x);
  check_rank(op, x, 3, "[B, C, S]");
  const BnShape sh = bn_shape(x, op);
  if (sh.C == 0) return;
  const int device = x.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  const cudaStream_t stream = stream_of(device);
  double* mean = device_data<double>(save_mean);
  double* invstd = device_data<double>(save_invstd);

  Tensor part;  // alive until every launch below is queued
  Welford* partial = nullptr;
  if (training && sh.segments > 0) {
    part = scratch_bytes(sizeof(Welford) * sh.C * sh.segments, x.device());
    partial = static_cast<Welford*>(part.raw_data());
    bn_stats_partial<<<static_cast<unsigned>(sh.C * sh.segments), kThreads, 0, stream>>>(strided3<const float>(x), sh,
                                                                                         partial);
    MINIDL_CUDA_CHECK_LAUNCH(op);
  }
  bn_stats_channels<<<blocks_of(sh.C, kThreads, op), kThreads, 0, stream>>>(
      partial, sh, training, momentum, eps, vec<float>(running_mean), vec<float>(running_var), mean, invstd);
  MINIDL_CUDA_CHECK_LAUNCH(op);
  if (sh.N == 0) return;
  bn_forward_apply<<<grid_for(sh.N * sh.C, kThreads, device), kThreads, 0, stream>>>(
      strided3<const float>(x), vec<const float>(weight), vec<const float>(bias), mean, invstd, sh,
      strided3<float>(out));
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

void batch_norm_backward(const Tensor& x, const Tensor& g, const Tensor& weight, const Tensor& save_mean,
                         const Tensor& save_invstd, bool training, const Tensor& gx, const Tensor& gweight,
                         const Tensor& gbias) {
  const char* op = "batch_norm backward";
  check_float32(op, g);
  check_rank(op, g, 3, "[B, C, S]");
  const BnShape sh = bn_shape(g, op);
  const bool need_x = gweight.defined() || (gx.defined() && training);  // sum g (x - mean) is needed
  const bool need_sums = need_x || gbias.defined();
  if (sh.C == 0 || (!need_sums && !gx.defined())) return;
  const int device = g.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  const cudaStream_t stream = stream_of(device);
  const double* mean = device_data<double>(save_mean);
  const double* invstd = device_data<double>(save_invstd);
  const Strided3<const float> xs = need_x ? strided3<const float>(x) : Strided3<const float>{};

  Tensor sums_t, part;  // alive until every launch below is queued
  double2* sums = nullptr;
  if (need_sums) {
    sums_t = scratch_bytes(sizeof(double2) * sh.C, g.device());
    sums = static_cast<double2*>(sums_t.raw_data());
    double2* partial = nullptr;
    if (sh.segments > 0) {  // N == 0 leaves no segment: the sums are 0
      part = scratch_bytes(sizeof(double2) * sh.C * sh.segments, g.device());
      partial = static_cast<double2*>(part.raw_data());
      bn_grad_partial<<<static_cast<unsigned>(sh.C * sh.segments), kThreads, 0, stream>>>(xs, strided3<const float>(g),
                                                                                          mean, sh, partial);
      MINIDL_CUDA_CHECK_LAUNCH(op);
    }
    bn_grad_channels<<<blocks_of(sh.C, kThreads, op), kThreads, 0, stream>>>(partial, sh, invstd, vec<float>(gweight),
                                                                             vec<float>(gbias), sums);
    MINIDL_CUDA_CHECK_LAUNCH(op);
  }
  if (!gx.defined() || sh.N == 0) return;
  bn_grad_input<<<grid_for(sh.N * sh.C, kThreads, device), kThreads, 0, stream>>>(
      xs, strided3<const float>(g), vec<const float>(weight), mean, invstd, sums, training, sh, strided3<float>(gx));
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& out,
                        const Tensor& save_mean, const Tensor& save_invstd) {
  const char* op = "layer_norm";
  check_float32(op, x);
  check_rank(op, x, 2, "[M, N]");
  const int64_t M = x.size(0), N = x.size(1);
  if (M == 0) return;  // N == 0 still writes the (NaN) statistics of every row, as the CPU does
  const int device = x.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  const cudaStream_t stream = stream_of(device);
  const auto xs = strided3<const float>(x);
  const auto ws = vec<const float>(weight), bs = vec<const float>(bias);
  const auto os = strided3<float>(out);
  double* mean = device_data<double>(save_mean);
  double* invstd = device_data<double>(save_invstd);
  if (N > kLongRow)
    ln_forward_rows<true><<<blocks_of(M, 1, op), kThreads, 0, stream>>>(xs, ws, bs, M, N, eps, os, mean, invstd);
  else
    ln_forward_rows<false>
        <<<blocks_of(M, kRowsPerBlock, op), kThreads, 0, stream>>>(xs, ws, bs, M, N, eps, os, mean, invstd);
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

void layer_norm_backward(const Tensor& x, const Tensor& g, const Tensor& weight, const Tensor& save_mean,
                         const Tensor& save_invstd, const Tensor& gx, const Tensor& gweight, const Tensor& gbias) {
  const char* op = "layer_norm backward";
  check_float32(op, g);
  check_rank(op, g, 2, "[M, N]");
  const int64_t M = g.size(0), N = g.size(1);
  if (N == 0) return;  // no element of gx, gweight or gbias
  const int device = g.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  const cudaStream_t stream = stream_of(device);
  const double* mean = device_data<double>(save_mean);
  const double* invstd = device_data<double>(save_invstd);
  const bool need_x = gx.defined() || gweight.defined();
  const auto xs = need_x ? strided3<const float>(x) : Strided3<const float>{};
  const auto gs = strided3<const float>(g);

  if (gx.defined() && M > 0) {
    const auto ws = vec<const float>(weight);
    const auto gxs = strided3<float>(gx);
    if (N > kLongRow)
      ln_grad_rows<true><<<blocks_of(M, 1, op), kThreads, 0, stream>>>(xs, gs, ws, mean, invstd, M, N, gxs);
    else
      ln_grad_rows<false>
          <<<blocks_of(M, kRowsPerBlock, op), kThreads, 0, stream>>>(xs, gs, ws, mean, invstd, M, N, gxs);
    MINIDL_CUDA_CHECK_LAUNCH(op);
  }

  if (gweight.defined() || gbias.defined()) {
    // Segments of rows: enough that about kWantColumnThreads threads share the work, none shorter than
    // kMinRowsPerSegment rows. A shape-only choice, so the bits do not depend on the GPU. M == 0 gives one
    // empty segment, which writes the zeros of an empty sum.
    const int64_t by_rows = (M + kMinRowsPerSegment - 1) / kMinRowsPerSegment;
    const int64_t by_threads = (kWantColumnThreads + N - 1) / N;
    const int64_t want = std::max<int64_t>(1, std::min(by_rows, by_threads));
    const int64_t seg_len = std::max<int64_t>(1, (M + want - 1) / want);
    const int64_t segments = std::max<int64_t>(1, (M + seg_len - 1) / seg_len);
    const auto gws = vec<float>(gweight), gbs = vec<float>(gbias);
    Tensor part;  // alive until both launches are queued
    double2* partial = nullptr;
    if (segments > 1) {
      part = scratch_bytes(sizeof(double2) * N * segments, g.device());
      partial = static_cast<double2*>(part.raw_data());
    }
    ln_param_partial<<<blocks_of(N * segments, kThreads, op), kThreads, 0, stream>>>(
        xs, gs, mean, invstd, M, N, segments, seg_len, partial, gws, gbs);
    MINIDL_CUDA_CHECK_LAUNCH(op);
    if (partial) {
      ln_param_finish<<<blocks_of(N, kThreads, op), kThreads, 0, stream>>>(partial, N, segments, gws, gbs);
      MINIDL_CUDA_CHECK_LAUNCH(op);
    }
  }
}

}  // namespace minidl::cuda
