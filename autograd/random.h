// Seeded random streams. A Generator is a seed and a position (offset, in Philox blocks of four 32-bit
// values); each draw reserves the blocks it uses and advances the offset, so a run that draws the same
// tensors in the same order sees the same numbers, on the CPU and on a GPU.
//
// How values are made from the stream (autograd/philox.h), element i of a draw:
//   uniform float32:  value i, top 24 bits
//   uniform float64:  values 2i, 2i+1, top 53 bits
//   normal:           Box-Muller on the pair of elements (2m, 2m+1): uniforms u1, u2 of those elements,
//                     r = sqrt(-2 log(1 - u1)), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2), computed in double
//   bernoulli(p):     float32 uniform of value i < p
#pragma once

#include <cstdint>
#include <mutex>

namespace minidl {

class Generator {
 public:
  explicit Generator(uint64_t seed = kDefaultSeed) : seed_(seed) {}
  static constexpr uint64_t kDefaultSeed = 0x6d696e69646cULL;  // "minidl"

  uint64_t seed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return seed_;
  }
  uint64_t offset() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return offset_;
  }
  void set_state(uint64_t seed, uint64_t offset) {
    std::lock_guard<std::mutex> lock(mutex_);
    seed_ = seed;
    offset_ = offset;
  }
  // Reserves enough blocks for `values` 32-bit values; returns the seed and the first block's number,
  // read together so a concurrent set_state cannot split them.
  struct Draw {
    uint64_t seed, offset;
  };
  Draw reserve(uint64_t values) {
    std::lock_guard<std::mutex> lock(mutex_);
    const Draw d{seed_, offset_};
    offset_ += (values + 3) / 4;
    return d;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
  mutable std::mutex mutex_;
};

Generator& default_generator();
// Re-seeds the default generator and rewinds it to offset 0.
void manual_seed(uint64_t seed);

}  // namespace minidl
