// cuda::FastDivide, the multiply-and-shift division of the convolution kernels, against the / and %
// operators. It is host and device code in one, so checking it here checks what the GPU computes.
//
// Where a magic number goes wrong, it goes wrong first next to a multiple of the divisor (the rounding
// of n m / 2^32 crosses an integer there) and at the top of the range (the error of m grows with n). So
// every divisor is tried at 0, at each multiple q d and its neighbours q d - 1 and q d + 1 for small q,
// at the multiples nearest 2^31 - 1, and at random numerators; the divisors are every value up to 4096,
// every power of two and its neighbours, and random ones up to 2^31 - 1.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "autograd/error.h"
#include "cuda/fast_divide.h"

namespace minidl::cuda {
namespace {

constexpr int64_t kTop = (int64_t{1} << 31) - 1;  // the largest numerator and divisor

// The number of numerators at which quotient or divmod disagrees with / and %.
int64_t mismatches(int64_t d, std::mt19937_64& rng) {
  const FastDivide f = FastDivide::of(d);
  std::vector<int64_t> ns = {0, 1, kTop, kTop - 1, kTop / d * d, kTop / d * d - 1};
  for (int64_t q = 1; q <= 64 && q * d + 1 <= kTop; ++q)
    for (int64_t n : {q * d - 1, q * d, q * d + 1}) ns.push_back(n);
  std::uniform_int_distribution<int64_t> any(0, kTop);
  for (int i = 0; i < 64; ++i) ns.push_back(any(rng));
  int64_t bad = 0;
  for (int64_t n : ns) {
    if (n < 0 || n > kTop) continue;
    uint32_t q = 0, r = 0;
    f.divmod(static_cast<uint32_t>(n), q, r);
    if (f.quotient(static_cast<uint32_t>(n)) != n / d || q != n / d || r != n % d) {
      if (bad++ == 0) ADD_FAILURE() << n << " / " << d << ": got " << q << " remainder " << r;
    }
  }
  return bad;
}

TEST(FastDivide, EqualsDivisionForSmallDivisors) {
  std::mt19937_64 rng(1);
  for (int64_t d = 1; d <= 4096; ++d) ASSERT_EQ(mismatches(d, rng), 0) << "divisor " << d;
}

TEST(FastDivide, EqualsDivisionAroundPowersOfTwo) {
  std::mt19937_64 rng(2);
  for (int s = 1; s <= 31; ++s)
    for (int64_t d : {(int64_t{1} << s) - 1, int64_t{1} << s, (int64_t{1} << s) + 1}) {
      if (d > kTop) continue;
      ASSERT_EQ(mismatches(d, rng), 0) << "divisor " << d;
    }
}

TEST(FastDivide, EqualsDivisionForRandomLargeDivisors) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int64_t> divisor(4097, kTop);
  for (int i = 0; i < 2000; ++i) {
    const int64_t d = divisor(rng);
    ASSERT_EQ(mismatches(d, rng), 0) << "divisor " << d;
  }
}

// Every numerator below 2^20 for a few divisors of the shapes the convolutions divide by (output planes,
// strides): exhaustive where the kernels spend their time.
TEST(FastDivide, EqualsDivisionForEveryNumeratorBelowTwoToTheTwenty) {
  for (int64_t d : {1, 2, 3, 7, 49, 56 * 56, 112 * 112, 1000}) {
    const FastDivide f = FastDivide::of(d);
    int64_t bad = 0;
    for (uint32_t n = 0; n < (1u << 20); ++n) bad += f.quotient(n) != n / d;
    EXPECT_EQ(bad, 0) << "divisor " << d;
  }
}

TEST(FastDivide, RefusesDivisorsOutsideItsRange) {
  EXPECT_THROW(FastDivide::of(0), Error);
  EXPECT_THROW(FastDivide::of(-3), Error);
  EXPECT_THROW(FastDivide::of(int64_t{1} << 31), Error);
}

}  // namespace
}  // namespace minidl::cuda
