// CPU reductions: sum, mean, max, min, var over any set of dims, and argmax along one dim.
//
// The input is viewed as [kept..., reduced...]: each output element reduces one "block" of the reduced
// dims. Sums accumulate in double, in an order fixed by the shape alone, so results do not depend on the
// thread count. Two layouts get their own loop:
//   - one output (a full reduction): fixed blocks of kBlock elements summed in parallel, partials added
//     in order;
//   - reduced dims all outside a contiguous kept block (a bias gradient: sum over the batch of [N, C]):
//     rows are added into a vector of accumulators, which walks memory in order.
#include <cmath>
#include <limits>

#include "autograd/error.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/kernels.h"
#include "cpu/strided_loop.h"

namespace minidl::cpu {
namespace {

constexpr int64_t kBlock = 8192;  // elements per partial sum of a full reduction

// Visits elements [begin, end) of one block in row-major order: fn(value).
template <class T, class Fn>
void for_block(const T* base, const ReduceGeometry& g, int64_t begin, int64_t end, Fn&& fn) {
  if (g.red_shape.empty()) {  // nothing reduced: the block is the element itself
    if (begin < end) fn(base[0]);
    return;
  }
  const int64_t inner = g.red_shape.back(), inner_stride = g.red_strides.back();
  int64_t i = begin;
  while (i < end) {
    const int64_t col = i % inner, run = std::min(inner - col, end - i);
    const T* p = base + offset_of(i - col, g.red_shape, g.red_strides) + col * inner_stride;
    if (inner_stride == 1) {
      for (int64_t k = 0; k < run; ++k) fn(p[k]);
    } else {
      for (int64_t k = 0; k < run; ++k) fn(p[k * inner_stride]);
    }
    i += run;
  }
}

// Folds the values of one block: sums in double, max/min in T.
template <class T>
struct Folder {
  ReduceOp op;
  double sum = 0;
  T best;
  explicit Folder(ReduceOp o)
      : op(o), best(o == ReduceOp::Max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity()) {}
  void add(T v) {
    if (op == ReduceOp::Sum || op == ReduceOp::Mean)
      sum += v;
    else if (std::isnan(v) || std::isnan(best))
      best = std::isnan(best) ? best : v;  // NaN wins, like torch
    else if (op == ReduceOp::Max ? v > best : v < best)
      best = v;
  }
  void merge(const Folder& o) {
    if (op == ReduceOp::Sum || op == ReduceOp::Mean)
      sum += o.sum;
    else
      add(o.best);
  }
  T result(int64_t count) const {
    if (op == ReduceOp::Sum) return static_cast<T>(sum);
    if (op == ReduceOp::Mean) return static_cast<T>(count ? sum / count : std::numeric_limits<double>::quiet_NaN());
    return best;
  }
};

template <class T>
void reduce_typed(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out) {
  const ReduceGeometry g = reduce_geometry(x, dims);
  const T* xb = x.data<T>();
  T* o = out.data<T>();
  MINIDL_CHECK(op == ReduceOp::Sum || op == ReduceOp::Mean || g.block > 0, "max/min: cannot reduce over an empty dim (",
               x.meta_str(), ")");

  if (g.outputs == 1) {  // full reduction: fixed-size blocks, partials combined in order
    const int64_t nblocks = std::max<int64_t>(1, (g.block + kBlock - 1) / kBlock);
    std::vector<Folder<T>> partial(nblocks, Folder<T>(op));
#pragma omp parallel for schedule(static) if (g.block >= kParallelGrain && !omp_in_parallel())
    for (int64_t b = 0; b < nblocks; ++b)
      for_block(xb, g, b * kBlock, std::min(g.block, (b + 1) * kBlock), [&](T v) { partial[b].add(v); });
    Folder<T> total(op);
    for (const auto& p : partial) total.merge(p);
    o[0] = total.result(g.block);
    return;
  }

  std::vector<int64_t> kshape = g.kept_shape, kstrides = g.kept_strides;
  merge_dims(kshape, kstrides);
  const bool rows_of_contiguous_block = (op == ReduceOp::Sum || op == ReduceOp::Mean) && kshape.size() == 1 &&
                                        kstrides[0] == 1 && !dims.empty() && dims.front() == 0 &&
                                        dims.back() == static_cast<int64_t>(dims.size()) - 1;
  if (rows_of_contiguous_block) {
    // x = [reduced..., kept] with the kept part contiguous: add whole rows, column chunks in parallel.
    const int64_t C = g.outputs;
    constexpr int64_t kCols = 256;
    const int64_t nchunks = (C + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (g.outputs * g.block >= kParallelGrain && !omp_in_parallel())
    for (int64_t ch = 0; ch < nchunks; ++ch) {
      const int64_t c0 = ch * kCols, c1 = std::min(C, c0 + kCols);
      double acc[kCols] = {};
      for (int64_t r = 0; r < g.block; ++r) {
        const T* row = xb + offset_of(r, g.red_shape, g.red_strides);
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += row[c];
      }
      for (int64_t c = c0; c < c1; ++c)
        o[c] = static_cast<T>(op == ReduceOp::Mean ? acc[c - c0] / g.block : acc[c - c0]);
    }
    return;
  }

#pragma omp parallel for schedule(static) if (g.outputs * g.block >= kParallelGrain && !omp_in_parallel())
  for (int64_t k = 0; k < g.outputs; ++k) {
    Folder<T> f(op);
    for_block(xb + offset_of(k, g.kept_shape, g.kept_strides), g, 0, g.block, [&](T v) { f.add(v); });
    o[k] = f.result(g.block);
  }
}

template <class T>
void var_typed(const Tensor& x, const std::vector<int64_t>& dims, int64_t ddof, const Tensor& out) {
  const ReduceGeometry g = reduce_geometry(x, dims);
  const T* xb = x.data<T>();
  T* o = out.data<T>();
  const double divisor = static_cast<double>(g.block - ddof);
#pragma omp parallel for schedule(static) if (g.outputs * g.block >= kParallelGrain && !omp_in_parallel())
  for (int64_t k = 0; k < g.outputs; ++k) {
    const T* base = xb + offset_of(k, g.kept_shape, g.kept_strides);
    // Two passes (mean, then squared deviations) in double: no cancellation of the one-pass formula.
    double sum = 0;
    for_block(base, g, 0, g.block, [&](T v) { sum += v; });
    const double m = sum / static_cast<double>(g.block);
    double ss = 0;
    for_block(base, g, 0, g.block, [&](T v) { ss += (v - m) * (v - m); });
    o[k] = divisor > 0 ? static_cast<T>(ss / divisor) : std::numeric_limits<T>::quiet_NaN();
  }
}

template <class T>
void argmax_typed(const Tensor& x, int64_t dim, const Tensor& out) {
  const ReduceGeometry g = reduce_geometry(x, {dim});
  const T* xb = x.data<T>();
  int64_t* o = out.data<int64_t>();
  const int64_t n = x.dim() == 0 ? 1 : x.size(dim), stride = x.dim() == 0 ? 0 : x.stride(dim);
#pragma omp parallel for schedule(static) if (g.outputs * n >= kParallelGrain && !omp_in_parallel())
  for (int64_t k = 0; k < g.outputs; ++k) {
    const T* p = xb + offset_of(k, g.kept_shape, g.kept_strides);
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i) {
      const T v = p[i * stride], b = p[best * stride];
      if (std::isnan(b)) break;  // the first NaN is the maximum, like torch.argmax
      if (v > b || std::isnan(v)) best = i;
    }
    o[k] = best;
  }
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out) {
  float_dispatch("reduce", x.dtype(), [&](auto tag) { reduce_typed<decltype(tag)>(op, x, dims, out); });
}

void var(const Tensor& x, const std::vector<int64_t>& dims, int64_t ddof, const Tensor& out) {
  float_dispatch("var", x.dtype(), [&](auto tag) { var_typed<decltype(tag)>(x, dims, ddof, out); });
}

void argmax(const Tensor& x, int64_t dim, const Tensor& out) {
  float_dispatch("argmax", x.dtype(), [&](auto tag) { argmax_typed<decltype(tag)>(x, dim, out); });
}

}  // namespace minidl::cpu
