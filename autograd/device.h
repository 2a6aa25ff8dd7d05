// Where a tensor's storage lives: the CPU, or CUDA device `index`.
#pragma once

#include <cstdint>
#include <string>

namespace minidl {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

  friend bool operator==(const Device& a, const Device& b) { return a.type == b.type && a.index == b.index; }
  friend bool operator!=(const Device& a, const Device& b) { return !(a == b); }
};

// Parses "cpu", "cuda" or "cuda:N"; anything else is a minidl::Error naming the text.
Device parse_device(const std::string& text);

// True when this build has the CUDA backend (MINIDL_CUDA was on and nvcc was found).
bool cuda_built();
// True when that backend is the emulator (-DMINIDL_CUDA=EMULATE): CUDA's kernels, run on the CPU, for tests.
bool cuda_emulated();
// Number of CUDA devices visible at run time; 0 without the CUDA backend or without a GPU.
int cuda_device_count();
// Empty when `device` can be used here; otherwise why not ("this machine has 0 CUDA device(s)", or that
// the build has no CUDA), for the error messages of everything that takes a device.
std::string device_unavailable(Device device);

}  // namespace minidl
