// graph_dot and render_svg (autograd/graph_dot.h).
//
// The walk is breadth-first from the root's node, so a graph gets the same ids (n0, n1, ...) every time
// it is drawn: tests compare the text, and two drawings of one step can be diffed.
#include "autograd/graph_dot.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "autograd/error.h"
#include "autograd/node.h"

extern char** environ;

namespace minidl {
namespace {

// A DOT string's body: quotes and backslashes escaped, a line break as DOT's \n.
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string bytes_str(int64_t b) {
  char buf[32];
  if (b < 1024) return std::to_string(b) + " B";
  if (b < 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / 1048576.0);
  return buf;
}

std::string meta(const TensorMeta& m) { return std::string(dtype_name(m.dtype)) + shape_str(m.shape); }

// "out: float32[8,4]" and "saved: ..." lines of an op's box.
std::string op_label(const Node& n, bool with_module) {
  std::ostringstream os;
  os << n.name() << "\nout: ";
  for (size_t i = 0; i < n.outputs.size(); ++i) os << (i ? ", " : "") << meta(n.outputs[i]);
  if (!n.outputs.empty()) os << " on " << n.outputs[0].device.str();
  int64_t total = 0;
  for (const TensorMeta& s : n.saved) total += s.bytes();
  if (n.saved.empty()) {
    os << "\nsaved: nothing";
  } else if (n.saved_freed) {
    os << "\nsaved: " << n.saved.size() << " tensor" << (n.saved.size() == 1 ? "" : "s") << " (" << bytes_str(total)
       << "), freed by backward";
  } else {
    os << "\nsaved:";
    for (size_t i = 0; i < n.saved.size(); ++i)
      os << (i ? "," : "") << " " << meta(n.saved[i]) << " (" << bytes_str(n.saved[i].bytes()) << ")";
  }
  if (with_module && n.module) os << "\nin " << *n.module;
  return os.str();
}

// The module a node belongs in: its own (the module whose forward recorded it); for a named leaf, the
// owner its name gives ("visual.conv1.weight" -> "visual.conv1").
std::string module_path(const Node& n, const std::string& leaf_name) {
  if (!leaf_name.empty()) {
    const size_t dot = leaf_name.rfind('.');
    return dot == std::string::npos ? "" : leaf_name.substr(0, dot);
  }
  return n.module ? *n.module : "";
}

// One cluster per module with nodes in its subtree, nested by path.
struct Cluster {
  std::vector<std::string> nodes;
  std::map<std::string, Cluster> children;  // by full path
};

void emit_cluster(std::ostringstream& os, const std::string& path, const Cluster& c, int depth, int& counter) {
  const std::string indent(2 * static_cast<size_t>(depth + 1), ' ');
  const bool boxed = !path.empty();
  if (boxed) {
    os << indent << "subgraph cluster_" << counter++ << " {\n"
       << indent << "  label=\"" << escape(path)
       << "\"; style=\"rounded\"; color=\"#9aa7b8\"; fontcolor=\"#4a5a70\";\n";
  }
  for (const std::string& n : c.nodes) os << indent << (boxed ? "  " : "") << n << ";\n";
  for (const auto& [child, sub] : c.children) emit_cluster(os, child, sub, boxed ? depth + 1 : depth, counter);
  if (boxed) os << indent << "}\n";
}

}  // namespace

std::string graph_dot(const Tensor& root, const DotOptions& options) {
  check_defined("graph_dot", root, "tensor");
  MINIDL_CHECK(root.requires_grad(), "graph_dot: ", root.meta_str(),
               " has no graph to draw: it does not require grad (was it computed under NoGradGuard, or from "
               "tensors that need no gradient?)");
  std::unordered_map<const TensorImpl*, std::string> leaf_names;
  for (const auto& [name, t] : options.names)
    if (t.defined()) leaf_names[t.impl()] = name;

  const std::shared_ptr<Node> start = root.grad_fn() ? root.grad_fn() : grad_accumulator(root);
  std::unordered_map<const Node*, std::string> id;
  std::vector<const Node*> order;
  std::deque<const Node*> queue{start.get()};
  id[start.get()] = "n0";
  while (!queue.empty()) {
    const Node* n = queue.front();
    queue.pop_front();
    order.push_back(n);
    for (const Node::Edge& e : n->edges)
      if (e.node && !id.count(e.node.get())) {
        id[e.node.get()] = "n" + std::to_string(id.size());
        queue.push_back(e.node.get());
      }
  }

  std::ostringstream os;
  os << "digraph minidl {\n"
     << "  // The autograd graph of " << escape(root.meta_str()) << ": " << order.size()
     << " nodes. Edges point the way gradients flow, from an op to the ops that made its inputs.\n"
     << "  graph [fontname=\"Helvetica\", fontsize=11, nodesep=0.25, ranksep=0.35";
  if (!options.title.empty()) os << ", label=\"" << escape(options.title) << "\", labelloc=t";
  os << "];\n"
     << "  node [fontname=\"Helvetica\", fontsize=10];\n"
     << "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#4a5a70\"];\n"
     << "  root [shape=box, style=\"filled\", fillcolor=\"#f5d9c8\", label=\"" << escape(root.meta_str())
     << "\\n(the tensor backward starts from)\"];\n";

  Cluster top;
  auto place = [&](const std::string& node_id, const std::string& path) {
    if (!options.cluster_modules || path.empty()) {
      top.nodes.push_back(node_id);
      return;
    }
    Cluster* c = &top;
    for (size_t dot = 0;; ++dot) {
      dot = path.find('.', dot);
      c = &c->children[path.substr(0, dot)];
      if (dot == std::string::npos) break;
    }
    c->nodes.push_back(node_id);
  };

  std::ostringstream edges;
  int constants = 0;
  for (const Node* n : order) {
    const std::string& nid = id[n];
    const auto* acc = dynamic_cast<const AccumulateGrad*>(n);
    std::string leaf_name;
    if (acc) {
      const auto it = leaf_names.find(acc->leaf().get());
      leaf_name = it != leaf_names.end() ? it->second : "";
      const std::string shape = n->outputs.empty() ? "" : "\n" + n->outputs[0].str();
      os << "  " << nid << " [shape=ellipse, style=\"filled\", fillcolor=\"#d6ecd2\", label=\""
         << escape((leaf_name.empty() ? "leaf" : leaf_name) + shape) << "\"];\n";
    } else {
      os << "  " << nid << " [shape=box, style=\"rounded,filled\", fillcolor=\"#dde8f5\", label=\""
         << escape(op_label(*n, !options.cluster_modules)) << "\"];\n";
    }
    place(nid, module_path(*n, leaf_name));
    const bool several = n->edges.size() > 1;
    for (size_t i = 0; i < n->edges.size(); ++i) {
      const Node::Edge& e = n->edges[i];
      if (e.node) {
        edges << "  " << nid << " -> " << id[e.node.get()];
        std::string label = several ? std::to_string(i) : "";
        if (e.node->num_outputs() > 1)
          label += (label.empty() ? "" : " ") + ("(output " + std::to_string(e.output_nr) + ")");
        if (!label.empty()) edges << " [label=\"" << label << "\"]";
        edges << ";\n";
      } else if (e.defined && options.show_constants) {
        const std::string cid = "c" + std::to_string(constants++);
        os << "  " << cid << " [shape=note, fontsize=9, fontcolor=\"#666666\", color=\"#aaaaaa\", label=\"no grad: "
           << escape(meta({e.shape, e.dtype, e.device})) << "\"];\n";
        top.nodes.push_back(cid);
        edges << "  " << nid << " -> " << cid << " [style=dashed, color=\"#aaaaaa\", arrowhead=none"
              << (several ? ", label=\"" + std::to_string(i) + "\"" : "") << "];\n";
      }
    }
  }
  os << "  root -> n0;\n" << edges.str();
  int counter = 0;
  emit_cluster(os, "", top, 0, counter);
  os << "}\n";
  return os.str();
}

std::string write_graph(const std::string& dot_path, const Tensor& root, const DotOptions& options) {
  const std::string text = graph_dot(root, options);
  std::ofstream out(dot_path);
  out << text;
  out.close();
  MINIDL_CHECK(out.good(), "graph_dot: cannot write ", dot_path);
  const std::string svg = std::filesystem::path(dot_path).replace_extension(".svg").string();
  const std::string why = render_svg(dot_path, svg);
  return dot_path + (why.empty() ? " and " + svg : " (" + why + ")");
}

std::string render_svg(const std::string& dot_path, const std::string& svg_path) {
  // No shell: the paths go to dot as arguments, whatever characters they hold.
  const char* argv[] = {"dot", "-Tsvg", dot_path.c_str(), "-o", svg_path.c_str(), nullptr};
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, "dot", nullptr, nullptr, const_cast<char* const*>(argv), environ);
  if (err != 0)
    return err == ENOENT ? "Graphviz's dot is not installed (Debian: apt-get install graphviz), so no SVG was made"
                         : std::string("could not run Graphviz's dot: ") + std::strerror(err);
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return std::string("waiting for Graphviz's dot failed: ") + std::strerror(errno);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)  // the child could not exec it
    return "Graphviz's dot is not installed (Debian: apt-get install graphviz), so no SVG was made";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "Graphviz's dot failed on " + dot_path + " (exit status " +
           std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")";
  return "";
}

}  // namespace minidl
