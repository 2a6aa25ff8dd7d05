// The N-operand strided loop behind every elementwise CPU kernel.
//
// Operand 0 is the output; the others are broadcast to its shape (a missing or size-1 dimension gets
// stride 0). Dimensions that are laid out back to back in every operand are merged first, so a
// contiguous tensor of any rank becomes one long run, and a broadcast row becomes a run with stride 0.
// The body is called once per run of the innermost dimension with typed pointers and element strides;
// it can test for all-unit strides and take a loop the compiler vectorises.
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace minidl::cpu {

// Below this many elements a loop runs on one thread: starting a parallel region costs more.
inline constexpr int64_t kParallelGrain = 32768;

template <size_t N>
struct StridedLoop {
  std::vector<int64_t> shape;                   // merged dims, outermost first (at least one dim)
  std::array<std::vector<int64_t>, N> strides;  // element strides per operand, aligned to shape
  std::array<char*, N> base;                    // byte address of element [0, ..., 0]
  std::array<int64_t, N> elsize;
  int64_t numel = 1;
};

template <size_t N>
StridedLoop<N> make_loop(const Shape& shape, const std::array<const Tensor*, N>& operands) {
  StridedLoop<N> L;
  L.numel = numel_of(shape);
  if (L.numel == 0) return L;  // nothing to visit; an empty shape may have huge other dims to multiply
  const size_t nd = shape.size();
  std::vector<int64_t> sh;
  std::array<std::vector<int64_t>, N> st;
  for (size_t d = 0; d < nd; ++d) {
    if (shape[d] == 1) continue;  // size-1 dims contribute nothing to addressing
    sh.push_back(shape[d]);
    for (size_t k = 0; k < N; ++k) {
      const Tensor& t = *operands[k];
      const int64_t td = static_cast<int64_t>(d) - static_cast<int64_t>(nd - t.shape().size());
      st[k].push_back(td < 0 || t.shape()[td] == 1 ? 0 : t.strides()[td]);
    }
  }
  if (sh.empty()) {  // a single element
    sh.push_back(1);
    for (size_t k = 0; k < N; ++k) st[k].push_back(0);
  }
  // Merge dim i into dim i+1 (its inner neighbour) when every operand steps over it as one run.
  std::vector<int64_t> msh{sh.back()};
  std::array<std::vector<int64_t>, N> mst;
  for (size_t k = 0; k < N; ++k) mst[k].push_back(st[k].back());
  for (size_t i = sh.size() - 1; i-- > 0;) {
    bool mergeable = true;
    for (size_t k = 0; k < N; ++k) mergeable &= st[k][i] == mst[k].front() * msh.front();
    if (mergeable) {
      msh.front() *= sh[i];
    } else {
      msh.insert(msh.begin(), sh[i]);
      for (size_t k = 0; k < N; ++k) mst[k].insert(mst[k].begin(), st[k][i]);
    }
  }
  L.shape = msh;
  L.strides = mst;
  for (size_t k = 0; k < N; ++k) {
    L.elsize[k] = static_cast<int64_t>(dtype_size(operands[k]->dtype()));
    L.base[k] = static_cast<char*>(operands[k]->raw_data());
  }
  return L;
}

// Calls body(n, ptrs, strides) for each run of the innermost dim covering elements [begin, end) of the
// loop in row-major order: ptrs[k] points at operand k's first element of the run, strides[k] is its
// element stride along the run.
template <size_t N, class Body>
void run_loop_range(const StridedLoop<N>& L, int64_t begin, int64_t end, Body& body) {
  if (begin >= end) return;
  const size_t nd = L.shape.size();
  const int64_t inner = L.shape.back();
  std::array<int64_t, N> inner_stride;
  for (size_t k = 0; k < N; ++k) inner_stride[k] = L.strides[k].back();
  int64_t i = begin;
  while (i < end) {
    const int64_t col = i % inner;
    const int64_t run = std::min(inner - col, end - i);
    // Address of element i: decompose its row index over the outer dims.
    std::array<char*, N> ptr;
    std::array<int64_t, N> off{};
    int64_t rest = i / inner;
    for (size_t d = nd - 1; d-- > 0;) {
      const int64_t idx = rest % L.shape[d];
      rest /= L.shape[d];
      for (size_t k = 0; k < N; ++k) off[k] += idx * L.strides[k][d];
    }
    for (size_t k = 0; k < N; ++k) ptr[k] = L.base[k] + (off[k] + col * inner_stride[k]) * L.elsize[k];
    body(run, ptr, inner_stride);
    i += run;
  }
}

// Runs the whole loop, split into one contiguous range per thread when it is large enough.
template <size_t N, class Body>
void run_loop(const StridedLoop<N>& L, Body body) {
  if (L.numel == 0) return;
  if (L.numel < kParallelGrain || omp_in_parallel()) {
    run_loop_range(L, 0, L.numel, body);
    return;
  }
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t chunk = (L.numel + nt - 1) / nt;
    const int64_t b = std::min(L.numel, t * chunk), e = std::min(L.numel, b + chunk);
    Body local = body;
    run_loop_range(L, b, e, local);
  }
}

}  // namespace minidl::cpu
