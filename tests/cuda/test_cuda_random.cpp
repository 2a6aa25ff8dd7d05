// Philox on the device (cuda/random.cu) against the CPU stream: the same seed and offset give the same
// numbers, so initialisation and dropout masks can be compared step by step across devices.
//
// Uniforms and Bernoulli draws are made from the same 32-bit integers with the same float arithmetic:
// bit for bit. Normals go through double log, sqrt, sin and cos, whose CUDA and glibc versions may differ
// in the last bit of the double; rounded to float32 the results must still agree to one unit in the last
// place, and nearly all of them exactly.
#include <cstring>

#include "tests/cuda/cuda_test_helpers.h"

using namespace minidl;
using namespace minidl::cuda_test;

namespace {
// Distance in units in the last place between two finite floats of the same sign.
int64_t ulps(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::llabs(static_cast<int64_t>(ia) - ib);
}
}  // namespace

TEST(CudaRandom, UniformAndBernoulliAreBitForBitTheCpuStream) {
  REQUIRE_GPU();
  for (int64_t n : {1, 7, 33, 4097, 100003}) {
    SCOPED_TRACE(n);
    Generator gc(11), gg(11);
    EXPECT_EQ(compare_bits(rand({n}, {.device = kGpu}, &gg, -1.5, 2.5), rand({n}, {}, &gc, -1.5, 2.5)), "");
    EXPECT_EQ(gg.offset(), gc.offset());
    EXPECT_EQ(compare_bits(bernoulli({n}, 0.3, {.device = kGpu}, &gg), bernoulli({n}, 0.3, {}, &gc)), "");
    // float64 uses two stream values per element.
    const std::vector<double> d = rand({n}, {.dtype = kFloat64, .device = kGpu}, &gg).values<double>();
    EXPECT_EQ(d, rand({n}, {.dtype = kFloat64}, &gc).values<double>());
  }
}

TEST(CudaRandom, NormalsAgreeToTheLastBit) {
  REQUIRE_GPU();
  Generator gc(12), gg(12);
  const int64_t n = 1 << 18;
  const std::vector<float> c = randn({n + 1}, {}, &gc).values<float>();  // odd: the last pair is cut
  const std::vector<float> g = randn({n + 1}, {.device = kGpu}, &gg).values<float>();
  int64_t exact = 0, worst = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    exact += c[i] == g[i];
    worst = std::max(worst, ulps(c[i], g[i]));
  }
  EXPECT_LE(worst, 1);
  EXPECT_GE(exact, static_cast<int64_t>(c.size() * 0.999)) << exact << " of " << c.size() << " bit-equal";
}

TEST(CudaRandom, DropoutMasksAreTheSameOnBothDevices) {
  REQUIRE_GPU();
  Generator gc(13), gg(13);
  const Tensor x = ones({64, 33});
  const Tensor yc = dropout(x, 0.4, true, &gc), yg = dropout(x.to(kGpu), 0.4, true, &gg);
  EXPECT_EQ(compare_bits(yg, yc), "");
  const Tensor cc = channel_dropout(ones({4, 8, 5, 5}), 0.5, true, &gc);
  const Tensor cg = channel_dropout(ones({4, 8, 5, 5}, {.device = kGpu}), 0.5, true, &gg);
  EXPECT_EQ(compare_bits(cg, cc), "");
}

TEST(CudaRandom, ArangeAndFillsOnTheDevice) {
  REQUIRE_GPU();
  EXPECT_EQ(arange(-3.0, 7.5, 0.5, {.device = kGpu}).values<float>(), arange(-3.0, 7.5, 0.5).values<float>());
  EXPECT_EQ(arange(0.0, 10.0, 3.0, {.dtype = kInt64, .device = kGpu}).values<int64_t>(),
            (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(full({3, 2}, -2.25, {.device = kGpu}).values<float>(), std::vector<float>(6, -2.25f));
}
