// Philox4x32-10 and the random factories built on it.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/minidl.h"
#include "autograd/philox.h"

using namespace minidl;

// Known-answer vectors of Random123's kat_vectors (counter[4], key[2] -> output[4]).
TEST(Philox, KnownAnswerVectors) {
  const philox::Block zero = philox::philox4x32_10(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  const uint32_t f = 0xffffffffu;
  const philox::Block ones = philox::philox4x32_10(f, f, f, f, f, f);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
  const philox::Block pi =
      philox::philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(pi.v[0], 0xd16cfe09u);
  EXPECT_EQ(pi.v[1], 0x94fdccebu);
  EXPECT_EQ(pi.v[2], 0x5001e420u);
  EXPECT_EQ(pi.v[3], 0x24126ea1u);
}

TEST(Philox, StreamLayoutMatchesTheDocumentedDefinition) {
  // Value j of a draw at block offset o is lane j % 4 of block o + j / 4 (autograd/random.h).
  const uint64_t seed = 0x1234567890abcdefULL;
  const philox::Block b5 = philox::philox4x32_10(5, 0, 0, 0, 0x90abcdefu, 0x12345678u);
  for (int lane = 0; lane < 4; ++lane) EXPECT_EQ(philox::stream_value(seed, 5, lane), b5.v[lane]);
  EXPECT_EQ(philox::stream_value(seed, 3, 9), b5.v[1]);
  EXPECT_EQ(philox::to_unit_float(0xffffffffu), 1.0f - std::ldexp(1.0f, -24)) << "below 1 by one float ulp";
  EXPECT_EQ(philox::to_unit_float(0), 0.0f);
}

TEST(Random, SameSeedSameNumbersAndTheOffsetAdvances) {
  Generator a(42), b(42);
  const auto x1 = rand({1000}, {}, &a).values<float>();
  const auto y1 = rand({1000}, {}, &b).values<float>();
  EXPECT_EQ(x1, y1);
  EXPECT_EQ(a.offset(), 250u) << "1000 float32 values use 250 Philox blocks";
  const auto x2 = rand({1000}, {}, &a).values<float>();
  EXPECT_NE(x1, x2) << "the second draw continues the stream";
  manual_seed(7);
  const auto d1 = randn({10}).values<float>();
  manual_seed(7);
  EXPECT_EQ(randn({10}).values<float>(), d1);
}

TEST(Random, UniformFloat32IsTheTop24BitsOfEachValue) {
  Generator g(99);
  const auto u = rand({6}, {}, &g).values<float>();
  for (int j = 0; j < 6; ++j) EXPECT_EQ(u[j], philox::to_unit_float(philox::stream_value(99, 0, j)));
}

TEST(Random, UniformFloat64UsesTwoValuesPerElement) {
  Generator g(5);
  const auto u = rand({3}, {.dtype = kFloat64}, &g).values<double>();
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(u[i], philox::to_unit_double(philox::stream_value(5, 0, 2 * i), philox::stream_value(5, 0, 2 * i + 1)));
  EXPECT_EQ(g.offset(), 2u);
}

TEST(Random, DistributionsHaveTheRightMoments) {
  // n = 200,000 draws: the standard error of a mean is about 0.0022 sigma, so 5 sigma bounds never flake.
  Generator g(2024);
  const int64_t n = 200000;
  const Tensor u = rand({n}, {.dtype = kFloat64}, &g, -1.0, 3.0);
  EXPECT_NEAR(mean(u).item(), 1.0, 5 * std::sqrt(16.0 / 12 / n));
  EXPECT_GE(min(u).item(), -1.0);
  EXPECT_LT(max(u).item(), 3.0);
  const Tensor z = randn({n}, {.dtype = kFloat64}, &g, 2.0, 0.5);
  EXPECT_NEAR(mean(z).item(), 2.0, 5 * 0.5 / std::sqrt(n));
  EXPECT_NEAR(std::sqrt(var(z).item()), 0.5, 0.5 * 5 / std::sqrt(2.0 * n));
  const Tensor zf = randn({n}, {}, &g);
  EXPECT_NEAR(mean(zf).item(), 0.0, 5 / std::sqrt(n));
  const Tensor b = bernoulli({n}, 0.3, {}, &g);
  EXPECT_NEAR(mean(b).item(), 0.3, 5 * std::sqrt(0.3 * 0.7 / n));
  const auto bv = b.values<float>();
  for (float v : bv) ASSERT_TRUE(v == 0.0f || v == 1.0f);
}

TEST(Random, OddLengthNormalDrawsAreAPrefixOfTheEvenOnes) {
  // Pairs of elements share one Box-Muller draw; an odd count uses the first of the last pair.
  Generator a(11), b(11);
  const auto odd = randn({5}, {}, &a).values<float>();
  const auto even = randn({6}, {}, &b).values<float>();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(odd[i], even[i]);
}

TEST(Random, FactoriesHonourOptions) {
  Tensor w = randn({3, 2}, {.dtype = kFloat64, .requires_grad = true});
  EXPECT_EQ(w.dtype(), kFloat64);
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(w.is_leaf());
  EXPECT_THROW(rand({2}, {.dtype = kInt64}), Error);
}
