// CUDA elementwise kernels: every one applies a functor of autograd/functors.h (the same the CPU loop
// applies) in a grid-stride loop. Three shapes of loop, picked at launch:
//   flat4    every operand contiguous or a broadcast scalar, float32, 16-byte aligned: each thread
//            moves four elements per load and store (the bandwidth path);
//   flat     the same without the vector width (other dtypes, misaligned views);
//   strided  anything else: the output index is decomposed over the merged dims (cuda/indexing.cuh).
// The output may be the first input itself (in-place updates): every element is read before it is
// written, by the same thread.
#include <utility>

#include "cpu/dtype_dispatch.h"
#include "cuda/common.cuh"
#include "cuda/indexing.cuh"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

constexpr int kThreads = 256;

// Pointers of a flat loop: operand k is element i of base[k], or element 0 where it is broadcast.
template <int N>
struct FlatArgs {
  char* base[N];
  bool broadcast[N];
  int64_t n;
};

template <class Out, class F, class... In, size_t... K>
__device__ __forceinline__ Out apply_flat(const F& f, const FlatArgs<1 + sizeof...(In)>& a, int64_t i,
                                          std::index_sequence<K...>) {
  return f(reinterpret_cast<const In*>(a.base[K + 1])[a.broadcast[K + 1] ? 0 : i]...);
}

template <class Out, class F, class... In>
__global__ void map_flat(F f, FlatArgs<1 + sizeof...(In)> a) {
  Out* out = reinterpret_cast<Out*>(a.base[0]);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += step)
    out[i] = apply_flat<Out, F, In...>(f, a, i, std::index_sequence_for<In...>{});
}

// Four float32 lanes of every operand: lane j of operand k is v[k][j].
template <class F, size_t... K>
__device__ __forceinline__ float apply_lane(const F& f, const float (*v)[4], int j, std::index_sequence<K...>) {
  return f(v[K][j]...);
}

template <class F, int NIn>
__global__ void map_flat4(F f, FlatArgs<1 + NIn> a) {
  float* out = reinterpret_cast<float*>(a.base[0]);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n4 = a.n / 4;
  for (int64_t q = first; q < n4; q += step) {
    alignas(16) float v[NIn > 0 ? NIn : 1][4];
#pragma unroll
    for (int k = 0; k < NIn; ++k) {
      const float* p = reinterpret_cast<const float*>(a.base[k + 1]);
      if (a.broadcast[k + 1]) {
        v[k][0] = v[k][1] = v[k][2] = v[k][3] = p[0];
      } else {
        *reinterpret_cast<float4*>(v[k]) = load4(p + 4 * q);
      }
    }
    float4 r;
    r.x = apply_lane(f, v, 0, std::make_index_sequence<NIn>{});
    r.y = apply_lane(f, v, 1, std::make_index_sequence<NIn>{});
    r.z = apply_lane(f, v, 2, std::make_index_sequence<NIn>{});
    r.w = apply_lane(f, v, 3, std::make_index_sequence<NIn>{});
    store4(out + 4 * q, r);
  }
  // The last n % 4 elements, one per thread.
  for (int64_t i = 4 * n4 + first; i < a.n; i += step) {
    alignas(16) float v[NIn > 0 ? NIn : 1][4];
#pragma unroll
    for (int k = 0; k < NIn; ++k) v[k][0] = reinterpret_cast<const float*>(a.base[k + 1])[a.broadcast[k + 1] ? 0 : i];
    out[i] = apply_lane(f, v, 0, std::make_index_sequence<NIn>{});
  }
}

template <class Out, class F, class... In, size_t... K>
__device__ __forceinline__ Out apply_strided(const F& f, const Geometry<1 + sizeof...(In)>& g,
                                             const int64_t (&off)[1 + sizeof...(In)], std::index_sequence<K...>) {
  return f(reinterpret_cast<const In*>(g.base[K + 1])[off[K + 1]]...);
}

template <class Out, class F, class... In>
__global__ void map_strided(F f, Geometry<1 + sizeof...(In)> g) {
  constexpr int N = 1 + sizeof...(In);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < g.numel; i += step) {
    int64_t off[N];
    g.offsets(i, off);
    reinterpret_cast<Out*>(g.base[0])[off[0]] =
        apply_strided<Out, F, In...>(f, g, off, std::index_sequence_for<In...>{});
  }
}

// out = f(in...) over out's shape, on out's device and current stream.
template <class Out, class... In, class F, class... Ts>
void launch_map(const char* op, F f, const Tensor& out, const Ts&... in) {
  constexpr int N = 1 + sizeof...(In);
  static_assert(sizeof...(In) == sizeof...(Ts), "one type per input");
  const Geometry<N> g = device_geometry<N>(op, out, {&in...});
  if (g.numel == 0) return;
  const int device = out.device().index;
  const DeviceGuard guard(device);
  MINIDL_CUDA_CHECK(guard.status());
  const cudaStream_t stream = stream_of(device);
  if (is_flat(g)) {
    FlatArgs<N> a;
    a.n = g.numel;
    bool aligned = true;
    for (int k = 0; k < N; ++k) {
      a.base[k] = g.base[k];
      a.broadcast[k] = g.stride[k][0] == 0;
      aligned &= a.broadcast[k] || aligned16(a.base[k]);
    }
    a.broadcast[0] = false;
    constexpr bool all_float = std::is_same_v<Out, float> && (std::is_same_v<In, float> && ...);
    if constexpr (all_float) {
      if (aligned && a.n >= 4) {
        map_flat4<F, N - 1><<<grid_for(a.n / 4, kThreads, device), kThreads, 0, stream>>>(f, a);
        MINIDL_CUDA_CHECK_LAUNCH(op);
        return;
      }
    }
    map_flat<Out, F, In...><<<grid_for(a.n, kThreads, device), kThreads, 0, stream>>>(f, a);
  } else {
    map_strided<Out, F, In...><<<grid_for(g.numel, kThreads, device), kThreads, 0, stream>>>(f, g);
  }
  MINIDL_CUDA_CHECK_LAUNCH(op);
}

// The math runs in float32 on the GPU; anything else reaching it is a clear error.
void check_float32(const char* op, const Tensor& t) {
  MINIDL_CHECK(t.dtype() == kFloat32, op, ": the CUDA kernels compute in float32, got ", t.meta_str(),
               " (float64 is for CPU gradchecks; convert with .to(kFloat32))");
}

template <class T>
struct ConvertTo {
  template <class S>
  MINIDL_HD T operator()(S v) const {
    return convert_value<T>(v);
  }
};

template <class T>
struct Constant {
  T value;
  MINIDL_HD T operator()() const { return value; }
};

struct Select {
  template <class T>
  MINIDL_HD T operator()(bool c, T a, T b) const {
    return c ? a : b;
  }
};

struct Axpy {
  float alpha;
  MINIDL_HD float operator()(float y, float x) const { return y + alpha * x; }
};

}  // namespace

void unary(UnaryOp op, const UnaryParams& p, const Tensor& x, const Tensor& out) {
  check_float32(unary_name(op), x);
  visit_unary(op, p, [&](auto f) { launch_map<float, float>(unary_name(op), f, out, x); });
}

void unary_backward(UnaryOp op, const UnaryParams& p, const Tensor& s, const Tensor& g, const Tensor& gx) {
  check_float32(unary_name(op), g);
  visit_unary_grad(op, p, [&](auto f) { launch_map<float, float, float>(unary_name(op), f, gx, s, g); });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_float32(binary_name(op), a);
  visit_binary(op, [&](auto f) { launch_map<float, float, float>(binary_name(op), f, out, a, b); });
}

void compare(CompareOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  cpu::any_dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    visit_compare(op, [&](auto f) { launch_map<bool, T, T>(compare_name(op), f, out, a, b); });
  });
}

void ternary(TernaryOp op, const Tensor& g, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_float32("pow/div backward", g);
  visit_ternary(op, [&](auto f) { launch_map<float, float, float, float>("pow/div backward", f, out, g, a, b); });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  cpu::any_dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch_map<T, bool, T, T>("where", Select{}, out, cond, a, b);
  });
}

void copy(const Tensor& src, const Tensor& dst) {
  if (src.dtype() == dst.dtype() && src.shape() == dst.shape() && src.is_contiguous() && dst.is_contiguous()) {
    // A plain block copy: the copy engine's bandwidth, no kernel.
    const int device = dst.device().index;
    const DeviceGuard guard(device);
    MINIDL_CUDA_CHECK(guard.status());
    const size_t bytes = static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype());
    if (bytes > 0 && src.raw_data() != dst.raw_data())
      MINIDL_CUDA_CHECK(
          cudaMemcpyAsync(dst.raw_data(), src.raw_data(), bytes, cudaMemcpyDeviceToDevice, stream_of(device)));
    return;
  }
  cpu::any_dispatch(dst.dtype(), [&](auto dtag) {
    using D = decltype(dtag);
    cpu::any_dispatch(src.dtype(), [&](auto stag) {
      using S = decltype(stag);
      launch_map<D, S>("copy", ConvertTo<D>{}, dst, src);
    });
  });
}

void fill(const Tensor& dst, double value) {
  if (dst.is_contiguous()) return fill_contiguous(dst, value);  // Thrust (cuda/sequence.cu)
  cpu::any_dispatch(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch_map<T>("fill", Constant<T>{convert_value<T>(value)}, dst);
  });
}

void axpy(double alpha, const Tensor& x, const Tensor& y) {
  check_float32("add_", y);
  launch_map<float, float, float>("add_", Axpy{static_cast<float>(alpha)}, y, y, x);
}

}  // namespace minidl::cuda
