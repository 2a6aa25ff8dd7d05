// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
// counter-based generator. Block number b under key k gives four 32-bit values, computed from (b, k)
// alone, so any thread on any device can produce any part of a stream without sharing state. This header
// is compiled by both the C++ compiler and nvcc, which is how CPU and GPU draw identical numbers.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define MINIDL_HD __host__ __device__ __forceinline__
#else
#define MINIDL_HD inline
#endif

namespace minidl::philox {

struct Block {
  uint32_t v[4];
};

MINIDL_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// The 10-round Philox4x32 bijection of counter c under key (k0, k1).
MINIDL_HD Block philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;    // round multipliers
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule: golden ratio, sqrt(3)-1
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c0, hi0, lo0);
    mulhilo(kMul1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {{c0, c1, c2, c3}};
}

// The project's stream: value j of a draw that starts at block `offset` under `seed` is lane j % 4 of
// block offset + j / 4, where block b uses counter (lo32(b), hi32(b), 0, 0) and key (lo32(seed), hi32(seed)).
MINIDL_HD uint32_t stream_value(uint64_t seed, uint64_t offset, uint64_t j) {
  const uint64_t b = offset + j / 4;
  const Block blk = philox4x32_10(static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32), 0u, 0u,
                                  static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return blk.v[j % 4];
}

// 32 random bits to a float in [0, 1): the top 24 bits, exactly representable.
MINIDL_HD float to_unit_float(uint32_t u) { return static_cast<float>(u >> 8) * (1.0f / 16777216.0f); }

// 64 random bits (two values) to a double in [0, 1): the top 53 bits.
MINIDL_HD double to_unit_double(uint32_t hi, uint32_t lo) {
  const uint64_t x = ((static_cast<uint64_t>(hi) << 32) | lo) >> 11;
  return static_cast<double>(x) * (1.0 / 9007199254740992.0);
}

}  // namespace minidl::philox
