// The index geometry of the convolution kernels (cuda/conv.cu): the shapes as the device takes them, and
// the small tables built on the device (once per geometry, then kept), so that a gather costs a table
// read and unsigned bounds checks instead of integer divisions. The forward pass and the weight gradient index a
// reduction by (input channel, kernel offset) through build_table, an output position's window through
// build_corners; the data gradient runs per phase of the strides, each phase with tables of its own
// (build_phase_tables). Private to cuda/conv.cu.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>

#include "autograd/conv_geometry.h"
#include "cuda/common.cuh"
#include "cuda/fast_divide.h"
#include "cuda/kernels.h"

namespace minidl::cuda {
namespace {

// ConvShape for the device (std::array is not usable in device code), 32-bit where the front end's
// checks allow it.
struct Geom {
  int batch, cin, cout, groups, cin_g, cout_g;
  int in[3], kernel[3], out[3], stride[3], pad[3], dil[3];
  int KK, P, Q, K;  // kernel volume, output plane, input plane, C_in/G * KK
  FastDivide by_P;  // division by the output plane in the weight gradient's loop, without a divider
};

Geom geom_of(const ConvShape& s) {
  Geom g{};
  g.batch = static_cast<int>(s.batch);
  g.cin = static_cast<int>(s.in_channels);
  g.cout = static_cast<int>(s.out_channels);
  g.groups = static_cast<int>(s.groups);
  g.cin_g = g.cin / g.groups;
  g.cout_g = g.cout / g.groups;
  g.KK = g.P = g.Q = 1;
  for (int d = 0; d < 3; ++d) {
    g.in[d] = static_cast<int>(s.in[d]);
    g.kernel[d] = static_cast<int>(s.kernel[d]);
    g.out[d] = static_cast<int>(s.out[d]);
    g.stride[d] = static_cast<int>(s.stride[d]);
    g.pad[d] = static_cast<int>(s.padding[d]);
    g.dil[d] = static_cast<int>(s.dilation[d]);
    g.KK *= g.kernel[d];
    g.P *= g.out[d];
    g.Q *= g.in[d];
  }
  g.K = g.cin_g * g.KK;
  g.by_P = FastDivide::of(std::max(g.P, 1));
  return g;
}

// Table entry of a reduction index k = (input channel, kernel offset) of the forward and weight grad,
// one 16-byte load in the gathers: x, the channel's plane offset plus the offset's reach inside the
// plane; y, z, w, the offset's reach along each spatial dim, (kernel index) x dilation.
__global__ void build_table(Geom g, int4* table) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= g.K) return;
  const int c = k / g.KK, r = k % g.KK;
  const int kd = r / (g.kernel[1] * g.kernel[2]), kh = (r / g.kernel[2]) % g.kernel[1], kw = r % g.kernel[2];
  const int dz = kd * g.dil[0], dy = kh * g.dil[1], dx = kw * g.dil[2];
  table[k] = make_int4(c * g.Q + (dz * g.in[1] + dy) * g.in[2] + dx, dz, dy, dx);
}

// Output position p -> its window's corner in the input (x, y, z; may be negative: padding) and the
// corner's offset in an input plane (w).
__global__ void build_corners(Geom g, int4* corners) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= g.P) return;
  const int od = p / (g.out[1] * g.out[2]), oh = (p / g.out[2]) % g.out[1], ow = p % g.out[2];
  const int z = od * g.stride[0] - g.pad[0], y = oh * g.stride[1] - g.pad[1], x = ow * g.stride[2] - g.pad[2];
  corners[p] = make_int4(z, y, x, (z * g.in[1] + y) * g.in[2] + x);
}

// One unsigned comparison per dim: a negative coordinate wraps to above any extent.
__device__ __forceinline__ bool inside(int z, int y, int x, const int (&n)[3]) {
  return static_cast<unsigned>(z) < static_cast<unsigned>(n[0]) &&
         static_cast<unsigned>(y) < static_cast<unsigned>(n[1]) &&
         static_cast<unsigned>(x) < static_cast<unsigned>(n[2]);
}

// ---- the phases of the data gradient -----------------------------------------------------------------
// Input position i (padded, c = i + pad) takes gy at output o through a kernel offset of reach r exactly
// where c - r = o x stride. So the input positions are split by phase, i mod stride per dim, and each
// phase is a GEMM of its own: only the offsets whose reach has the position's phase (c = r mod stride)
// reach an output, and for those o = j + delta, with j the position's index within its phase and
// delta = (c - r) / stride exact and the same for every position of the phase. The loop has no
// divisions, and visits none of the (position, offset) pairs that meet no output (all but one in the
// stride's product of them). Unit strides are one phase.
struct Phase {
  int first[3], count[3];  // per dim: the phase's first input position and how many positions it has
  int P;                   // positions in the phase
  int taps[3];             // per dim: how many kernel offsets reach an output from this phase
  int K;                   // the reduction, C_out/G x the taps' product
};

// The phases of one launch, blockIdx.z = (phase) x groups + group, each phase's tables `table_stride`
// entries after the last's. One launch for all of them, not one each: a phase has 1 / (the strides'
// product) of the columns, so a late, strided layer's phase alone may not have enough blocks to fill
// the GPU (a 2 x 2 x 2 stride's phase of a [512, 4 x 14 x 14] input at batch 4 has 196 columns).
// Eight, the phases of a stride of 2 along three dims, keep the parameters small; more (strides above
// 2) take several launches.
constexpr int kPhasesPerLaunch = 8;
struct Phases {
  int count, table_stride;
  Phase phase[kPhasesPerLaunch];
};

// Whether a kernel offset of this reach takes an input position whose padded coordinate is c to an
// output position, along a dim of this stride: the one test of a phase, on the host and the device.
__host__ __device__ inline bool reaches_output(int c, int reach, int stride) { return (c - reach) % stride == 0; }

Phase phase_of(const Geom& g, const int (&first)[3]) {
  Phase ph{};
  ph.P = 1;
  int taps = 1;
  for (int d = 0; d < 3; ++d) {
    ph.first[d] = first[d];
    ph.count[d] = first[d] < g.in[d] ? (g.in[d] - first[d] + g.stride[d] - 1) / g.stride[d] : 0;
    for (int kk = 0; kk < g.kernel[d]; ++kk)
      ph.taps[d] += reaches_output(first[d] + g.pad[d], kk * g.dil[d], g.stride[d]);
    ph.P *= ph.count[d];
    taps *= ph.taps[d];
  }
  ph.K = g.cout_g * taps;
  return ph;
}

// Table entry of k = (co, tap) for phase blockIdx.y: x, co's plane offset in gy plus delta's offset in
// the plane; y, z, w, delta per dim. weight_offsets[k] is the offset of w[co, 0, offset] (+ ci x KK at
// use).
__global__ void build_phase_tables(Geom g, Phases phases, int4* tables, int* weight_offsets) {
  const Phase ph = phases.phase[blockIdx.y];
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= ph.K) return;
  const int64_t at = static_cast<int64_t>(blockIdx.y) * phases.table_stride;
  int4* table = tables + at;
  weight_offsets += at;
  const int taps = ph.taps[0] * ph.taps[1] * ph.taps[2];
  const int co = k / taps;
  int t[3] = {k % taps / (ph.taps[1] * ph.taps[2]), k % taps / ph.taps[2] % ph.taps[1], k % taps % ph.taps[2]};
  int delta[3], offset = 0;
  for (int d = 0; d < 3; ++d) {
    const int c = ph.first[d] + g.pad[d];
    int kk = 0;  // the t[d]-th kernel index whose reach has c's phase
    for (int seen = -1; kk < g.kernel[d]; ++kk)
      if (reaches_output(c, kk * g.dil[d], g.stride[d]) && ++seen == t[d]) break;
    delta[d] = (c - kk * g.dil[d]) / g.stride[d];  // exact
    offset = offset * g.kernel[d] + kk;
  }
  table[k] = make_int4(co * g.P + (delta[0] * g.out[1] + delta[1]) * g.out[2] + delta[2], delta[0], delta[1], delta[2]);
  weight_offsets[k] = (co * g.cin_g) * g.KK + offset;
}

// Column n of a phase: batch item and the position's index within the phase along each dim.
__device__ __forceinline__ void phase_column(const Phase& ph, int n, int& b, int (&j)[3]) {
  b = n / ph.P;
  const int p = n % ph.P;
  j[0] = p / (ph.count[1] * ph.count[2]);
  j[1] = p / ph.count[2] % ph.count[1];
  j[2] = p % ph.count[2];
}

// ---- tables kept across calls ---------------------------------------------------------------------------
// A table depends on the shapes alone (not the batch, not the data), so each is built once per device and
// geometry and kept for the process: rebuilt on every call, the tables were one to three launches of a few
// blocks each per convolution, 116 of the 878 launches of the tiny model's training step (emulator count).
// The first call builds a table on its stream and records an event after it; a call on another stream
// waits for that event. Up to kKeptTableBytes in all; past that (a process convolving at very many
// shapes), a call builds tables of its own for the call, as before.
constexpr size_t kKeptTableBytes = size_t{256} << 20;

// The key of one kind of table for g: the kind, `extra` (a phase table's first phase), and every field of
// g but the batch, which no table depends on.
enum class TableKind : int { Reduction, Corners, Phases };
using TableKey = std::array<int, 23>;

TableKey table_key(TableKind kind, const Geom& g, int extra = 0) {
  TableKey k{static_cast<int>(kind), extra, g.cin, g.cout, g.groups};
  for (int d = 0; d < 3; ++d) {
    const int at = 5 + 6 * d;
    k[at] = g.in[d];
    k[at + 1] = g.kernel[d];
    k[at + 2] = g.out[d];
    k[at + 3] = g.stride[d];
    k[at + 4] = g.pad[d];
    k[at + 5] = g.dil[d];
  }
  return k;
}

class KeptTables {
 public:
  struct Entry {
    void* p = nullptr;
    size_t bytes = 0;
    cudaEvent_t built = nullptr;
    cudaStream_t stream = nullptr;
  };

  // The table under `key` on the current device, ready for `stream`; build(p) enqueues building it at p
  // on `stream`. Null when the table would not fit (or cudaMalloc fails): the caller builds its own.
  void* get(const TableKey& key, size_t bytes, int device, cudaStream_t stream,
            const std::function<void(void*)>& build) {
    const std::lock_guard lock(mutex_);
    const auto at = entries_.find({device, key});
    if (at != entries_.end()) {
      if (at->second.stream != stream) MINIDL_CUDA_CHECK(cudaStreamWaitEvent(stream, at->second.built, 0));
      return at->second.p;
    }
    if (bytes_ + bytes > kKeptTableBytes) return nullptr;
    Entry e;
    e.bytes = bytes;
    e.stream = stream;
    if (cudaMalloc(&e.p, std::max<size_t>(bytes, 16)) != cudaSuccess) {
      (void)cudaGetLastError();  // out of memory here is not an error: the call builds its own
      return nullptr;
    }
    build(e.p);
    MINIDL_CUDA_CHECK(cudaEventCreateWithFlags(&e.built, cudaEventDisableTiming));
    MINIDL_CUDA_CHECK(cudaEventRecord(e.built, stream));
    bytes_ += bytes;
    entries_.emplace(std::pair{device, key}, e);
    return e.p;
  }

  ConvTableStats stats() {
    const std::lock_guard lock(mutex_);
    return {static_cast<int64_t>(entries_.size()), bytes_};
  }

 private:
  std::mutex mutex_;
  std::map<std::pair<int, TableKey>, Entry> entries_;
  size_t bytes_ = 0;
};

// Kept for the life of the process, as the shared streams are (freeing at exit would race the driver's
// own teardown).
KeptTables& kept_tables() {
  static KeptTables* tables = new KeptTables;
  return *tables;
}

// A table for one call: the kept one, or (when the cache is full) one of its own for the call.
class Table {
 public:
  Table(const TableKey& key, size_t bytes, int device, cudaStream_t stream, const std::function<void(void*)>& build)
      : p_(kept_tables().get(key, bytes, device, stream, build)) {
    if (p_) return;
    own_.emplace(bytes, device);
    p_ = own_->as<void>();
    build(p_);
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_;
  std::optional<Scratch> own_;
};

}  // namespace
}  // namespace minidl::cuda
