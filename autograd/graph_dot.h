// The autograd graph behind a tensor, as Graphviz DOT: what the forward recorded and what backward will
// walk.
//
//   Tensor loss = ccc_loss(model(video, audio), labels);
//   std::ofstream("step.dot") << graph_dot(loss, {.names = model.named_parameters()});
//   // dot -Tsvg step.dot -o step.svg  (render_svg below does this where Graphviz is installed)
//
// One box per node (op): its name, the shapes of its outputs, and the tensors its backward rule saved
// with their sizes (or that backward has freed them). One ellipse per leaf that receives a gradient,
// named by `names` (a module's named_parameters() gives "visual.layer2.0.conv1.weight"). Edges follow
// backward: from an op to the ops that made its inputs, labelled with the input's position when an op
// has several. Inputs that need no gradient (data, constants, detached tensors) are grey notes on dashed
// edges. With cluster_modules, the ops a module's forward recorded are boxed together, one box per
// module, nested as the modules are.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace minidl {

struct DotOptions {
  std::vector<std::pair<std::string, Tensor>> names{};  // leaves to name, as named_parameters() gives them
  bool cluster_modules = true;
  bool show_constants = true;  // the inputs that need no gradient, as grey notes
  std::string title{};         // drawn above the graph
};

// The graph behind `root`, which must require grad (a minidl::Error says why not otherwise).
std::string graph_dot(const Tensor& root, const DotOptions& options = {});

// Writes graph_dot(root, options) to dot_path and, where Graphviz is installed, the picture beside it
// (dot_path with the extension .svg). Returns what it wrote, for the caller to print: "step.dot and
// step.svg", or "step.dot (why there is no SVG)". A file that cannot be written is a minidl::Error.
std::string write_graph(const std::string& dot_path, const Tensor& root, const DotOptions& options = {});

// Runs Graphviz (`dot -Tsvg dot_path -o svg_path`) if it is installed. Returns "" on success, otherwise
// why not (not installed, or what dot said), for the caller to print; never throws for a missing dot.
std::string render_svg(const std::string& dot_path, const std::string& svg_path);

}  // namespace minidl
