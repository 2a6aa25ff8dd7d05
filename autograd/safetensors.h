// The safetensors file format (github.com/huggingface/safetensors), so checkpoints written here open in
// PyTorch (safetensors.torch.load_file) and checkpoints written by PyTorch open here:
//   8 bytes      little-endian uint64 N
//   N bytes      JSON: {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//                       "__metadata__": {"key": "value", ...}}   (optional, strings only)
//   the rest     the tensors' bytes, little-endian, row-major, at their offsets from the end of the header
// Saved: float32 (F32), float64 (F64), int64 (I64), bool (BOOL). Loaded: those, plus F16 and BF16, which are
// widened to float32 (PyTorch half-precision checkpoints).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace minidl {

using TensorList = std::vector<std::pair<std::string, Tensor>>;

// Writes the tensors (any device, any strides) in the given order; the file appears atomically. Names must
// be distinct and non-empty, and not "__metadata__".
void save_safetensors(const std::string& path, const TensorList& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads every tensor, in the order of their data offsets, as CPU tensors. A truncated file, a header that
// is not the format's JSON, offsets that overlap or leave the file, an unknown dtype: a minidl::Error naming
// the file and the problem.
TensorList load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

}  // namespace minidl
