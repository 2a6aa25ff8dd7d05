// FFT plans for the log-mel front end. Powers of two use an iterative radix-2 Cooley-Tukey transform;
// every other length goes through Bluestein's chirp-z identity onto a power-of-two transform of length
// m >= 2n - 1. Real input of even length is packed into a complex signal of half the length, which halves
// the work of the per-frame STFT.
#include "data/fft.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "autograd/error.h"

namespace minidl::data {

namespace {

// Far beyond any STFT frame; it keeps Bluestein's padded length (<= 4n) and its tables well inside memory
// and 32-bit indices, so an absurd n is an error rather than an allocation failure.
constexpr int kMaxSize = 1 << 24;

bool is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// exp(-2 pi i k / n), evaluated in long double from the exactly reduced index: the table entries are then
// correctly rounded doubles, and no error accumulates the way it would with a twiddle recurrence.
Complex unit_root(int64_t k, int64_t n) {
  k %= n;
  const long double angle = -2.0L * std::numbers::pi_v<long double> * static_cast<long double>(k) / n;
  return {static_cast<double>(std::cos(angle)), static_cast<double>(std::sin(angle))};
}

// Hand-written complex product: std::complex's operator* checks for NaN/inf recovery (C99 Annex G) on every
// call, which costs more than the multiply itself in the butterflies.
inline Complex mul(Complex a, Complex b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}

// Per-thread scratch, so the const transforms need neither a lock nor an allocation after the first call
// of a thread. Slot 0 belongs to Bluestein, slot 1 to the odd-length real transform that calls it.
Complex* scratch(int slot, size_t n) {
  thread_local std::vector<Complex> buffers[2];
  std::vector<Complex>& buf = buffers[slot];
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// The power-of-two core: bit-reversal permutation, then log2(n) butterfly passes.
class Radix2 {
 public:
  Radix2() = default;
  explicit Radix2(int n) : n_(n), bitrev_(n), twiddles_(std::max(n, 1)) {
    int bits = 0;
    while ((1 << bits) < n) ++bits;
    for (int i = 0; i < n; ++i) {
      uint32_t r = 0;
      for (int b = 0; b < bits; ++b) r |= ((static_cast<uint32_t>(i) >> b) & 1u) << (bits - 1 - b);
      bitrev_[i] = r;
    }
    // The pass that joins blocks of `half` reads twiddles_[half + j] = exp(-2 pi i j / (2 half)), j < half:
    // each pass gets a contiguous table instead of a strided walk through one of length n.
    for (int half = 1; half < n; half *= 2)
      for (int j = 0; j < half; ++j) twiddles_[half + j] = unit_root(j, 2 * half);
  }

  void run(Complex* a) const {
    for (int i = 0; i < n_; ++i) {
      const int j = static_cast<int>(bitrev_[i]);
      if (i < j) std::swap(a[i], a[j]);
    }
    // The first pass has the twiddle 1 only.
    for (int s = 0; s + 1 < n_; s += 2) {
      const Complex u = a[s], v = a[s + 1];
      a[s] = u + v;
      a[s + 1] = u - v;
    }
    for (int half = 2; half < n_; half *= 2) {
      const Complex* w = twiddles_.data() + half;
      for (int start = 0; start < n_; start += 2 * half) {
        Complex* lo = a + start;
        Complex* hi = lo + half;
        for (int j = 0; j < half; ++j) {
          const Complex v = mul(hi[j], w[j]);
          const Complex u = lo[j];
          lo[j] = {u.real() + v.real(), u.imag() + v.imag()};
          hi[j] = {u.real() - v.real(), u.imag() - v.imag()};
        }
      }
    }
  }

 private:
  int n_ = 0;
  std::vector<uint32_t> bitrev_;
  std::vector<Complex> twiddles_;
};

// A complex forward transform of one length (no real-input support: that lives in FftPlan::Impl).
class Core {
 public:
  Core() = default;
  explicit Core(int n) : n_(n) {
    if (is_pow2(n)) {
      radix2_ = Radix2(n);
      return;
    }
    // Bluestein: jk = (j^2 + k^2 - (k - j)^2) / 2 turns the DFT into X[k] = c[k] sum_j (x[j] c[j]) conj(c[k - j])
    // with the chirp c[k] = exp(-i pi k^2 / n): a convolution, done circularly at length m >= 2n - 1.
    m_ = 1;
    while (m_ < 2 * n - 1) m_ *= 2;
    radix2_ = Radix2(m_);
    chirp_.resize(n);
    for (int64_t k = 0; k < n; ++k) chirp_[k] = unit_root((k * k) % (2 * int64_t{n}), 2 * int64_t{n});
    filter_.assign(m_, Complex{});
    for (int k = 0; k < n; ++k) {
      filter_[k] = std::conj(chirp_[k]);
      if (k > 0) filter_[m_ - k] = std::conj(chirp_[k]);
    }
    radix2_.run(filter_.data());
    // Fold the inverse transform's 1/m into the filter spectrum once.
    for (Complex& f : filter_) f /= static_cast<double>(m_);
  }

  void forward(Complex* a) const {
    if (m_ == 0) {
      radix2_.run(a);
      return;
    }
    Complex* w = scratch(0, m_);
    for (int k = 0; k < n_; ++k) w[k] = mul(a[k], chirp_[k]);
    std::fill(w + n_, w + m_, Complex{});
    radix2_.run(w);
    // Inverse transform as conj(FFT(conj(.))): the conjugation is fused into the pointwise product.
    for (int k = 0; k < m_; ++k) w[k] = std::conj(mul(w[k], filter_[k]));
    radix2_.run(w);
    for (int k = 0; k < n_; ++k) a[k] = mul(std::conj(w[k]), chirp_[k]);
  }

 private:
  int n_ = 0;
  int m_ = 0;  // Bluestein's padded length; 0 for a power of two
  Radix2 radix2_;
  std::vector<Complex> chirp_;
  std::vector<Complex> filter_;  // FFT of the conjugate chirp, wrapped circularly, divided by m
};

void check_data(const void* p, int n, const char* what) {
  MINIDL_CHECK(p != nullptr, "FftPlan::", what, ": null data pointer for a transform of size ", n);
}

void check_plan(const void* impl, const char* what) {
  MINIDL_CHECK(impl != nullptr, "FftPlan::", what, ": this plan has been moved from");
}

}  // namespace

struct FftPlan::Impl {
  Core core;
  // Even n: the half-length transform that the packed real signal goes through, and the twiddles
  // exp(-2 pi i k / n), k <= n/4, that separate its even and odd halves again.
  Core half;
  std::vector<Complex> real_twiddles;
};

FftPlan::FftPlan(int n) : n_(n) {
  MINIDL_CHECK(n >= 1, "FftPlan: size n = ", n, " must be >= 1");
  MINIDL_CHECK(n <= kMaxSize, "FftPlan: size n = ", n, " exceeds the supported maximum ", kMaxSize);
  impl_ = std::make_unique<Impl>();
  impl_->core = Core(n);
  if (n % 2 == 0) {
    impl_->half = Core(n / 2);
    impl_->real_twiddles.resize(n / 4 + 1);
    for (int k = 0; k <= n / 4; ++k) impl_->real_twiddles[k] = unit_root(k, n);
  }
}

FftPlan::~FftPlan() = default;
FftPlan::FftPlan(FftPlan&&) noexcept = default;
FftPlan& FftPlan::operator=(FftPlan&&) noexcept = default;

void FftPlan::forward(Complex* data) const {
  check_plan(impl_.get(), "forward");
  check_data(data, n_, "forward");
  impl_->core.forward(data);
}

void FftPlan::inverse(Complex* data) const {
  check_plan(impl_.get(), "inverse");
  check_data(data, n_, "inverse");
  // ifft(x) = conj(fft(conj(x))) / n: one forward code path for both directions.
  for (int k = 0; k < n_; ++k) data[k] = std::conj(data[k]);
  impl_->core.forward(data);
  const double scale = 1.0 / n_;
  for (int k = 0; k < n_; ++k) data[k] = {data[k].real() * scale, -data[k].imag() * scale};
}

std::vector<Complex> FftPlan::forward_real(const double* x) const {
  std::vector<Complex> out(n_ / 2 + 1);
  forward_real(x, out.data());
  return out;
}

void FftPlan::forward_real(const double* x, Complex* out) const {
  check_plan(impl_.get(), "forward_real");
  check_data(x, n_, "forward_real");
  check_data(out, n_, "forward_real");
  if (n_ % 2 == 1) {
    Complex* z = scratch(1, n_);
    for (int j = 0; j < n_; ++j) z[j] = {x[j], 0.0};
    impl_->core.forward(z);
    std::copy(z, z + n_ / 2 + 1, out);
    return;
  }
  // z[j] = x[2j] + i x[2j+1] has Z[k] = E[k] + i O[k], with E and O the length-h transforms of the even and
  // odd samples. Z[k] and conj(Z[h-k]) separate them: E[k] = (Z[k] + conj(Z[h-k])) / 2,
  // O[k] = (Z[k] - conj(Z[h-k])) / 2i, and X[k] = E[k] + W^k O[k] with W = exp(-2 pi i / n).
  const int h = n_ / 2;
  for (int j = 0; j < h; ++j) out[j] = {x[2 * j], x[2 * j + 1]};
  impl_->half.forward(out);
  const Complex z0 = out[0];
  out[0] = {z0.real() + z0.imag(), 0.0};
  out[h] = {z0.real() - z0.imag(), 0.0};
  // Bins k and h - k come from the same pair of Z values, so each pair is done together (in place):
  // X[h-k] = conj(E[k] - W^k O[k]), because E[h-k] = conj(E[k]), O[h-k] = conj(O[k]), W^(h-k) = -conj(W^k).
  const Complex* tw = impl_->real_twiddles.data();
  for (int k = 1; 2 * k <= h; ++k) {
    const Complex zk = out[k], zj = out[h - k];
    const Complex e{0.5 * (zk.real() + zj.real()), 0.5 * (zk.imag() - zj.imag())};
    // o = (zk - conj(zj)) / 2i
    const Complex o{0.5 * (zk.imag() + zj.imag()), -0.5 * (zk.real() - zj.real())};
    const Complex wo = mul(tw[k], o);
    out[k] = {e.real() + wo.real(), e.imag() + wo.imag()};
    out[h - k] = {e.real() - wo.real(), -(e.imag() - wo.imag())};
  }
}

std::vector<Complex> dft(const std::vector<Complex>& x, bool inverse) {
  const int64_t n = static_cast<int64_t>(x.size());
  MINIDL_CHECK(n >= 1, "dft: the input is empty (size n = 0 must be >= 1)");
  // O(n^2) work: the size cap keeps a mistaken call from running for hours.
  MINIDL_CHECK(n <= (1 << 16), "dft: size n = ", n, " is too large for the O(n^2) reference (max 65536)");
  using LComplex = std::complex<long double>;
  // Roots in long double indexed by (j k mod n): exact argument reduction, and long double sums keep the
  // reference's own rounding error (~1e-19 n) far below the FFT's (~1e-16 log n).
  std::vector<LComplex> roots(n);
  for (int64_t r = 0; r < n; ++r) {
    const long double angle =
        (inverse ? 2.0L : -2.0L) * std::numbers::pi_v<long double> * static_cast<long double>(r) / n;
    roots[r] = {std::cos(angle), std::sin(angle)};
  }
  std::vector<Complex> out(n);
  for (int64_t k = 0; k < n; ++k) {
    long double re = 0.0L, im = 0.0L;
    int64_t idx = 0;  // j * k mod n, advanced by k each step
    for (int64_t j = 0; j < n; ++j) {
      const LComplex& w = roots[idx];
      const long double xr = x[j].real(), xi = x[j].imag();
      re += xr * w.real() - xi * w.imag();
      im += xr * w.imag() + xi * w.real();
      idx += k;
      if (idx >= n) idx -= n;
    }
    if (inverse) {
      re /= n;
      im /= n;
    }
    out[k] = {static_cast<double>(re), static_cast<double>(im)};
  }
  return out;
}

}  // namespace minidl::data
