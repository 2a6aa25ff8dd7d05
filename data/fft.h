// The discrete Fourier transform, for the log-mel front end: an FFT plan for any length (iterative
// radix-2 for powers of two, Bluestein's chirp-z algorithm over a power-of-two FFT for every other
// length), and the direct O(n^2) DFT that tests compare it with.
#pragma once

#include <complex>
#include <memory>
#include <vector>

namespace minidl::data {

using Complex = std::complex<double>;

class FftPlan {
 public:
  explicit FftPlan(int n);  // n >= 1; twiddles and bit-reversal computed once here
  ~FftPlan();
  FftPlan(FftPlan&&) noexcept;
  FftPlan& operator=(FftPlan&&) noexcept;

  int size() const { return n_; }
  // In place: X[k] = sum_j x[j] e^{-2 pi i jk/n}. The inverse divides by n, so inverse(forward(x)) == x.
  void forward(Complex* data) const;
  void inverse(Complex* data) const;
  // The first n/2 + 1 bins of the transform of a real signal of length n.
  std::vector<Complex> forward_real(const double* x) const;
  // The same into out[0, n/2 + 1), allocation-free after a thread's first call (the per-frame STFT path).
  void forward_real(const double* x, Complex* out) const;

 private:
  struct Impl;
  int n_;
  std::unique_ptr<Impl> impl_;
};

// Direct evaluation of the same sums (inverse divides by n too): the reference for tests.
std::vector<Complex> dft(const std::vector<Complex>& x, bool inverse = false);

}  // namespace minidl::data
