// The graph export (autograd/graph_dot.h): a known graph read back node by node and edge by edge, with a
// shared subexpression, a detached branch, retain_graph and the saved tensors freed by backward; module
// clusters; what the nodes remember of their op (Node::outputs, saved, module).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "autograd/minidl.h"
#include "layers/activation.h"
#include "layers/linear.h"
#include "layers/module.h"
#include "tests/autograd/dot_reader.h"

using namespace minidl;

namespace {

Tensor leaf(std::vector<double> v) {
  Tensor t = from_vector(v, {static_cast<int64_t>(v.size())}, {.dtype = kFloat64});
  t.requires_grad_();
  return t;
}

// loss = sum((s * w + s) * x.detach()) with s = exp(x): exp feeds two ops (shared), x.detach() is a
// branch without gradient, and x and w are the named leaves.
struct Known {
  Tensor x = leaf({0.5, -1.0, 2.0}), w = leaf({1.0, 2.0, 3.0});
  Tensor loss;
  Known() {
    const Tensor s = exp(x);
    loss = sum((s * w + s) * x.detach());
  }
  DotOptions options() const { return {.names = {{"x", x}, {"w", w}}}; }
};

}  // namespace

TEST(GraphDot, KnownGraphNodeByNode) {
  Known k;
  const dot_test::Graph g = dot_test::read(graph_dot(k.loss, k.options()));
  // Five ops and two leaves (plus the root's box and one note for the detached input).
  for (const char* op : {"sum", "mul", "add", "exp"}) EXPECT_FALSE(g.find(op).empty()) << op;
  EXPECT_EQ(g.find("mul").size(), 2u);
  ASSERT_EQ(g.find("exp").size(), 1u) << "a shared subexpression is one node";
  ASSERT_EQ(g.find("x").size(), 1u);
  ASSERT_EQ(g.find("w").size(), 1u);
  EXPECT_EQ(g.labels.size(), 5u + 2u + 1u + 1u);

  // Labels: the op, its output, what its rule saved, with sizes.
  const std::string exp_id = g.find("exp")[0];
  EXPECT_EQ(g.labels.at(exp_id), "exp\nout: float64[3] on cpu\nsaved: float64[3] (24 B)");
  EXPECT_EQ(g.labels.at(g.find("sum")[0]), "sum\nout: float64[] on cpu\nsaved: nothing");
  EXPECT_EQ(g.labels.at(g.find("x")[0]), "x\nfloat64[3] on cpu");
  EXPECT_EQ(g.shapes.at(g.find("w")[0]), "ellipse");
  EXPECT_EQ(g.shapes.at(exp_id), "box");

  // The shared node: both of s's consumers (the first mul and the add) point at it; it points at x.
  const auto into_exp = g.edges_to(exp_id);
  ASSERT_EQ(into_exp.size(), 2u);
  EXPECT_NE(into_exp[0].from, into_exp[1].from);
  ASSERT_EQ(g.edges_from(exp_id).size(), 1u);
  EXPECT_EQ(g.edges_from(exp_id)[0].to, g.find("x")[0]);
  EXPECT_EQ(g.edges_from(exp_id)[0].label, "") << "a one-input op's edge needs no position";

  // The outer mul: input 0 is the add, input 1 the detached x, drawn as a dashed note.
  const std::string outer = g.edges_from(g.find("sum")[0]).at(0).to;
  const auto out_edges = g.edges_from(outer);
  ASSERT_EQ(out_edges.size(), 2u);
  EXPECT_EQ(out_edges[1].label, "1");
  EXPECT_TRUE(out_edges[1].dashed);
  EXPECT_EQ(g.labels.at(out_edges[1].to), "no grad: float64[3]");
  EXPECT_EQ(g.labels.at(outer), "mul\nout: float64[3] on cpu\nsaved: float64[3] (24 B)")
      << "only the detached x is saved: the add's gradient needs it, and the detached branch needs none";
  EXPECT_FALSE(out_edges[0].dashed);
  EXPECT_EQ(g.labels.at(out_edges[0].to).rfind("add\n", 0), 0u);
  // The root's box leads to the sum.
  ASSERT_EQ(g.edges_from("root").size(), 1u);
  EXPECT_EQ(g.edges_from("root")[0].to, g.find("sum")[0]);
}

TEST(GraphDot, SavedTensorsAfterBackwardWithAndWithoutRetainGraph) {
  Known k;
  k.loss.backward({}, /*retain_graph=*/true);
  dot_test::Graph g = dot_test::read(graph_dot(k.loss, k.options()));
  EXPECT_EQ(g.labels.at(g.find("exp")[0]), "exp\nout: float64[3] on cpu\nsaved: float64[3] (24 B)")
      << "retain_graph keeps what was saved";
  k.loss.backward();
  g = dot_test::read(graph_dot(k.loss, k.options()));
  EXPECT_EQ(g.labels.at(g.find("exp")[0]), "exp\nout: float64[3] on cpu\nsaved: 1 tensor (24 B), freed by backward");
  EXPECT_EQ(g.labels.at(g.find("sum")[0]), "sum\nout: float64[] on cpu\nsaved: nothing");
}

TEST(GraphDot, UnnamedLeavesAndConstantsCanBeLeftOut) {
  Known k;
  const dot_test::Graph g = dot_test::read(graph_dot(k.loss, {.show_constants = false}));
  EXPECT_EQ(g.find("leaf").size(), 2u);
  EXPECT_TRUE(g.find("no grad: float64[3]").empty());
  EXPECT_EQ(g.labels.size(), 5u + 2u + 1u);
}

TEST(GraphDot, ModulesAreClustersAndLeavesSitInTheirOwners) {
  struct Net : nn::Module {
    nn::Linear hidden{3, 4}, out{4, 1};
    nn::Tanh act;
    nn::Sequential head;
    Net() {
      head.add(std::make_shared<nn::Linear>(1, 2));
      register_module("hidden", &hidden);
      register_module("act", &act);
      register_module("out", &out);
      register_module("head", &head);
    }
    std::string type_name() const override { return "Net"; }
    Tensor operator()(const Tensor& x) { return head(out(act(hidden(x)))); }
  } net;
  const Tensor loss = sum(net(rand({5, 3})));
  const std::string dot = graph_dot(loss, {.names = net.named_parameters()});
  const dot_test::Graph g = dot_test::read(dot);
  for (const auto& [name, p] : net.named_parameters()) {
    const auto ids = g.find(name);
    ASSERT_EQ(ids.size(), 1u) << name << "\n" << dot;
    EXPECT_EQ(g.cluster.at(ids[0]), name.substr(0, name.rfind('.'))) << name;
  }
  EXPECT_EQ(g.cluster.at(g.find("tanh").at(0)), "act");
  EXPECT_EQ(g.cluster.at(g.find("sum").at(0)), "") << "the loss is outside every module";
  // head.0 is a cluster inside head's.
  EXPECT_NE(dot.find("label=\"head.0\""), std::string::npos);
  EXPECT_LT(dot.find("label=\"head\""), dot.find("label=\"head.0\""));
  // Without clusters, the module is a line of the op's label.
  const dot_test::Graph flat = dot_test::read(graph_dot(loss, {.cluster_modules = false}));
  EXPECT_NE(flat.labels.at(flat.find("tanh").at(0)).find("\nin act"), std::string::npos);
  EXPECT_NE(dot.find("subgraph cluster_"), std::string::npos);
  EXPECT_EQ(graph_dot(loss, {.cluster_modules = false}).find("subgraph"), std::string::npos);
}

TEST(GraphDot, NodesRememberTheirOpsOutputsSavedTensorsAndModule) {
  const Tensor a = leaf({1, 2, 3, 4, 5, 6}).reshape({2, 3}), b = rand({3, 4}, {.dtype = kFloat64});
  const Tensor c = matmul(a, b);
  const Node& n = *c.grad_fn();
  EXPECT_EQ(n.name(), "matmul");
  ASSERT_EQ(n.outputs.size(), 1u);
  EXPECT_EQ(n.outputs[0].str(), "float64[2,4] on cpu");
  ASSERT_EQ(n.saved.size(), 1u) << "only b: a's gradient needs it, and b needs no gradient";
  EXPECT_EQ(n.saved[0].str(), "float64[3,4] on cpu");
  EXPECT_EQ(n.saved[0].bytes(), 96);
  EXPECT_EQ(n.module, nullptr);
  // A multi-output op: one output per slot.
  const Tensor x = rand({2, 3, 4}, {.requires_grad = true});
  const Tensor w_ih = rand({8, 4}, {.requires_grad = true}), w_hh = rand({8, 2}, {.requires_grad = true});
  const LstmResult r = lstm_layer(x, {}, {}, w_ih, w_hh, {}, {});
  EXPECT_EQ(r.output.grad_fn()->outputs.size(), 3u);
  EXPECT_EQ(r.output.grad_fn()->outputs[1].str(), "float32[2,2] on cpu");
}

TEST(GraphDot, RefusesATensorWithoutAGraph) {
  try {
    graph_dot(rand({2}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("graph_dot: float32[2] on cpu has no graph to draw"), std::string::npos)
        << e.what();
  }
}

TEST(GraphDot, RenderSvgSaysWhyWhenGraphvizIsMissing) {
  Known k;
  const auto dir = std::filesystem::temp_directory_path() / ("minidl_dot_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string dot = (dir / "g.dot").string(), svg = (dir / "g.svg").string();
  std::ofstream(dot) << graph_dot(k.loss, k.options());
  const char* path = std::getenv("PATH");
  const std::string saved = path ? path : "";
  setenv("PATH", dir.string().c_str(), 1);  // a folder without dot
  const std::string missing = render_svg(dot, svg);
  setenv("PATH", saved.c_str(), 1);
  EXPECT_NE(missing.find("Graphviz's dot is not installed"), std::string::npos) << missing;
  EXPECT_FALSE(std::filesystem::exists(svg));
  const std::string why = render_svg(dot, svg);
  if (why.find("not installed") != std::string::npos) {
    std::filesystem::remove_all(dir);
    GTEST_SKIP() << "Graphviz is not installed here (scripts/setup installs it): " << why;
  }
  EXPECT_EQ(why, "");
  std::ifstream in(svg);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("exp"), std::string::npos);
  std::filesystem::remove_all(dir);
}
