// One warp-wide TF32 tensor-core product, D = A B + D with A 16 x 8, B 8 x 8 and D 16 x 8 in float32
// (PTX mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32), and the rounding of its inputs.
//
// Unlike WMMA, whose fragment layout CUDA leaves unspecified, mma.sync fixes which lane holds which
// element, so a kernel can load its fragments straight from shared memory with 32-bit loads at the
// addresses it chooses. With g = lane / 4 and t = lane % 4 (PTX ISA, "Matrix fragments for mma.m16n8k8",
// .tf32):
//   a[i]: A[g + 8 (i % 2)][t + 4 (i / 2)]     (rows g and g + 8, columns t and t + 4)
//   b[i]: B[t + 4 i][g]
//   d[i]: D[g + 8 (i / 2)][2 t + i % 2]
// The tensor cores use only the 19 high bits of each 32-bit input (sign, exponent, 10-bit mantissa), so
// an unrounded input is truncated. round_to_tf32 rounds to nearest first, which halves the input error
// and takes away its bias towards zero.
//
// Under the emulator (MINIDL_CUDA_EMULATED) the product is a warp exchange: every lane leaves its
// fragments in a per-warp table and meets the others at a full-mask __syncwarp (so a lane that skips an
// mma is reported, as it would hang or corrupt the tile on the GPU), then computes its four outputs from
// the table, truncating the inputs as the hardware does and summing in k order in float, and meets them
// again before the table can be refilled. The GPU's order of summation and its internal rounding differ;
// the TF32 tests' tolerances cover that.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace minidl::cuda {

// TF32 values as float bits (infinities and NaNs keep theirs): the low 13 mantissa bits dropped, as the
// tensor cores drop them, or rounded to the nearest TF32 value with ties to even.
__host__ __device__ inline uint32_t truncated_tf32_bits(uint32_t u) {
  return (u & 0x7f800000u) == 0x7f800000u ? u : u & 0xffffe000u;
}
__host__ __device__ inline uint32_t nearest_tf32_bits(uint32_t u) {
  return (u & 0x7f800000u) == 0x7f800000u ? u : (u + 0xfffu + ((u >> 13) & 1u)) & 0xffffe000u;
}

#if defined(MINIDL_CUDA_EMULATED)
namespace mma_emulation {
inline float with_bits(float v, uint32_t (*f)(uint32_t)) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = f(u);
  std::memcpy(&v, &u, 4);
  return v;
}
struct Fragments {
  float a[4], b[2];
};
inline Fragments& slot(int warp, int lane) {
  static thread_local Fragments table[32][32];  // blocks run one at a time on the host thread
  return table[warp][lane];
}
}  // namespace mma_emulation
#endif

// Rounds to the nearest TF32 value, ties to even; the result is a float whose low 13 mantissa bits are
// zero. sm_90 does it in one instruction (cvt.rn.tf32.f32, an F2FP); older targets have only cvt.rna
// (ties away from zero, three or four instructions), so they use the integer form, and every target
// and the emulator round alike.
__device__ __forceinline__ float round_to_tf32(float v) {
#if defined(MINIDL_CUDA_EMULATED)
  return mma_emulation::with_bits(v, nearest_tf32_bits);
#elif __CUDA_ARCH__ >= 900
  uint32_t r;
  asm("cvt.rn.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(v));
  return __uint_as_float(r);
#else
  return __uint_as_float(nearest_tf32_bits(__float_as_uint(v)));
#endif
}

// d += A B for this lane's fragments (layout above). Every lane of the warp must call it together.
__device__ __forceinline__ void mma_tf32_16x8x8(float (&d)[4], const float (&a)[4], const float (&b)[2]) {
#if defined(MINIDL_CUDA_EMULATED)
  using namespace mma_emulation;
  const int thread = static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
  const int warp = thread / 32, lane = thread % 32;
  Fragments& mine = slot(warp, lane);
  for (int i = 0; i < 4; ++i) mine.a[i] = with_bits(a[i], truncated_tf32_bits);
  for (int i = 0; i < 2; ++i) mine.b[i] = with_bits(b[i], truncated_tf32_bits);
  __syncwarp();
  const int g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
    float s = d[i];
    for (int k = 0; k < 8; ++k) {
      // A[row][k] is a[(row / 8) + 2 (k / 4)] of lane (row % 8) * 4 + k % 4; B[k][col] is b[k / 4] of
      // lane col * 4 + k % 4.
      const float x = slot(warp, (row % 8) * 4 + k % 4).a[row / 8 + 2 * (k / 4)];
      const float y = slot(warp, col * 4 + k % 4).b[k / 4];
      s = std::fma(x, y, s);
    }
    d[i] = s;
  }
  __syncwarp();  // no lane refills the table for its next mma while another still reads this one
#else
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])), "r"(__float_as_uint(a[2])), "r"(__float_as_uint(a[3])),
        "r"(__float_as_uint(b[0])), "r"(__float_as_uint(b[1])));
#endif
}

}  // namespace minidl::cuda
