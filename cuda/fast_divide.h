// Division by a divisor fixed for a whole launch, as a multiply and a shift.
//
// A GPU has no integer divider: n / d with d known only at run time compiles to about twenty
// instructions (a float reciprocal and corrections), and the convolution kernels divide in their inner
// loops (a reduction index by the output plane, a position by the stride). The host knows d before the
// launch, so it picks m and s once with
//     n / d == (umulhi(n, m) + n) >> s     for every 0 <= n < 2^31,
// where s = ceil(log2 d) and m = floor(2^32 (2^s - d) / d) + 1 (the round-up method of Granlund and
// Montgomery, "Division by invariant integers using multiplication", 1994, section 4). The sum cannot
// overflow because umulhi(n, m) <= n < 2^31. Host and device share it, so the CPU tests check it.
#pragma once

#include <cstdint>

#include "autograd/error.h"
#include "autograd/philox.h"  // MINIDL_HD

namespace minidl::cuda {

struct FastDivide {
  uint32_t divisor = 1, magic = 1, shift = 0;

  // For 1 <= d < 2^31 (the kernels' 32-bit extents); numerators must be below 2^31 too.
  static FastDivide of(int64_t d) {
    MINIDL_CHECK(d >= 1 && d < (int64_t{1} << 31), "FastDivide: divisor ", d, " is outside [1, 2^31)");
    FastDivide f;
    f.divisor = static_cast<uint32_t>(d);
    while ((uint64_t{1} << f.shift) < f.divisor) ++f.shift;
    const uint64_t two_s = uint64_t{1} << f.shift;
    f.magic = static_cast<uint32_t>(((uint64_t{1} << 32) * (two_s - f.divisor)) / f.divisor + 1);
    return f;
  }

  MINIDL_HD uint32_t quotient(uint32_t n) const {
    const uint32_t high = static_cast<uint32_t>((static_cast<uint64_t>(n) * magic) >> 32);
    return (high + n) >> shift;
  }
  // n = q d + r with 0 <= r < d.
  MINIDL_HD void divmod(uint32_t n, uint32_t& q, uint32_t& r) const {
    q = quotient(n);
    r = n - q * divisor;
  }
};

}  // namespace minidl::cuda
