// CPU indexing kernels: index_select / index_add (whole slices along a dim) and gather / scatter_add
// (one element per index). The backward kernels (index_add, scatter_add) run their additions in index
// order on one thread: two indices may name the same destination, and a fixed order keeps the result
// deterministic.
#include "autograd/error.h"
#include "cpu/dtype_dispatch.h"
#include "cpu/kernels.h"
#include "cpu/strided_loop.h"

namespace minidl::cpu {
namespace {

// x seen through index's shape, with stride 0 along `dim`: the loop then hands out the address of
// x[pos with pos[dim] = 0], and the kernel adds index * stride(dim).
Tensor zero_dim_view(const Tensor& x, int64_t dim, const Shape& shape) {
  Strides s = x.strides();
  s[dim] = 0;
  return make_view(x, shape, s, x.offset());
}

}  // namespace

// index_select and index_add move whole slices with the copy/axpy kernels. Views are taken of detached
// aliases: narrowing a tensor that requires grad would record a graph node per slice for nothing.
void index_select(const Tensor& x_in, int64_t dim, const Tensor& index, const Tensor& out) {
  const Tensor x = x_in.detach();
  const int64_t* idx = index.data<int64_t>();
  const int64_t istride = index.dim() == 0 ? 0 : index.stride(0);
  for (int64_t i = 0; i < out.size(dim); ++i) copy(x.narrow(dim, idx[i * istride], 1), out.narrow(dim, i, 1));
}

void index_add(const Tensor& src_in, int64_t dim, const Tensor& index, const Tensor& out) {
  const Tensor src = src_in.detach();
  const int64_t* idx = index.data<int64_t>();
  const int64_t istride = index.dim() == 0 ? 0 : index.stride(0);
  for (int64_t i = 0; i < src.size(dim); ++i) axpy(1.0, src.narrow(dim, i, 1), out.narrow(dim, idx[i * istride], 1));
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  float_dispatch("gather", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor xv = zero_dim_view(x, dim, index.shape());
    const int64_t step = x.stride(dim);
    auto L = make_loop<3>(out.shape(), {&out, &index, &xv});
    run_loop(L, [step](int64_t n, const std::array<char*, 3>& p, const std::array<int64_t, 3>& s) {
      T* o = reinterpret_cast<T*>(p[0]);
      const int64_t* ix = reinterpret_cast<const int64_t*>(p[1]);
      const T* xb = reinterpret_cast<const T*>(p[2]);
      for (int64_t i = 0; i < n; ++i) o[i * s[0]] = xb[i * s[2] + ix[i * s[1]] * step];
    });
  });
}

void scatter_add(const Tensor& src, int64_t dim, const Tensor& index, const Tensor& out) {
  float_dispatch("scatter_add", src.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor ov = zero_dim_view(out, dim, index.shape());
    const int64_t step = out.stride(dim);
    auto L = make_loop<3>(index.shape(), {&ov, &index, &src});
    auto body = [step](int64_t n, const std::array<char*, 3>& p, const std::array<int64_t, 3>& s) {
      T* o = reinterpret_cast<T*>(p[0]);
      const int64_t* ix = reinterpret_cast<const int64_t*>(p[1]);
      const T* sb = reinterpret_cast<const T*>(p[2]);
      for (int64_t i = 0; i < n; ++i) o[i * s[0] + ix[i * s[1]] * step] += sb[i * s[2]];
    };
    run_loop_range(L, 0, L.numel, body);  // one thread, in order: destinations may repeat
  });
}

}  // namespace minidl::cpu
