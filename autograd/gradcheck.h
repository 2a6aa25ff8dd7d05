// gradcheck: compares the Jacobian that backward computes with one from central finite differences.
//
// For f(inputs) -> output, in float64 on the CPU:
//   analytic row o:     backward from a one-hot gradient at output element o (retain_graph);
//   numeric column e:   (f(x + eps e) - f(x - eps e)) / (2 eps) for each element e of each input
//                       that requires grad;
//   pass:               |analytic - numeric| <= atol + rtol |numeric| for every entry.
// The result names the worst entry (input, element index, output index, both values) whether it passed
// or not, so a test can print how close it came.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace minidl {

struct GradcheckOptions {
  double eps = 1e-6;  // finite-difference step; float64 keeps its truncation and rounding error ~1e-10
  double atol = 1e-6;
  double rtol = 1e-4;
};

struct GradcheckResult {
  bool ok = true;
  double worst_ratio = 0;  // |analytic - numeric| / (atol + rtol |numeric|) at the worst entry; <= 1 passes
  int64_t input = -1;      // which input the worst entry belongs to
  Shape input_index, output_index;
  double analytic = 0, numeric = 0;
  int64_t entries = 0;  // Jacobian entries compared
  std::string message;  // one line describing the worst entry
  explicit operator bool() const { return ok; }
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs: float64 CPU tensors. Those that require grad must be leaves (views are fine, made leaves with
// requires_grad_()) with no overlapping elements (no expanded dims: expand inside f instead). Inputs
// that do not require grad are passed through unchanged.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace minidl
