// CPU convolution over 1-3 spatial dims as im2col + the packed GEMM (cpu/gemm.cpp). Declared in cpu/conv.h.
//
// Layout. For one batch item and one group the column matrix col [K, P] has one row per (channel, kd, kh,
// kw) of the group, K = C_in/G kd kh kw, row-major in that order (the order of the weight's own dims, so
// w_g [C_out/G, K] is just the weight's rows), and one column per output position, P = od oh ow, row-major.
// Row r, column p holds the input element that kernel tap r sees at output p, or 0 where it falls in the
// padding. Then
//   forward          y_g  [C_out/G, P] = w_g · col
//   input gradient   dcol [K, P]       = w_g^T · gy_g,  gx = col2im(dcol)
//   weight gradient  gw_g [C_out/G, K] = sum over items of gy_g · col^T
// Transposes are strides handed to the GEMM, never copies. col is never built whole: it is made a chunk
// of output lines (od, oh) at a time, about 1 MiB, used by the GEMM while it is still in the L2 cache (a
// 3x3x3 conv over 64 channels has a 21 MB col per item; streaming it through memory cost as much as the
// multiply-adds). A pointwise conv (kernel 1, stride 1, no padding) skips im2col: col is the input itself,
// and dcol is gx itself.
//
// Threads. Independent pieces of work run in parallel, each thread with its own column buffer (the GEMM sees
// it is inside a parallel region and stays on one thread): in the forward pass the (item, group, chunk)
// units, whenever there are at least as many as threads; in the backward pass whole items (their
// gradients add up across chunks and groups), when every thread gets one or the per-item GEMM is too small
// to split well. Otherwise the pieces run one after another and the GEMM, im2col and col2im use all
// threads. Calls below 2^18 multiply-adds run on one thread.
//
// Determinism, whatever the thread count and whichever path ran (the chunks depend on the shapes only):
//   - every y and dcol element comes from one GEMM, whose sum order is fixed;
//   - col2im adds into gx channel by channel (a channel's rows only reach that channel), chunks, rows and
//     columns in order, so each gx element receives its terms in one fixed order;
//   - the weight gradient of each item is summed chunk after chunk into a scratch matrix, and the items'
//     matrices are added into gw in batch order, ((0 + p_0) + p_1) + ..., on both paths;
//   - the bias gradient sums each channel in batch-then-space order in double.
#include "cpu/conv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>

#include "autograd/error.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/kernels.h"
#include "cpu/strided_loop.h"

namespace minidl::cpu {
namespace {

// Below this many multiply-adds per batch item the GEMM splits poorly over threads: run items in parallel.
constexpr double kSmallItem = 1 << 22;
// Below this many in the whole call, one thread does everything: waking a team costs more (the GEMM's rule).
constexpr double kSmallCall = 1 << 18;
// Column chunks: about half of a 2 MiB L2, so im2col's output is still cached when the GEMM packs it.
constexpr int64_t kChunkBytes = 1 << 20, kChunkColumns = 128;

// The positions o in [0, out) whose tap at kernel index k lands inside the input: o stride - padding +
// k dilation in [0, in). The set is a contiguous range; `offset` is the input position at o = 0.
struct Valid {
  int64_t lo = 0, hi = 0, offset = 0;
};

Valid valid_range(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding, int64_t dilation) {
  Valid v;
  v.offset = k * dilation - padding;
  v.lo = v.offset >= 0 ? 0 : -v.offset / stride + (-v.offset % stride != 0);  // ceil, without overflow
  const int64_t last = in - 1 - v.offset;                                     // o stride <= last
  v.hi = last < 0 ? 0 : std::min(out, last / stride + 1);
  v.lo = std::min(v.lo, v.hi);
  return v;
}

// Everything the loops need, derived once from the ConvShape.
struct Geometry {
  const ConvShape& s;
  int64_t B, cin, cout, G, cg, cog, taps, K, S, P;
  bool pointwise;
  // valid[d][k]: the output range tap k of spatial dim d reaches.
  std::array<std::vector<Valid>, 3> valid;

  explicit Geometry(const ConvShape& sh)
      : s(sh),
        B(sh.batch),
        cin(sh.in_channels),
        cout(sh.out_channels),
        G(sh.groups),
        cg(sh.in_channels / sh.groups),
        cog(sh.out_channels / sh.groups),
        taps(sh.kernel[0] * sh.kernel[1] * sh.kernel[2]),
        K(cg * taps),
        S(sh.in[0] * sh.in[1] * sh.in[2]),
        P(sh.out[0] * sh.out[1] * sh.out[2]) {
    pointwise = taps == 1;
    for (int d = 0; d < 3; ++d) {
      pointwise &= sh.stride[d] == 1 && sh.padding[d] == 0;
      for (int64_t k = 0; k < sh.kernel[d]; ++k)
        valid[d].push_back(valid_range(sh.in[d], sh.out[d], k, sh.stride[d], sh.padding[d], sh.dilation[d]));
    }
  }
};

// Runs fn(channel) for channels [0, n), on all threads when `parallel`.
template <class Fn>
void for_channels(int64_t n, bool parallel, Fn&& fn) {
#pragma omp parallel for schedule(static) if (parallel && n > 1)
  for (int64_t c = 0; c < n; ++c) fn(c);
}

// The output lines [l0, l1) of one item and group, a line being one (od, oh) pair and its ow_n positions.
struct Lines {
  int64_t l0, l1;
  int64_t columns(const Geometry& g) const { return (l1 - l0) * g.s.out[2]; }
};

// One kernel tap's view of a chunk: its lines split into runs, in order. pad(i, count): lines i .. i +
// count - 1 of the chunk read only padding. rows(i, count, at): they read the input, line i's element at
// ow = vw.lo being x[at] and each further line's `line_step` after the one before. A run ends at the
// end of an od plane, so there is one division per plane rather than one per line: the chunks of a
// small model are many short lines, and per-line overhead used to cost more than the copying.
struct TapLines {
  const Geometry& g;
  const Valid &vd, &vh, &vw;
  int64_t line_step() const { return g.s.stride[1] * g.s.in[2]; }
  // The lines of a run are one contiguous block, in col and in x: full-width rows, no stride in w,
  // each line following the last (a kx1x1 conv, or any conv over 1-pixel-high rows).
  bool contiguous() const {
    return vw.lo == 0 && vw.hi == g.s.out[2] && g.s.stride[2] == 1 && line_step() == g.s.out[2];
  }
  template <class Pad, class Rows>
  void each_run(const Lines& ls, Pad&& pad, Rows&& rows) const {
    const Dims3 &in = g.s.in, &st = g.s.stride;
    const int64_t oh_n = g.s.out[1];
    for (int64_t l = ls.l0; l < ls.l1;) {
      const int64_t od = l / oh_n, a = l % oh_n, b = a + (std::min(ls.l1, (od + 1) * oh_n) - l), i = l - ls.l0;
      l += b - a;
      if (od < vd.lo || od >= vd.hi || vw.lo == vw.hi) {
        pad(i, b - a);
        continue;
      }
      const int64_t lo = std::clamp(vh.lo, a, b), hi = std::clamp(vh.hi, lo, b);
      if (lo > a) pad(i, lo - a);
      if (hi > lo)
        rows(i + (lo - a), hi - lo,
             ((od * st[0] + vd.offset) * in[1] + lo * st[1] + vh.offset) * in[2] + (vw.lo * st[2] + vw.offset));
      if (b > hi) pad(i + (hi - a), b - hi);
    }
  }
};

// col [cg * taps, columns] for the output lines `ls`, from the cg channels of one item and group at x.
template <class T>
void im2col(const Geometry& g, const T* x, const Lines& ls, T* col, bool parallel) {
  const Dims3& kn = g.s.kernel;
  const int64_t ow_n = g.s.out[2], n = ls.columns(g), sw = g.s.stride[2];
  for_channels(g.cg, parallel, [&](int64_t c) {
    const T* xc = x + c * g.S;
    T* row = col + c * g.taps * n;
    for (int64_t kd = 0; kd < kn[0]; ++kd)
      for (int64_t kh = 0; kh < kn[1]; ++kh)
        for (int64_t kw = 0; kw < kn[2]; ++kw, row += n) {
          const TapLines tap{g, g.valid[0][kd], g.valid[1][kh], g.valid[2][kw]};
          const int64_t lo = tap.vw.lo, hi = tap.vw.hi, step = tap.line_step();
          const bool contiguous = tap.contiguous();
          tap.each_run(
              ls, [&](int64_t i, int64_t count) { std::fill_n(row + i * ow_n, count * ow_n, T(0)); },
              [&](int64_t i, int64_t count, int64_t at) {
                if (contiguous) {
                  std::memcpy(row + i * ow_n, xc + at, sizeof(T) * count * ow_n);
                  return;
                }
                for (int64_t r = 0; r < count; ++r) {
                  T* dst = row + (i + r) * ow_n;
                  const T* src = xc + at + r * step;
                  for (int64_t j = 0; j < lo; ++j) dst[j] = T(0);
                  if (sw == 1) {
#pragma omp simd
                    for (int64_t j = 0; j < hi - lo; ++j) dst[lo + j] = src[j];
                  } else if (sw == 2) {  // the stems: a constant stride the compiler vectorises
#pragma omp simd
                    for (int64_t j = 0; j < hi - lo; ++j) dst[lo + j] = src[2 * j];
                  } else {
                    for (int64_t j = 0; j < hi - lo; ++j) dst[lo + j] = src[j * sw];
                  }
                  for (int64_t j = hi; j < ow_n; ++j) dst[j] = T(0);
                }
              });
        }
  });
}

// The inverse scatter: adds every entry of col [cg * taps, columns] (lines `ls`) into the input element
// it was read from, in the cg channels of one item and group at x. Within one tap no two entries reach
// the same element, so each element receives its terms tap by tap, the order of col's rows.
template <class T>
void col2im(const Geometry& g, const T* col, const Lines& ls, T* x, bool parallel) {
  const Dims3& kn = g.s.kernel;
  const int64_t ow_n = g.s.out[2], n = ls.columns(g), sw = g.s.stride[2];
  for_channels(g.cg, parallel, [&](int64_t c) {
    T* xc = x + c * g.S;
    const T* row = col + c * g.taps * n;
    for (int64_t kd = 0; kd < kn[0]; ++kd)
      for (int64_t kh = 0; kh < kn[1]; ++kh)
        for (int64_t kw = 0; kw < kn[2]; ++kw, row += n) {
          const TapLines tap{g, g.valid[0][kd], g.valid[1][kh], g.valid[2][kw]};
          const int64_t lo = tap.vw.lo, hi = tap.vw.hi, step = tap.line_step();
          const bool contiguous = tap.contiguous();
          tap.each_run(
              ls, [](int64_t, int64_t) {},
              [&](int64_t i, int64_t count, int64_t at) {
                if (contiguous) {
                  T* dst = xc + at;
                  const T* src = row + i * ow_n;
#pragma omp simd
                  for (int64_t j = 0; j < count * ow_n; ++j) dst[j] += src[j];
                  return;
                }
                for (int64_t r = 0; r < count; ++r) {
                  T* dst = xc + at + r * step;
                  const T* src = row + (i + r) * ow_n + lo;
                  if (sw == 1) {
#pragma omp simd
                    for (int64_t j = 0; j < hi - lo; ++j) dst[j] += src[j];
                  } else if (sw == 2) {
#pragma omp simd
                    for (int64_t j = 0; j < hi - lo; ++j) dst[2 * j] += src[j];
                  } else {
                    for (int64_t j = 0; j < hi - lo; ++j) dst[j * sw] += src[j];
                  }
                }
              });
        }
  });
}

// How many output lines one column chunk holds: enough for about kChunkBytes of col, at least
// kChunkColumns columns (narrower GEMMs waste their packing), whole lines, and every line for a pointwise
// conv (which has no col). It depends on the shapes only, never on the thread count: the chunks fix the
// order in which col2im and the weight gradient add their terms.
int64_t chunk_lines(const Geometry& g, size_t element) {
  const int64_t lines = g.s.out[0] * g.s.out[1];
  if (g.pointwise) return lines;
  const int64_t columns = std::max<int64_t>(kChunkColumns, kChunkBytes / (g.K * static_cast<int64_t>(element)));
  return std::clamp<int64_t>(columns / g.s.out[2], 1, lines);
}

// Items in parallel, or one after another with the threads inside each item's work.
bool items_in_parallel(const Geometry& g, int threads) {
  if (threads <= 1 || g.B <= 1) return false;
  const double macs = static_cast<double>(g.cout) * static_cast<double>(g.K) * static_cast<double>(g.P);
  return g.B >= threads || macs < kSmallItem;
}

int available_threads(const Geometry& g) {
  const double macs =
      static_cast<double>(g.B) * static_cast<double>(g.cout) * static_cast<double>(g.K) * static_cast<double>(g.P);
  return omp_in_parallel() || macs < kSmallCall ? 1 : omp_get_max_threads();
}

// Runs fn(i) for i in [0, n) on up to `threads` threads. An exception must not leave an OpenMP region (that
// ends the program): the first one is kept and rethrown after the loop.
template <class Fn>
void parallel_items(int64_t n, int threads, Fn&& fn) {
  std::exception_ptr error;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < n; ++i) {
    try {
      fn(i);
    } catch (...) {
#pragma omp critical(minidl_conv_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// An uninitialised scratch array of n * count elements (count per thread or per item).
template <class T>
std::unique_ptr<T[]> scratch_array(int64_t n, int64_t count) {
  return std::make_unique_for_overwrite<T[]>(static_cast<size_t>(std::max<int64_t>(n * count, 1)));
}

template <class T>
void forward_typed(const Tensor& xt, const Tensor& wt, const Tensor& bt, const ConvShape& s, const Tensor& yt) {
  const Geometry g(s);
  const T* x = xt.data<T>();
  const T* w = wt.data<T>();
  const T* bias = bt.defined() ? bt.data<T>() : nullptr;
  T* y = yt.data<T>();
  const int64_t lines = g.s.out[0] * g.s.out[1], step = chunk_lines(g, sizeof(T)), chunk = g.K * step * g.s.out[2];
  const int64_t chunks = (lines + step - 1) / step, units = g.B * g.G * chunks;
  // Every output element belongs to one (item, group, chunk) unit, so the forward pass can spread units,
  // not just items, over the threads: a single large item still splits into independent GEMMs.
  const int threads = available_threads(g);
  const bool across = threads > 1 && units > 1 && (units >= threads || items_in_parallel(g, threads));
  const int slots = across ? static_cast<int>(std::min<int64_t>(threads, units)) : 1;
  const auto cols = scratch_array<T>(g.pointwise ? 0 : slots, chunk);

  auto unit = [&](int64_t u, T* col, bool inner_parallel) {
    const int64_t b = u / (g.G * chunks), gi = u / chunks % g.G;
    const Lines ls{u % chunks * step, std::min(lines, u % chunks * step + step)};
    const int64_t p0 = ls.l0 * g.s.out[2], n = ls.columns(g);
    const T* xg = x + (b * g.cin + gi * g.cg) * g.S;
    T* yg = y + (b * g.cout + gi * g.cog) * g.P + p0;
    if (bias)
      for (int64_t o = 0; o < g.cog; ++o) std::fill(yg + o * g.P, yg + o * g.P + n, bias[gi * g.cog + o]);
    if (!g.pointwise) im2col(g, xg, ls, col, inner_parallel);
    // y_g[:, p0:p0+n] (+)= w_g · col; a pointwise conv reads x itself as col.
    gemm<T>(g.cog, n, g.K, w + gi * g.cog * g.K, g.K, 1, g.pointwise ? xg + p0 : col, g.pointwise ? g.P : n, 1, yg, g.P,
            1, bias != nullptr);
  };
  if (across) {
    parallel_items(units, slots, [&](int64_t u) { unit(u, cols.get() + omp_get_thread_num() * chunk, false); });
  } else {
    for (int64_t u = 0; u < units; ++u) unit(u, cols.get(), threads > 1);
  }
}

template <class T>
void bias_grad(const Geometry& g, const T* gy, T* gb) {
  const bool parallel = !omp_in_parallel() && g.B * g.cout * g.P >= kParallelGrain;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t c = 0; c < g.cout; ++c) {
    double sum = 0;
    for (int64_t b = 0; b < g.B; ++b) {
      const T* row = gy + (b * g.cout + c) * g.P;
      for (int64_t p = 0; p < g.P; ++p) sum += row[p];
    }
    gb[c] = static_cast<T>(sum);
  }
}

// acc += part, element by element (the batch order of the weight gradient is kept by the caller).
template <class T>
void add_into(T* acc, const T* part, int64_t n, bool parallel) {
#pragma omp parallel for simd schedule(static) if (parallel && n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) acc[i] += part[i];
}

template <class T>
void backward_typed(const Tensor& xt, const Tensor& wt, const Tensor& gyt, const ConvShape& s, const Tensor& gxt,
                    const Tensor& gwt, const Tensor& gbt) {
  const Geometry g(s);
  const T* gy = gyt.data<T>();
  if (gbt.defined()) bias_grad(g, gy, gbt.data<T>());
  const bool want_x = gxt.defined(), want_w = gwt.defined();
  if (!want_x && !want_w) return;
  const T* x = want_w ? xt.data<T>() : nullptr;
  const T* w = want_x ? wt.data<T>() : nullptr;
  T* gx = want_x ? gxt.data<T>() : nullptr;
  T* gw = want_w ? gwt.data<T>() : nullptr;
  const int64_t wsize = g.cout * g.K;
  if (want_w) std::fill(gw, gw + wsize, T(0));

  const int threads = available_threads(g);
  const bool across = items_in_parallel(g, threads);
  const int slots = across ? static_cast<int>(std::min<int64_t>(threads, g.B)) : 1;
  const int64_t lines = g.s.out[0] * g.s.out[1], step = chunk_lines(g, sizeof(T)), chunk = g.K * step * g.s.out[2];
  const auto cols = scratch_array<T>(g.pointwise ? 0 : slots, chunk);
  const auto parts = scratch_array<T>(want_w ? slots : 0, wsize);

  // One item: its weight gradient into part (all groups), its input gradient into gx, chunk by chunk. The
  // column buffer holds a chunk of col for the weight gradient, then is reused for that chunk of dcol.
  auto item = [&](int64_t b, T* col, T* part, bool inner_parallel) {
    for (int64_t gi = 0; gi < g.G; ++gi) {
      const T* dy = gy + (b * g.cout + gi * g.cog) * g.P;
      const T* xg = want_w ? x + (b * g.cin + gi * g.cg) * g.S : nullptr;
      const T* wg = want_x ? w + gi * g.cog * g.K : nullptr;
      T* dxg = want_x ? gx + (b * g.cin + gi * g.cg) * g.S : nullptr;
      T* dwg = want_w ? part + gi * g.cog * g.K : nullptr;
      if (want_x && !g.pointwise)
        for_channels(g.cg, inner_parallel, [&](int64_t c) { std::fill(dxg + c * g.S, dxg + (c + 1) * g.S, T(0)); });
      for (int64_t l0 = 0; l0 < lines; l0 += step) {
        const Lines ls{l0, std::min(lines, l0 + step)};
        const int64_t p0 = l0 * g.s.out[2], n = ls.columns(g);
        if (want_w) {
          if (!g.pointwise) im2col(g, xg, ls, col, inner_parallel);
          // dw_g (+)= gy_g[:, p0:p0+n] · col^T, chunks added in order.
          gemm<T>(g.cog, g.K, n, dy + p0, g.P, 1, g.pointwise ? xg + p0 : col, 1, g.pointwise ? g.P : n, dwg, g.K, 1,
                  l0 > 0);
        }
        if (want_x) {
          // dcol = w_g^T · gy_g[:, p0:p0+n]; a pointwise conv's dcol is gx itself.
          gemm<T>(g.K, n, g.cog, wg, 1, g.K, dy + p0, g.P, 1, g.pointwise ? dxg + p0 : col, g.pointwise ? g.P : n, 1,
                  false);
          if (!g.pointwise) col2im(g, col, ls, dxg, inner_parallel);
        }
      }
    }
  };
  if (across) {
    // Chunks of `slots` items: item b0 + i uses buffer i, then the chunk's weight gradients are added in
    // batch order.
    for (int64_t b0 = 0; b0 < g.B; b0 += slots) {
      const int64_t n = std::min<int64_t>(slots, g.B - b0);
      parallel_items(n, static_cast<int>(n),
                     [&](int64_t i) { item(b0 + i, cols.get() + i * chunk, parts.get() + i * wsize, false); });
      if (want_w)
        for (int64_t i = 0; i < n; ++i) add_into(gw, parts.get() + i * wsize, wsize, true);
    }
  } else {
    for (int64_t b = 0; b < g.B; ++b) {
      item(b, cols.get(), parts.get(), threads > 1);
      if (want_w) add_into(gw, parts.get(), wsize, threads > 1);
    }
  }
}

}  // namespace

void conv_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvShape& s, const Tensor& y) {
  float_dispatch("conv", y.dtype(), [&](auto tag) { forward_typed<decltype(tag)>(x, w, bias, s, y); });
}

void conv_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const ConvShape& s, const Tensor& gx,
                   const Tensor& gw, const Tensor& gb) {
  float_dispatch("conv backward", gy.dtype(),
                 [&](auto tag) { backward_typed<decltype(tag)>(x, w, gy, s, gx, gw, gb); });
}

}  // namespace minidl::cpu
