// The geometry of an N-operand elementwise loop, shared by the CPU loop (cpu/strided_loop.h) and the
// CUDA kernels (cuda/indexing.cuh), so both backends visit the same merged dimensions.
//
// Operand 0 is the output; the others are broadcast to its shape (a missing or size-1 dimension gets
// stride 0). Dimensions that are laid out back to back in every operand are merged first, so a
// contiguous tensor of any rank becomes one long run, and a broadcast row becomes a run with stride 0.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace minidl {

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

// The geometry of a reduction over `dims` (sorted, distinct), shared by cpu/reduce.cpp and
// cuda/reduce.cu: the kept dims (one output per position, row-major) and the reduced dims (the block
// each output folds), both in x's element strides.
struct ReduceGeometry {
  std::vector<int64_t> kept_shape, kept_strides;  // of x, in elements, outermost first
  std::vector<int64_t> red_shape, red_strides;    // merged where contiguous
  int64_t outputs = 1, block = 1;                 // number of outputs, elements per output
};

// Merges adjacent dims (outer i into inner i+1) that are laid out back to back.
inline void merge_dims(std::vector<int64_t>& shape, std::vector<int64_t>& strides) {
  std::vector<int64_t> s, t;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!s.empty() && t.back() == strides[i] * shape[i]) {
      s.back() *= shape[i];
      t.back() = strides[i];
    } else {
      s.push_back(shape[i]);
      t.push_back(strides[i]);
    }
  }
  shape = s;
  strides = t;
}

inline ReduceGeometry reduce_geometry(const Tensor& x, const std::vector<int64_t>& dims) {
  ReduceGeometry g;
  for (int64_t d = 0; d < x.dim(); ++d) {
    const bool reduced = std::binary_search(dims.begin(), dims.end(), d);
    (reduced ? g.red_shape : g.kept_shape).push_back(x.size(d));
    (reduced ? g.red_strides : g.kept_strides).push_back(x.stride(d));
  }
  g.outputs = numel_of(g.kept_shape);
  g.block = numel_of(g.red_shape);
  merge_dims(g.red_shape, g.red_strides);
  return g;
}

// Offset (in elements) of the n-th element of a block described by shape/strides.
inline int64_t offset_of(int64_t n, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  int64_t off = 0;
  for (size_t d = shape.size(); d-- > 0;) {
    off += (n % shape[d]) * strides[d];
    n /= shape[d];
  }
  return off;
}

}  // namespace minidl
