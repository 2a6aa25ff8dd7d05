// FftPlan against the direct DFT: radix-2 and Bluestein lengths, the inverse, Parseval, the real-input
// transform, closed-form spectra, concurrent use of one plan, and the size errors.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <numbers>
#include <random>
#include <thread>
#include <vector>

#include "data/fft.h"
#include "tests/autograd/expect_error.h"

namespace {

using minidl::data::Complex;
using minidl::data::dft;
using minidl::data::FftPlan;

// Radix-2 lengths, small primes, even and odd Bluestein lengths, and the STFT sizes the front end uses
// (400, 882, 1024 and the 1000 / 1024 neighbours).
const std::vector<int> kSizes = {1, 2, 3, 5, 7, 8, 12, 16, 17, 30, 64, 100, 128, 400, 882, 1000, 1024};

std::vector<Complex> random_complex(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<Complex> x(n);
  for (Complex& v : x) v = {u(rng), u(rng)};
  return x;
}

std::vector<double> random_real(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> x(n);
  for (double& v : x) v = u(rng);
  return x;
}

double norm2(const std::vector<Complex>& x) {
  double s = 0.0;
  for (const Complex& v : x) s += std::norm(v);
  return std::sqrt(s);
}

double max_abs_diff(const Complex* a, const Complex* b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Tolerance: a floating-point FFT's error is ~ eps * O(log n) * ||X||_2 (norm-wise; Bluestein adds two more
// transforms of length m <= 4n and a chirp product, still O(log m)). With eps = 1.1e-16 and log2 m <= 12
// that is ~1e-15 relative to the norm; 1e-12 leaves three orders of margin and still fails any wrong twiddle,
// index or scale, which give O(1) relative errors. The long-double DFT's own error is ~1e-19 relative.
constexpr double kRelTol = 1e-12;

TEST(Fft, ForwardMatchesDirectDft) {
  for (int n : kSizes) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const std::vector<Complex> x = random_complex(n, 1000 + n);
    const std::vector<Complex> ref = dft(x);
    std::vector<Complex> y = x;
    FftPlan plan(n);
    EXPECT_EQ(plan.size(), n);
    plan.forward(y.data());
    EXPECT_LE(max_abs_diff(y.data(), ref.data(), n), kRelTol * norm2(ref));
  }
}

TEST(Fft, InverseMatchesDirectDftAndRoundTrips) {
  for (int n : kSizes) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const std::vector<Complex> x = random_complex(n, 2000 + n);
    FftPlan plan(n);
    std::vector<Complex> y = x;
    plan.inverse(y.data());
    const std::vector<Complex> ref = dft(x, /*inverse=*/true);
    EXPECT_LE(max_abs_diff(y.data(), ref.data(), n), kRelTol * norm2(ref));

    std::vector<Complex> z = x;
    plan.forward(z.data());
    plan.inverse(z.data());
    EXPECT_LE(max_abs_diff(z.data(), x.data(), n), kRelTol * norm2(x));
  }
}

TEST(Fft, DirectDftRoundTrips) {
  const std::vector<Complex> x = random_complex(37, 7);
  const std::vector<Complex> back = dft(dft(x), true);
  EXPECT_LE(max_abs_diff(back.data(), x.data(), x.size()), 1e-15 * norm2(x));
}

TEST(Fft, Parseval) {
  // sum |X|^2 = n sum |x|^2, both sides positive sums: relative error ~ n eps at worst.
  for (int n : kSizes) {
    SCOPED_TRACE("n = " + std::to_string(n));
    std::vector<Complex> x = random_complex(n, 3000 + n);
    const double energy = std::pow(norm2(x), 2);
    FftPlan(n).forward(x.data());
    EXPECT_NEAR(std::pow(norm2(x), 2), n * energy, kRelTol * n * energy);
  }
}

TEST(Fft, ClosedFormSpectra) {
  for (int n : {1, 6, 16, 17, 400}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    FftPlan plan(n);
    // An impulse at 0 has the flat spectrum 1.
    std::vector<Complex> x(n, Complex{});
    x[0] = 1.0;
    plan.forward(x.data());
    for (int k = 0; k < n; ++k) EXPECT_LE(std::abs(x[k] - Complex{1.0}), 1e-13) << "k = " << k;
    // exp(2 pi i k0 j / n) transforms to n at bin k0 and 0 elsewhere.
    const int k0 = n / 3;
    for (int j = 0; j < n; ++j) x[j] = std::polar(1.0, 2.0 * std::numbers::pi * k0 * j / n);
    plan.forward(x.data());
    for (int k = 0; k < n; ++k) EXPECT_LE(std::abs(x[k] - Complex{k == k0 ? double(n) : 0.0}), 1e-12 * n) << k;
  }
}

TEST(Fft, ForwardRealMatchesComplexTransform) {
  for (int n : kSizes) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const std::vector<double> x = random_real(n, 4000 + n);
    std::vector<Complex> full(x.begin(), x.end());
    FftPlan plan(n);
    plan.forward(full.data());
    const std::vector<Complex> half = plan.forward_real(x.data());
    ASSERT_EQ(half.size(), static_cast<size_t>(n / 2 + 1));
    const double tol = kRelTol * norm2(full);
    EXPECT_LE(max_abs_diff(half.data(), full.data(), half.size()), tol);
    // The DC bin (and the Nyquist bin of an even length) of a real signal are real.
    EXPECT_LE(std::abs(half[0].imag()), tol);
    if (n % 2 == 0) {
      EXPECT_LE(std::abs(half[n / 2].imag()), tol);
    }

    // The allocation-free overload writes exactly n/2 + 1 bins: the guard cell after them is untouched.
    std::vector<Complex> out(n / 2 + 2, Complex{-7.0, 7.0});
    plan.forward_real(x.data(), out.data());
    EXPECT_LE(max_abs_diff(out.data(), half.data(), half.size()), 1e-15 * norm2(full));
    EXPECT_EQ(out.back(), (Complex{-7.0, 7.0}));
  }
}

TEST(Fft, MovedPlanStillWorks) {
  FftPlan a(30);
  FftPlan b(std::move(a));
  FftPlan c(8);
  c = std::move(b);
  EXPECT_EQ(c.size(), 30);
  std::vector<Complex> x = random_complex(30, 5);
  const std::vector<Complex> ref = dft(x);
  c.forward(x.data());
  EXPECT_LE(max_abs_diff(x.data(), ref.data(), 30), kRelTol * norm2(ref));
}

TEST(Fft, OnePlanFromSeveralThreads) {
  // The loader runs one LogMel (and so one plan) from several workers: the const transforms must not share
  // scratch between threads. Each thread checks its own results against a reference computed up front.
  for (int n : {882, 1024}) {
    const FftPlan plan(n);
    const std::vector<double> x = random_real(n, 99);
    const std::vector<Complex> ref = plan.forward_real(x.data());
    std::vector<int> bad(4, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int rep = 0; rep < 200; ++rep) {
          std::vector<Complex> got = plan.forward_real(x.data());
          if (max_abs_diff(got.data(), ref.data(), ref.size()) != 0.0) ++bad[t];
        }
      });
    }
    for (std::thread& th : threads) th.join();
    for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << "n = " << n << ", thread " << t;
  }
}

TEST(Fft, BadSizesAndPointersAreErrors) {
  EXPECT_ERROR(FftPlan(0), "FftPlan", "n = 0", ">= 1");
  EXPECT_ERROR(FftPlan(-5), "FftPlan", "n = -5");
  EXPECT_ERROR(FftPlan(1 << 30), "FftPlan", "n = 1073741824", "maximum");
  EXPECT_ERROR(dft({}), "dft", "empty");
  EXPECT_ERROR(dft(std::vector<Complex>(100000)), "dft", "n = 100000");
  const FftPlan plan(12);
  EXPECT_ERROR(plan.forward(nullptr), "FftPlan::forward", "null", "12");
  EXPECT_ERROR(plan.inverse(nullptr), "FftPlan::inverse", "null");
  EXPECT_ERROR(plan.forward_real(nullptr), "FftPlan::forward_real", "null");
  const std::vector<double> x(12, 0.0);
  EXPECT_ERROR(plan.forward_real(x.data(), nullptr), "FftPlan::forward_real", "null");
  FftPlan moved(8);
  const FftPlan taker(std::move(moved));
  std::vector<Complex> z(8);
  EXPECT_ERROR(moved.forward(z.data()), "FftPlan::forward", "moved from");
  EXPECT_ERROR(moved.inverse(z.data()), "FftPlan::inverse", "moved from");
  EXPECT_ERROR(moved.forward_real(x.data()), "FftPlan::forward_real", "moved from");
}

}  // namespace
