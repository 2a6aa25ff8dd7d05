// CUDA kernels of the joint cross-attention block: the math and the layouts are cpu/attention.cpp's
// (per sequence b and branch: G = W_j J, C = tanh(X^T G / s), Z = C W_c^T + X^T W^T, H = relu(Z),
// X_att = (H W_h^T)^T + X), float32.
//
// Forward, two launches:
//   joint_product  one block per (b, branch): G [L, 2d] into scratch (it is shared by all of a branch's
//                  rows, and a [L, 2d] slice of 64 x 2048 floats does not fit a block's shared memory).
//   rows_forward   one block per (kRows rows of X^T, branch, b): the rows' X^T, C, Z and H live in shared
//                  memory from the correlation to the output columns, so no [B, d, 2d] tensor is made.
// Backward, four launches, with no atomics (each output element is summed by one thread in a fixed order):
//   joint_product  G again.
//   rows_backward  per row block: C and Z again, then dZ = (dO^T W_h) [Z > 0] and
//                  dP = (dZ W_c) (1 - C^2) / s; writes this block's columns of dX (the residual's dO plus
//                  dZ W + dP G^T), and H, dZ, C, dP to scratch for the sums over rows and sequences.
//   weight_grads   one thread per element of dW_h, dW_c, dW (sums over all sequences and rows) and of
//                  dG = X dP (per sequence).
//   joint_grads    one thread per element of dW_j (= sum over sequences of dG J^T) and of dX_a, dX_v, which
//                  get dJ = sum over branches of W_j^T dG.
// Written for correctness first: every product is a plain loop over shared or global memory. Tiling the
// products, and keeping C on chip in the backward as the forward does, is for when a GPU has measured it.
#include <cmath>

#include "autograd/factories.h"
#include "autograd/ops.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRows = 4;  // rows of X^T per block: shared memory kRows (L + 2 (2d) + 2k) floats, < 48 KiB
                          // at the front end's limits (L 64, d 1024, k 256)

struct Dims {
  int L, d, k;
  __host__ __device__ int d2() const { return 2 * d; }
};

// One branch's weights (rows of the products below).
struct BranchWeights {
  const float *affine, *w, *w_c, *w_h;
};

struct Weights2 {
  BranchWeights branch[2];
};

// G[b, branch] = W_j J: element (l, c) sums W_j[l, m] J[m, c] over m in order; J's first d columns are X_a's.
__global__ void joint_product(const float* xa, const float* xv, Weights2 w, Dims s, float* g) {
  const int branch = blockIdx.x, b = blockIdx.y;
  const float* affine = w.branch[branch].affine;
  const int64_t seq = static_cast<int64_t>(s.L) * s.d;
  float* out = g + (static_cast<int64_t>(b) * 2 + branch) * s.L * s.d2();
  for (int e = threadIdx.x; e < s.L * s.d2(); e += blockDim.x) {
    const int l = e / s.d2(), c = e % s.d2();
    const float* j = (c < s.d ? xa : xv) + b * seq + (c < s.d ? c : c - s.d);
    float acc = 0.0f;
    for (int m = 0; m < s.L; ++m) acc = fmaf(affine[l * s.L + m], j[static_cast<int64_t>(m) * s.d], acc);
    out[e] = acc;
  }
}

// Shared memory of a row block: X^T rows [kRows][L], C [kRows][2d], Z [kRows][k], and a second [kRows][k]
// (H in the forward, dZ in the backward) and, in the backward, dP over C's slot once C is saved, and dO's
// rows [kRows][L].
struct RowBlock {
  float *xr, *c, *z, *h, *go;
  __device__ RowBlock(float* smem, const Dims& s)
      : xr(smem), c(xr + kRows * s.L), z(c + kRows * s.d2()), h(z + kRows * s.k), go(h + kRows * s.k) {}
  static size_t bytes(const Dims& s) { return sizeof(float) * kRows * (2 * s.L + s.d2() + 2 * s.k); }
};

// C and Z of the block's n rows (as cpu::rows_forward computes them), with xr loaded.
__device__ void correlate(const RowBlock& rb, const float* x, const float* g, const BranchWeights& w, const Dims& s,
                          int r0, int n, float scale) {
  for (int e = threadIdx.x; e < n * s.L; e += blockDim.x) {
    const int r = e / s.L, l = e % s.L;
    rb.xr[e] = x[static_cast<int64_t>(l) * s.d + r0 + r];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < n * s.d2(); e += blockDim.x) {
    const int r = e / s.d2(), c = e % s.d2();
    float acc = 0.0f;
    for (int l = 0; l < s.L; ++l) acc = fmaf(rb.xr[r * s.L + l], g[static_cast<int64_t>(l) * s.d2() + c], acc);
    rb.c[e] = tanhf(acc / scale);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < n * s.k; e += blockDim.x) {
    const int r = e / s.k, j = e % s.k;
    float cw = 0.0f, xw = 0.0f;
    for (int c = 0; c < s.d2(); ++c) cw = fmaf(rb.c[r * s.d2() + c], w.w_c[static_cast<int64_t>(j) * s.d2() + c], cw);
    for (int l = 0; l < s.L; ++l) xw = fmaf(rb.xr[r * s.L + l], w.w[j * s.L + l], xw);
    rb.z[e] = cw + xw;
  }
  __syncthreads();
}

__global__ void rows_forward(const float* xa, const float* xv, const float* g_all, Weights2 w, Dims s, float scale,
                             float* out_a, float* out_v) {
  extern __shared__ float smem[];
  const int r0 = blockIdx.x * kRows, branch = blockIdx.y, b = blockIdx.z, n = ::min(kRows, s.d - r0);
  const int64_t seq = static_cast<int64_t>(s.L) * s.d;
  const float* x = (branch == 0 ? xa : xv) + b * seq;
  const float* g = g_all + (static_cast<int64_t>(b) * 2 + branch) * s.L * s.d2();
  const BranchWeights& bw = w.branch[branch];
  const RowBlock rb(smem, s);
  correlate(rb, x, g, bw, s, r0, n, scale);
  for (int e = threadIdx.x; e < n * s.k; e += blockDim.x) rb.h[e] = rb.z[e] > 0.0f ? rb.z[e] : 0.0f;
  __syncthreads();
  float* out = (branch == 0 ? out_a : out_v) + b * seq;
  for (int e = threadIdx.x; e < s.L * n; e += blockDim.x) {
    const int l = e / n, r = e % n;
    float acc = 0.0f;
    for (int j = 0; j < s.k; ++j) acc = fmaf(bw.w_h[l * s.k + j], rb.h[r * s.k + j], acc);
    out[static_cast<int64_t>(l) * s.d + r0 + r] = acc + rb.xr[r * s.L + l];
  }
}

// The backward's scratch, per (b, branch): H and dZ [d, k], C and dP [d, 2d], dG [L, 2d].
struct BackwardScratch {
  float *h, *dz, *c, *dp, *dg;
};

__global__ void rows_backward(const float* xa, const float* xv, const float* g_all, const float* ga, const float* gv,
                              Weights2 w, Dims s, float scale, BackwardScratch out, float* gxa, float* gxv) {
  extern __shared__ float smem[];
  const int r0 = blockIdx.x * kRows, branch = blockIdx.y, b = blockIdx.z, n = ::min(kRows, s.d - r0);
  const int64_t seq = static_cast<int64_t>(s.L) * s.d, pair = static_cast<int64_t>(b) * 2 + branch;
  const float* x = (branch == 0 ? xa : xv) + b * seq;
  const float* go = (branch == 0 ? ga : gv) + b * seq;
  const float* g = g_all + pair * s.L * s.d2();
  const BranchWeights& bw = w.branch[branch];
  const RowBlock rb(smem, s);
  correlate(rb, x, g, bw, s, r0, n, scale);
  for (int e = threadIdx.x; e < n * s.L; e += blockDim.x) {
    const int r = e / s.L, l = e % s.L;
    rb.go[e] = go[static_cast<int64_t>(l) * s.d + r0 + r];
  }
  __syncthreads();
  // dZ = (dO^T W_h) [Z > 0] in rb.h; H and dZ to scratch.
  const int64_t rk = (pair * s.d + r0) * s.k, rc = (pair * s.d + r0) * s.d2();
  for (int e = threadIdx.x; e < n * s.k; e += blockDim.x) {
    const int r = e / s.k, j = e % s.k;
    float acc = 0.0f;
    for (int l = 0; l < s.L; ++l) acc = fmaf(rb.go[r * s.L + l], bw.w_h[l * s.k + j], acc);
    const bool on = rb.z[e] > 0.0f;
    rb.h[e] = on ? acc : 0.0f;
    out.h[rk + e] = on ? rb.z[e] : 0.0f;
    out.dz[rk + e] = rb.h[e];
  }
  __syncthreads();
  // dP = (dZ W_c) (1 - C^2) / s, over C's slot once C is in scratch (each thread reads only its element).
  for (int e = threadIdx.x; e < n * s.d2(); e += blockDim.x) {
    const int r = e / s.d2(), c = e % s.d2();
    float acc = 0.0f;
    for (int j = 0; j < s.k; ++j) acc = fmaf(rb.h[r * s.k + j], bw.w_c[static_cast<int64_t>(j) * s.d2() + c], acc);
    const float cv = rb.c[e];
    out.c[rc + e] = cv;
    rb.c[e] = acc * (1.0f - cv * cv) / scale;
    out.dp[rc + e] = rb.c[e];
  }
  __syncthreads();
  // This block's columns of dX: dO (the residual) + dZ W + dP G^T.
  float* gx = branch == 0 ? gxa : gxv;
  if (!gx) return;
  for (int e = threadIdx.x; e < s.L * n; e += blockDim.x) {
    const int l = e / n, r = e % n;
    float zw = 0.0f, pg = 0.0f;
    for (int j = 0; j < s.k; ++j) zw = fmaf(rb.h[r * s.k + j], bw.w[j * s.L + l], zw);
    for (int c = 0; c < s.d2(); ++c) pg = fmaf(rb.c[r * s.d2() + c], g[static_cast<int64_t>(l) * s.d2() + c], pg);
    gx[b * seq + static_cast<int64_t>(l) * s.d + r0 + r] = rb.go[r * s.L + l] + (zw + pg);
  }
}

// The weight gradients' pointers, null where not wanted.
struct BranchGrads {
  float *affine, *w, *w_c, *w_h;
};
struct Grads2 {
  BranchGrads branch[2];
};

// One thread per output element: dW_h, dW_c, dW of both branches (summed over b, then rows, in order),
// then dG of every (b, branch).
__global__ void weight_grads(const float* xa, const float* xv, const float* ga, const float* gv, BackwardScratch sc,
                             Grads2 grads, Dims s, int B) {
  const int64_t per_h = static_cast<int64_t>(s.L) * s.k, per_c = static_cast<int64_t>(s.k) * s.d2(),
                per_w = static_cast<int64_t>(s.k) * s.L, per_g = static_cast<int64_t>(s.L) * s.d2();
  const int64_t weights = 2 * (per_h + per_c + per_w), total = weights + B * 2 * per_g;
  const int64_t seq = static_cast<int64_t>(s.L) * s.d;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    if (e >= weights) {  // dG[b, branch] = X dP
      const int64_t f = e - weights, pair = f / per_g, lc = f % per_g;
      const int branch = static_cast<int>(pair % 2), l = static_cast<int>(lc / s.d2()),
                c = static_cast<int>(lc % s.d2());
      const float* x = (branch == 0 ? xa : xv) + (pair / 2) * seq + static_cast<int64_t>(l) * s.d;
      const float* dp = sc.dp + pair * s.d * s.d2() + c;
      float acc = 0.0f;
      for (int i = 0; i < s.d; ++i) acc = fmaf(x[i], dp[static_cast<int64_t>(i) * s.d2()], acc);
      sc.dg[f] = acc;
      continue;
    }
    const int branch = static_cast<int>(e / (per_h + per_c + per_w));
    const int64_t f = e % (per_h + per_c + per_w);
    const BranchGrads& out = grads.branch[branch];
    float acc = 0.0f;
    if (f < per_h) {  // dW_h[l, j] = sum over b, i of dO[b, l, i] H[b, i, j]
      if (!out.w_h) continue;
      const int l = static_cast<int>(f / s.k), j = static_cast<int>(f % s.k);
      for (int b = 0; b < B; ++b) {
        const float* go = (branch == 0 ? ga : gv) + b * seq + static_cast<int64_t>(l) * s.d;
        const float* h = sc.h + (static_cast<int64_t>(b) * 2 + branch) * s.d * s.k + j;
        for (int i = 0; i < s.d; ++i) acc = fmaf(go[i], h[static_cast<int64_t>(i) * s.k], acc);
      }
      out.w_h[f] = acc;
    } else if (f < per_h + per_c) {  // dW_c[j, c] = sum of dZ[b, i, j] C[b, i, c]
      if (!out.w_c) continue;
      const int64_t jc = f - per_h;
      const int j = static_cast<int>(jc / s.d2()), c = static_cast<int>(jc % s.d2());
      for (int b = 0; b < B; ++b) {
        const int64_t pair = static_cast<int64_t>(b) * 2 + branch;
        const float* dz = sc.dz + pair * s.d * s.k + j;
        const float* cm = sc.c + pair * s.d * s.d2() + c;
        for (int i = 0; i < s.d; ++i)
          acc = fmaf(dz[static_cast<int64_t>(i) * s.k], cm[static_cast<int64_t>(i) * s.d2()], acc);
      }
      out.w_c[jc] = acc;
    } else {  // dW[j, l] = sum of dZ[b, i, j] X[b, l, i]
      if (!out.w) continue;
      const int64_t jl = f - per_h - per_c;
      const int j = static_cast<int>(jl / s.L), l = static_cast<int>(jl % s.L);
      for (int b = 0; b < B; ++b) {
        const float* dz = sc.dz + (static_cast<int64_t>(b) * 2 + branch) * s.d * s.k + j;
        const float* x = (branch == 0 ? xa : xv) + b * seq + static_cast<int64_t>(l) * s.d;
        for (int i = 0; i < s.d; ++i) acc = fmaf(dz[static_cast<int64_t>(i) * s.k], x[i], acc);
      }
      out.w[jl] = acc;
    }
  }
}

// One thread per element of dW_j (both branches: sum over b, then J's columns, of dG J^T) and of dX_a,
// dX_v (+= dJ[b, l, c] = sum over branches, then m, of W_j[m, l] dG[b, m, c]).
__global__ void joint_grads(const float* xa, const float* xv, const float* dg, Weights2 w, Grads2 grads, Dims s, int B,
                            float* gxa, float* gxv) {
  const int64_t per_j = static_cast<int64_t>(s.L) * s.L, seq = static_cast<int64_t>(s.L) * s.d;
  const int64_t total = 2 * per_j + static_cast<int64_t>(B) * s.L * s.d2();
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    if (e < 2 * per_j) {
      const int branch = static_cast<int>(e / per_j);
      float* out = grads.branch[branch].affine;
      if (!out) continue;
      const int l = static_cast<int>((e % per_j) / s.L), m = static_cast<int>(e % s.L);
      float acc = 0.0f;
      for (int b = 0; b < B; ++b) {
        const float* row = dg + ((static_cast<int64_t>(b) * 2 + branch) * s.L + l) * s.d2();
        const float* ja = xa + b * seq + static_cast<int64_t>(m) * s.d;
        const float* jv = xv + b * seq + static_cast<int64_t>(m) * s.d;
        for (int c = 0; c < s.d; ++c) acc = fmaf(row[c], ja[c], acc);
        for (int c = 0; c < s.d; ++c) acc = fmaf(row[s.d + c], jv[c], acc);
      }
      out[e % per_j] = acc;
      continue;
    }
    const int64_t f = e - 2 * per_j, b = f / (s.L * s.d2()), lc = f % (s.L * s.d2());
    const int l = static_cast<int>(lc / s.d2()), c = static_cast<int>(lc % s.d2());
    float* gx = c < s.d ? gxa : gxv;
    if (!gx) continue;
    float dj = 0.0f;
    for (int branch = 0; branch < 2; ++branch) {
      const float* affine = w.branch[branch].affine;
      const float* col = dg + (b * 2 + branch) * s.L * s.d2() + c;
      for (int m = 0; m < s.L; ++m) dj = fmaf(affine[m * s.L + l], col[static_cast<int64_t>(m) * s.d2()], dj);
    }
    gx[b * seq + static_cast<int64_t>(l) * s.d + (c < s.d ? c : c - s.d)] += dj;
  }
}

void check_float32(const Tensor& t, const char* what) {
  MINIDL_CHECK(!t.defined() || t.dtype() == kFloat32, "joint_cross_attention: the CUDA kernels compute in float32; ",
               what, " is ", t.meta_str());
}

Weights2 weights_of(const JcaWeights& a, const JcaWeights& v) {
  Weights2 w;
  const JcaWeights* both[2] = {&a, &v};
  for (int i = 0; i < 2; ++i) {
    for (const Tensor* t : {&both[i]->affine, &both[i]->w, &both[i]->w_c, &both[i]->w_h}) check_float32(*t, "a weight");
    w.branch[i] = {device_data<float>(both[i]->affine), device_data<float>(both[i]->w),
                   device_data<float>(both[i]->w_c), device_data<float>(both[i]->w_h)};
  }
  return w;
}

float* or_null(const Tensor& t) { return t.defined() ? device_data<float>(t) : nullptr; }

// What both passes start from (with the device made current by the caller).
struct Setup {
  int device, B;
  Dims s;
  Weights2 w;
  float scale;
  cudaStream_t stream;
};

Setup prepare(const Tensor& xa, const JcaWeights& audio, const JcaWeights& visual) {
  check_float32(xa, "the input");
  MINIDL_CHECK(xa.size(0) <= 65535, "joint_cross_attention: the CUDA kernels take at most 65535 sequences, got ",
               xa.size(0));
  Setup p;
  p.device = xa.device().index;
  p.B = static_cast<int>(xa.size(0));
  p.s = {static_cast<int>(xa.size(1)), static_cast<int>(xa.size(2)), static_cast<int>(audio.w.size(0))};
  p.w = weights_of(audio, visual);
  p.scale = static_cast<float>(std::sqrt(static_cast<double>(p.s.d2())));
  p.stream = stream_of(p.device);
  return p;
}

}  // namespace

void jca_forward(const Tensor& xa, const Tensor& xv, const JcaWeights& audio, const JcaWeights& visual,
                 const Tensor& out_a, const Tensor& out_v) {
  const DeviceGuard guard(xa.device().index);
  MINIDL_CUDA_CHECK(guard.status());
  const Setup p = prepare(xa, audio, visual);
  const Dims& s = p.s;
  const int B = p.B;
  const cudaStream_t stream = p.stream;
  const Weights2& w = p.w;
  const Scratch g(sizeof(float) * B * 2 * s.L * s.d2(), p.device);
  joint_product<<<dim3(2, B), kThreads, 0, stream>>>(device_data<float>(xa), device_data<float>(xv), w, s,
                                                     g.as<float>());
  MINIDL_CUDA_CHECK_LAUNCH("joint_cross_attention (joint product)");
  const dim3 grid((s.d + kRows - 1) / kRows, 2, B);
  rows_forward<<<grid, kThreads, RowBlock::bytes(s), stream>>>(device_data<float>(xa), device_data<float>(xv),
                                                               g.as<float>(), w, s, p.scale, device_data<float>(out_a),
                                                               device_data<float>(out_v));
  MINIDL_CUDA_CHECK_LAUNCH("joint_cross_attention (rows)");
}

void jca_backward(const Tensor& xa, const Tensor& xv, const JcaWeights& audio, const JcaWeights& visual,
                  const Tensor& ga_in, const Tensor& gv_in, const Tensor& gxa, const Tensor& gxv,
                  const JcaWeights& grad_audio, const JcaWeights& grad_visual) {
  const DeviceGuard guard(xa.device().index);
  MINIDL_CUDA_CHECK(guard.status());
  const Setup p = prepare(xa, audio, visual);
  const Dims& s = p.s;
  const int B = p.B, device = p.device;
  const Weights2& w = p.w;
  // An output that no gradient reached has a zero one.
  const Tensor ga = ga_in.defined() ? ga_in : zeros(xa.shape(), {.device = xa.device()});
  const Tensor gv = gv_in.defined() ? gv_in : zeros(xa.shape(), {.device = xa.device()});
  const int64_t pairs = static_cast<int64_t>(B) * 2;
  const Scratch g(sizeof(float) * pairs * s.L * s.d2(), device), h(sizeof(float) * pairs * s.d * s.k, device),
      dz(sizeof(float) * pairs * s.d * s.k, device), c(sizeof(float) * pairs * s.d * s.d2(), device),
      dp(sizeof(float) * pairs * s.d * s.d2(), device), dg(sizeof(float) * pairs * s.L * s.d2(), device);
  const BackwardScratch sc{h.as<float>(), dz.as<float>(), c.as<float>(), dp.as<float>(), dg.as<float>()};
  const cudaStream_t stream = p.stream;
  const float *pa = device_data<float>(xa), *pv = device_data<float>(xv);
  joint_product<<<dim3(2, B), kThreads, 0, stream>>>(pa, pv, w, s, g.as<float>());
  MINIDL_CUDA_CHECK_LAUNCH("joint_cross_attention backward (joint product)");
  const dim3 grid((s.d + kRows - 1) / kRows, 2, B);
  rows_backward<<<grid, kThreads, RowBlock::bytes(s), stream>>>(pa, pv, g.as<float>(), device_data<float>(ga),
                                                                device_data<float>(gv), w, s, p.scale, sc, or_null(gxa),
                                                                or_null(gxv));
  MINIDL_CUDA_CHECK_LAUNCH("joint_cross_attention backward (rows)");
  Grads2 grads;
  const JcaWeights* both[2] = {&grad_audio, &grad_visual};
  for (int i = 0; i < 2; ++i)
    grads.branch[i] = {or_null(both[i]->affine), or_null(both[i]->w), or_null(both[i]->w_c), or_null(both[i]->w_h)};
  const int64_t weight_items =
      2 * (static_cast<int64_t>(s.L) * s.k + static_cast<int64_t>(s.k) * s.d2() + static_cast<int64_t>(s.k) * s.L) +
      pairs * s.L * s.d2();
  weight_grads<<<grid_for(weight_items, kThreads, device), kThreads, 0, stream>>>(
      pa, pv, device_data<float>(ga), device_data<float>(gv), sc, grads, s, B);
  MINIDL_CUDA_CHECK_LAUNCH("joint_cross_attention backward (weight gradients)");
  const int64_t joint_items = 2 * static_cast<int64_t>(s.L) * s.L + static_cast<int64_t>(B) * s.L * s.d2();
  joint_grads<<<grid_for(joint_items, kThreads, device), kThreads, 0, stream>>>(pa, pv, dg.as<float>(), w, grads, s, B,
                                                                                or_null(gxa), or_null(gxv));
  MINIDL_CUDA_CHECK_LAUNCH("joint_cross_attention backward (joint gradients)");
}

}  // namespace minidl::cuda
