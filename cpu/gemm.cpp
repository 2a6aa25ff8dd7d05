// CPU GEMM: C = A B, cache-blocked and packed in the GotoBLAS / BLIS way, with no BLAS library.
//
// Loop nest (outermost first), sizes chosen for a 32-64 KiB L1 and a >= 1 MiB L2 per core:
//   jc: NC columns of B and C           B block (KC x NC) is packed once and read from L3/L2
//   pc: KC of the shared K dimension    A block (MC x KC) is packed and stays in L2
//   ic: MC rows of A and C
//   jr, ir: one MR x NR tile of C       the micro-kernel: a KC-long sum of rank-1 updates
// Packing copies A into MR-row panels and B into NR-column panels laid out in the order the
// micro-kernel reads them (k-major), zero-padded at the edges. That makes the micro-kernel's loads
// unit-stride whatever A's and B's strides were, so transposed operands (the backward's A^T and B^T)
// cost nothing extra, and lets the compiler keep the MR x NR accumulator tile in vector registers.
//
// The micro-kernel is plain C++: with -O3 and the native ISA the compiler turns the j loop into NR/W
// vector FMAs per row (W lanes per register) and keeps c[][] in registers. NR is two registers wide and
// MR is as many rows as leave room in the register file: 8 x 2 of the 32 AVX-512 registers, 6 x 2 of
// the 16 AVX2 ones. Threads split the (jr, ir) tiles of each block; every C tile is summed over K in
// the same order whatever the thread count, so results are bitwise reproducible.
//
// Products with few rows of C (a convolution's output channels) reuse each element of B only M / MR
// times, so packing B costs as much as the arithmetic. Two exits from that: a row-major B is read in
// place, panel by panel, and a transposed B with long rows turns the product into dot products of
// contiguous rows (gemm_dot), with no packing at all.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>

#include "autograd/error.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/kernels.h"

namespace minidl::cpu {
namespace {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64, kRows = 8;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32, kRows = 6;
#else
constexpr int kVectorBytes = 16, kRows = 4;
#endif

template <class T>
struct Blocking {
  static constexpr int MR = kRows;
  static constexpr int NR = 2 * kVectorBytes / static_cast<int>(sizeof(T));
  static constexpr int64_t KC = 256;
  static constexpr int64_t MC = MR * 24;
  static constexpr int64_t NC = NR * 128;
};

// Below this many multiply-adds a GEMM runs on one thread: the parallel region would cost more.
constexpr double kParallelFlops = 1 << 18;

// A grow-only, 64-byte aligned scratch buffer per thread, so small GEMMs (the batched 16 x 16 products
// of the fusion model) do not allocate on every call.
template <class T>
T* scratch(int slot, size_t count) {
  struct Buffer {
    void* p = nullptr;
    size_t bytes = 0;
    ~Buffer() { std::free(p); }
  };
  thread_local Buffer buffers[2];
  Buffer& b = buffers[slot];
  const size_t need = (count * sizeof(T) + 63) / 64 * 64;
  if (b.bytes < need) {
    std::free(b.p);
    b.p = std::aligned_alloc(64, need);
    MINIDL_CHECK(b.p != nullptr, "gemm: out of memory for a ", need, "-byte packing buffer");
    b.bytes = need;
  }
  return static_cast<T*>(b.p);
}

// Packs rows [0, mr) x k-columns [0, kc) of A (at a) into an MR-row panel, k-major, zero rows past mr.
template <class T, int MR>
void pack_a_panel(int64_t mr, int64_t kc, const T* a, int64_t rsa, int64_t csa, T* dst) {
  if (csa == 1 && mr == MR) {
    for (int i = 0; i < MR; ++i)
      for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = a[i * rsa + k];
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t i = 0; i < mr; ++i) dst[k * MR + i] = a[i * rsa + k * csa];
    for (int64_t i = mr; i < MR; ++i) dst[k * MR + i] = T(0);
  }
}

// Packs k-rows [0, kc) x columns [0, nr) of B (at b) into an NR-column panel, zero columns past nr.
template <class T, int NR>
void pack_b_panel(int64_t nr, int64_t kc, const T* b, int64_t rsb, int64_t csb, T* dst) {
  if (csb == 1 && nr == NR) {
    for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * NR, b + k * rsb, sizeof(T) * NR);
    return;
  }
  if (rsb == 1) {
    // A transposed B (the weight gradient's col^T): read each column as the contiguous run it is and
    // scatter it into the panel, which sits in L1. Gathering each k-row's NR elements, csb apart, was
    // twice as slow where csb is a power of two (1024: all NR of them fall in one cache set).
    for (int64_t j = 0; j < nr; ++j) {
      const T* src = b + j * csb;
      for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k];
    }
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t j = nr; j < NR; ++j) dst[k * NR + j] = T(0);
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t j = 0; j < nr; ++j) dst[k * NR + j] = b[k * rsb + j * csb];
    for (int64_t j = nr; j < NR; ++j) dst[k * NR + j] = T(0);
  }
}

// C[0:mr, 0:nr] (+)= Ap · Bp over kc: the MR x NR tile lives in c[][] for the whole k loop.
// B's k-rows are ldb apart: NR in a packed panel, B's own row stride when it is read in place.
template <class T, int MR, int NR>
void micro_kernel(int64_t kc, const T* __restrict ap, const T* __restrict bp, int64_t ldb, T* __restrict c_out,
                  int64_t rsc, int64_t csc, bool accumulate, int64_t mr, int64_t nr) {
  T c[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const T* a = ap + k * MR;
    const T* b = bp + k * ldb;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma omp simd
      for (int j = 0; j < NR; ++j) c[i][j] += a[i] * b[j];
    }
  }
  if (mr == MR && nr == NR && csc == 1) {
    for (int i = 0; i < MR; ++i) {
      T* row = c_out + i * rsc;
      if (accumulate) {
#pragma omp simd
        for (int j = 0; j < NR; ++j) row[j] += c[i][j];
      } else {
#pragma omp simd
        for (int j = 0; j < NR; ++j) row[j] = c[i][j];
      }
    }
    return;
  }
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j) {
      T& dst = c_out[i * rsc + j * csc];
      dst = accumulate ? dst + c[i][j] : c[i][j];
    }
}

// ---- few rows, both operands contiguous along K: dot products ----------------------------------
// The conv weight gradient, gy [C_out, n] times col^T, has few rows (the tiny model's 6-64 channels) and a
// B that is transposed (col's rows run along K). The panel path must transpose all of B into NR-column
// panels, a scattered copy that cost more than the multiply-adds, for products that reuse each B element
// only M / MR times. Here each C element is instead a dot product of two contiguous rows: a kDotRows x
// kDotCols tile of them (3 x 8 with AVX-512) is summed W lanes at a time in as many vector registers,
// loading 3 + 8 vectors per 24 FMAs, with no packing at all. Rows and columns past the edge of C alias
// the last real one, so the tile kernel needs no edge cases; their sums are thrown away.
constexpr int kDotRows = kVectorBytes == 64 ? 3 : 2, kDotCols = kVectorBytes == 64 ? 8 : 4;
// Where the dot path wins, measured on the tiny model's conv weight gradients (one AVX-512 core): with 6 to
// 18 rows it took 0.4-0.65 of the panel path's time, with 28 rows as long or longer (each row tile reads
// all of B again); and dots of at least 16 vectors (shorter ones spend too much on the sums across lanes).
constexpr int64_t kDotMaxRows = 24, kDotMinVectors = 16;
// Up to this many rows of C the panel path reads contiguous rows of B in place (see gemm()); measured on
// the tiny model's conv forwards, 15% faster than packing them.
constexpr int64_t kInPlaceMaxRows = 64;

template <class T>
void dot_tile(int64_t K, const T* const (&a)[kDotRows], const T* const (&b)[kDotCols], T (&out)[kDotRows][kDotCols]) {
  constexpr int W = kVectorBytes / static_cast<int>(sizeof(T));
  T acc[kDotRows][kDotCols][W] = {};
  int64_t k = 0;
  for (; k + W <= K; k += W) {
#pragma GCC unroll 8
    for (int i = 0; i < kDotRows; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < kDotCols; ++j)
#pragma omp simd
        for (int l = 0; l < W; ++l) acc[i][j][l] += a[i][k + l] * b[j][k + l];
  }
  for (int i = 0; i < kDotRows; ++i)
    for (int j = 0; j < kDotCols; ++j) {
      // Lanes summed pairwise, then the tail: a fixed order, so the result does not depend on threads.
      for (int w = W / 2; w > 0; w /= 2)
        for (int l = 0; l < w; ++l) acc[i][j][l] += acc[i][j][l + w];
      T sum = acc[i][j][0];
      for (int64_t t = k; t < K; ++t) sum += a[i][t] * b[j][t];
      out[i][j] = sum;
    }
}

template <class T>
void gemm_dot(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, const T* B, int64_t csb, T* C, int64_t rsc,
              int64_t csc, bool accumulate, bool parallel) {
  const int64_t row_tiles = (M + kDotRows - 1) / kDotRows, col_tiles = (N + kDotCols - 1) / kDotCols;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t jt = 0; jt < col_tiles; ++jt)
    for (int64_t it = 0; it < row_tiles; ++it) {
      const int64_t i0 = it * kDotRows, j0 = jt * kDotCols;
      const T* a[kDotRows];
      const T* b[kDotCols];
      for (int i = 0; i < kDotRows; ++i) a[i] = A + std::min(i0 + i, M - 1) * rsa;
      for (int j = 0; j < kDotCols; ++j) b[j] = B + std::min(j0 + j, N - 1) * csb;
      T out[kDotRows][kDotCols];
      dot_tile<T>(K, a, b, out);
      for (int64_t i = 0; i < std::min<int64_t>(kDotRows, M - i0); ++i)
        for (int64_t j = 0; j < std::min<int64_t>(kDotCols, N - j0); ++j) {
          T& dst = C[(i0 + i) * rsc + (j0 + j) * csc];
          dst = accumulate ? dst + out[i][j] : out[i][j];
        }
    }
}

}  // namespace

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb, int64_t csb,
          T* C, int64_t rsc, int64_t csc, bool accumulate) {
  using Bl = Blocking<T>;
  constexpr int MR = Bl::MR, NR = Bl::NR;
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) C[i * rsc + j * csc] = T(0);
    return;
  }
  const bool parallel = !omp_in_parallel() && static_cast<double>(M) * N * K >= kParallelFlops;
  if (csa == 1 && rsb == 1 && M <= kDotMaxRows &&
      K >= kDotMinVectors * kVectorBytes / static_cast<int64_t>(sizeof(T))) {
    gemm_dot<T>(M, N, K, A, rsa, B, csb, C, rsc, csc, accumulate, parallel);
    return;
  }
  const int64_t nc_max = std::min(Bl::NC, (N + NR - 1) / NR * NR);
  const int64_t mc_max = std::min(Bl::MC, (M + MR - 1) / MR * MR);
  const int64_t kc_max = std::min(Bl::KC, K);
  T* bpack = scratch<T>(0, static_cast<size_t>(kc_max * nc_max));
  T* apack = scratch<T>(1, static_cast<size_t>(kc_max * mc_max));

  // With few rows of C each B panel is used once or twice, and packing it costs about what the multiply-adds
  // do: rows of B that are contiguous are then read where they are (the conv forward's col), and only a
  // last, partial panel is packed, for its zero padding.
  const bool b_in_place = csb == 1 && M <= kInPlaceMaxRows;

#pragma omp parallel if (parallel)
  for (int64_t jc = 0; jc < N; jc += Bl::NC) {
    const int64_t nc = std::min(Bl::NC, N - jc), npanels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += Bl::KC) {
      const int64_t kc = std::min(Bl::KC, K - pc);
      const bool acc = accumulate || pc > 0;
#pragma omp for schedule(static)
      for (int64_t p = 0; p < npanels; ++p) {
        const int64_t nr = std::min<int64_t>(NR, nc - p * NR);
        if (!b_in_place || nr < NR)
          pack_b_panel<T, NR>(nr, kc, B + pc * rsb + (jc + p * NR) * csb, rsb, csb, bpack + p * NR * kc);
      }
      for (int64_t ic = 0; ic < M; ic += Bl::MC) {
        const int64_t mc = std::min(Bl::MC, M - ic), mpanels = (mc + MR - 1) / MR;
#pragma omp for schedule(static)
        for (int64_t p = 0; p < mpanels; ++p)
          pack_a_panel<T, MR>(std::min<int64_t>(MR, mc - p * MR), kc, A + (ic + p * MR) * rsa + pc * csa, rsa, csa,
                              apack + p * MR * kc);
#pragma omp for collapse(2) schedule(static)
        for (int64_t jp = 0; jp < npanels; ++jp)
          for (int64_t ip = 0; ip < mpanels; ++ip) {
            const int64_t nr = std::min<int64_t>(NR, nc - jp * NR);
            const bool in_place = b_in_place && nr == NR;
            micro_kernel<T, MR, NR>(kc, apack + ip * MR * kc,
                                    in_place ? B + pc * rsb + jc + jp * NR : bpack + jp * NR * kc, in_place ? rsb : NR,
                                    C + (ic + ip * MR) * rsc + (jc + jp * NR) * csc, rsc, csc, acc,
                                    std::min<int64_t>(MR, mc - ip * MR), nr);
          }
      }
    }
  }
}

template void gemm<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t,
                          float*, int64_t, int64_t, bool);
template void gemm<double>(int64_t, int64_t, int64_t, const double*, int64_t, int64_t, const double*, int64_t, int64_t,
                           double*, int64_t, int64_t, bool);

namespace {

template <class T>
void matmul_typed(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t nd = out.dim();
  const int64_t M = out.size(-2), N = out.size(-1), K = a.size(-1);
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const int64_t nbatch = numel_of(batch);
  const T* ab = a.data<T>();
  const T* bb = b.data<T>();
  T* ob = out.data<T>();
  auto batch_offset = [&](const Tensor& t, int64_t n) {
    int64_t off = 0;
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
      off += (n % batch[d]) * t.stride(d);
      n /= batch[d];
    }
    return off;
  };
  auto one = [&](int64_t n) {
    gemm<T>(M, N, K, ab + batch_offset(a, n), a.stride(nd - 2), a.stride(nd - 1), bb + batch_offset(b, n),
            b.stride(nd - 2), b.stride(nd - 1), ob + batch_offset(out, n), out.stride(nd - 2), out.stride(nd - 1),
            false);
  };
  // Many small products (the fusion model's per-sequence matrices): one whole product per thread.
  const double flops = static_cast<double>(M) * N * K;
  const bool across_batch =
      nbatch > 1 && flops < kParallelFlops && flops * nbatch >= kParallelFlops && !omp_in_parallel();
  if (across_batch) {
    // An exception must not leave an OpenMP region (that terminates the program): keep the first one
    // and rethrow it after the loop.
    std::exception_ptr error;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < nbatch; ++n) {
      try {
        one(n);
      } catch (...) {
#pragma omp critical(minidl_gemm_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
  } else {
    for (int64_t n = 0; n < nbatch; ++n) one(n);
  }
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  float_dispatch("matmul", out.dtype(), [&](auto tag) { matmul_typed<decltype(tag)>(a, b, out); });
}

}  // namespace minidl::cpu
