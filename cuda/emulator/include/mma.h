// Stands in for the toolkit's mma.h in the emulated build (cuda/emulator/emulator.h): the part of
// nvcuda::wmma that the TF32 GEMM uses (m16n16k8, tf32 inputs, float accumulators).
//
// An accumulator is spread over the warp, eight elements per lane as on the GPU: lane l holds elements
// l, l + 32, ..., l + 224 of the row-major 16 x 16 tile (CUDA leaves its own mapping unspecified, so a
// kernel may not rely on either). So a lane that skips a store, a fill or an mma leaves its eighth of the
// tile wrong, and the kernel's test sees it. Loads and stores check CUDA's rules: a 32-byte aligned
// pointer and ldm a multiple of 16 bytes. The inputs are simpler: every lane
// holds the whole 16 x 8 (a) or 8 x 16 (b) tile, which the kernels only convert element by element and
// pass to mma_sync. The products are summed in float in k order; a tensor core's order and rounding
// differ, which the TF32 tests' tolerance covers.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace nvcuda::wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
// This lane's index in its warp.
int lane();
// Stops the kernel with a fault unless `ok` (pointer alignment and ldm of a load or store).
void check(bool ok, const char* what);
inline bool valid(const float* p, unsigned ldm) { return reinterpret_cast<uintptr_t>(p) % 32 == 0 && ldm % 4 == 0; }
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment;

// a: 16 x 8, b: 8 x 16, whole in every lane, row-major in x.
template <class Layout>
struct fragment<matrix_a, 16, 16, 8, precision::tf32, Layout> {
  static constexpr int rows = 16, cols = 8, num_elements = 128;
  float x[num_elements];
};
template <class Layout>
struct fragment<matrix_b, 16, 16, 8, precision::tf32, Layout> {
  static constexpr int rows = 8, cols = 16, num_elements = 128;
  float x[num_elements];
};
template <>
struct fragment<accumulator, 16, 16, 8, float, void> {
  static constexpr int num_elements = 8;
  float x[num_elements];
  // Row-major position in the 16 x 16 tile of this lane's element t.
  static int position(int t) { return t * 32 + detail::lane(); }
};

template <class Use, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 8, precision::tf32, Layout>& f, const float* p, unsigned ldm) {
  using F = fragment<Use, 16, 16, 8, precision::tf32, Layout>;
  constexpr bool row = std::is_same_v<Layout, row_major>;
  detail::check(detail::valid(p, ldm), "wmma::load_matrix_sync");
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = row ? p[r * ldm + c] : p[c * ldm + r];
}

inline void fill_fragment(fragment<accumulator, 16, 16, 8, float>& f, float v) {
  for (float& e : f.x) e = v;
}

template <class LA, class LB>
void mma_sync(fragment<accumulator, 16, 16, 8, float>& d, const fragment<matrix_a, 16, 16, 8, precision::tf32, LA>& a,
              const fragment<matrix_b, 16, 16, 8, precision::tf32, LB>& b,
              const fragment<accumulator, 16, 16, 8, float>& c) {
  for (int t = 0; t < 8; ++t) {
    const int pos = fragment<accumulator, 16, 16, 8, float>::position(t), r = pos / 16, col = pos % 16;
    float s = c.x[t];
    for (int k = 0; k < 8; ++k) s = std::fma(a.x[r * 8 + k], b.x[k * 16 + col], s);
    d.x[t] = s;
  }
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 8, float>& f, unsigned ldm,
                              layout_t layout) {
  detail::check(detail::valid(p, ldm), "wmma::store_matrix_sync");
  for (int t = 0; t < 8; ++t) {
    const int pos = fragment<accumulator, 16, 16, 8, float>::position(t), r = pos / 16, c = pos % 16;
    p[layout == mem_row_major ? r * ldm + c : c * ldm + r] = f.x[t];
  }
}

// Rounds to the nearest value with a 10-bit mantissa, ties away from zero (cvt.rna.tf32.f32).
inline float __float_to_tf32(float v) {
  if (!std::isfinite(v)) return v;
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, 4);
  return v;
}

}  // namespace nvcuda::wmma
