// The caching device allocator behind Storage on CUDA (cuda/runtime.h describes its contract).
//
// cudaMalloc and cudaFree are slow (tens to hundreds of microseconds, and cudaFree synchronises the
// device), while a training step allocates and frees the same few hundred activation sizes every
// iteration. So freed blocks are not returned to the driver: they go into a bin keyed by (stream, size
// class) and the next request of that class on that stream takes one back. Stream-ordered reuse needs no
// event: a later allocation on the same stream can only be used by work queued after the work that used
// the block before.
//
// Size classes: multiples of 512 bytes up to 1 MiB; above, four classes per power of two (1, 1.25, 1.5,
// 1.75 times 2^k), so rounding wastes at most a fifth of a large block, and the handful of distinct
// activation sizes of a model map to few classes.
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/common.cuh"

namespace minidl::cuda {
namespace {

constexpr size_t kSmallLimit = size_t{1} << 20, kSmallStep = 512;

struct Block {
  size_t size = 0, requested = 0;
  cudaStream_t stream = nullptr;
};

struct DevicePool {
  std::unordered_map<void*, Block> live;
  std::map<std::pair<cudaStream_t, size_t>, std::vector<void*>> bins;  // free blocks by (stream, class)
  MemoryStats stats;
};

class Allocator {
 public:
  Allocator() {
    const char* env = std::getenv("MINIDL_CUDA_CACHING");
    caching_ = !(env && std::strcmp(env, "0") == 0);
  }

  void* allocate(size_t nbytes, int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    DevicePool& pool = pools_[device];
    const DeviceGuard guard(device);
    MINIDL_CUDA_CHECK(guard.status());
    const cudaStream_t stream = stream_of(device);
    // Uncached, a block has the requested size, so compute-sanitizer sees overruns past it.
    const size_t size = caching_ ? size_class(nbytes) : nbytes;
    void* p = nullptr;
    if (caching_) {
      auto bin = pool.bins.find({stream, size});
      if (bin != pool.bins.end() && !bin->second.empty()) {
        p = bin->second.back();
        bin->second.pop_back();
        pool.stats.cached -= size;
      }
    }
    if (!p) p = fresh_block(pool, size, nbytes, device);
    ++pool.stats.allocations;
    pool.live[p] = Block{size, nbytes, stream};
    pool.stats.in_use += size;
    pool.stats.requested += nbytes;
    if (pool.stats.in_use > pool.stats.peak_in_use) pool.stats.peak_in_use = pool.stats.in_use;
    return p;
  }

  void release(void* p, int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    DevicePool& pool = pools_[device];
    auto it = pool.live.find(p);
    if (it == pool.live.end()) return;  // not ours: never happens through Storage
    const Block b = it->second;
    pool.live.erase(it);
    pool.stats.in_use -= b.size;
    pool.stats.requested -= b.requested;
    if (caching_) {
      pool.bins[{b.stream, b.size}].push_back(p);
      pool.stats.cached += b.size;
    } else {
      const DeviceGuard guard(device);
      cudaFree(p);  // no throw: this runs in destructors
      cudaGetLastError();
      ++pool.stats.cuda_frees;
    }
  }

  MemoryStats stats(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    return pools_[device].stats;
  }

  void reset_peak(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    pools_[device].stats.peak_in_use = pools_[device].stats.in_use;
  }

  void empty_cache(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached(pools_[device], device);
  }

  // The stream is finished and about to be destroyed: its free blocks, and live blocks when they are
  // freed, belong to `heir` from now on (a later stream may get the same handle value).
  void hand_over(cudaStream_t gone, cudaStream_t heir, int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    DevicePool& pool = pools_[device];
    for (auto it = pool.bins.begin(); it != pool.bins.end();) {
      if (it->first.first != gone) {
        ++it;
        continue;
      }
      std::vector<void*>& to = pool.bins[{heir, it->first.second}];
      to.insert(to.end(), it->second.begin(), it->second.end());
      it = pool.bins.erase(it);
    }
    for (auto& [p, block] : pool.live)
      if (block.stream == gone) block.stream = heir;
  }

 private:
  // A new block from the driver; out of memory, the cache is given back and the request tried again.
  void* fresh_block(DevicePool& pool, size_t size, size_t nbytes, int device) {
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation && pool.stats.cached > 0) {
      cudaGetLastError();
      release_cached(pool, device);
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      fail("allocate: cudaMalloc of ", nbytes, " bytes (size class ", size, ") on cuda:", device, " failed (",
           cudaGetErrorString(err), "); the device has ", free_bytes, " of ", total_bytes,
           " bytes free; allocator: ", pool.stats.str());
    }
    ++pool.stats.cuda_mallocs;
    return p;
  }

  void release_cached(DevicePool& pool, int device) {
    const DeviceGuard guard(device);
    for (auto& [key, blocks] : pool.bins)
      for (void* p : blocks) {
        cudaFree(p);
        ++pool.stats.cuda_frees;
      }
    cudaGetLastError();
    pool.bins.clear();
    pool.stats.cached = 0;
  }

  std::mutex mutex_;
  std::map<int, DevicePool> pools_;
  bool caching_ = true;
};

// Never destroyed: tensors held by static objects may be freed after main returns, when a destroyed
// allocator (or an unloaded driver) would crash them.
Allocator& allocator() {
  static Allocator* a = new Allocator();
  return *a;
}

}  // namespace

size_t size_class(size_t nbytes) {
  if (nbytes == 0) return kSmallStep;
  if (nbytes <= kSmallLimit) return (nbytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  size_t pow2 = kSmallLimit;
  while (pow2 * 2 < nbytes) pow2 *= 2;  // pow2 < nbytes <= 2 pow2
  const size_t quarter = pow2 / 4;
  return (nbytes + quarter - 1) / quarter * quarter;
}

void* device_malloc(size_t nbytes, int device) { return allocator().allocate(nbytes, device); }
void device_free(void* ptr, int device) { allocator().release(ptr, device); }
MemoryStats memory_stats(int device) { return allocator().stats(device); }
void reset_peak_memory(int device) { allocator().reset_peak(device); }
void empty_cache(int device) { allocator().empty_cache(device); }
void hand_over_stream_blocks(cudaStream_t gone, cudaStream_t heir, int device) {
  allocator().hand_over(gone, heir, device);
}

}  // namespace minidl::cuda
