// The op profiler (autograd/profiler.h): FLOP counts of the GEMM, the convolution and the LSTM against
// hand-computed ones, memory per op, the Chrome trace's nesting (every backward event inside its step),
// the tables, and that profiling changes no result.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "autograd/minidl.h"
#include "layers/activation.h"
#include "layers/linear.h"
#include "layers/module.h"
#include "optim/optimizer.h"
#include "tests/autograd/profile_events.h"

using namespace minidl;
using profile_test::find;
using profiler::Event;
using profiler::EventKind;

namespace {

// A two-layer net called through its modules, and a few Adam steps of it, each in a "step" range with
// forward, backward and optimizer sections (as the trainer marks them). Returns the losses.
struct SmallNet {
  std::shared_ptr<nn::Sequential> net = std::make_shared<nn::Sequential>();
  SmallNet() {
    Generator gen(7);
    net->add(std::make_shared<nn::Linear>(4, 8, true, &gen))
        .add(std::make_shared<nn::Tanh>())
        .add(std::make_shared<nn::Linear>(8, 1, true, &gen));
  }
  std::vector<double> train(int steps) {
    optim::Adam adam(net->named_parameters(), 1e-2);
    Generator data(3);
    const Tensor x = randn({16, 4}, {}, &data), y = randn({16, 1}, {}, &data);
    std::vector<double> losses;
    for (int i = 0; i < steps; ++i) {
      const profiler::Range step("step");
      adam.zero_grad();
      Tensor loss;
      {
        const profiler::Range r("forward");
        const Tensor d = (*net)(x)-y;
        loss = mean(d * d);
      }
      {
        const profiler::Range r("backward");
        loss.backward();
      }
      const profiler::Range r("optimizer");
      adam.step();
      losses.push_back(loss.item());
    }
    return losses;
  }
};

}  // namespace

TEST(Profiler, MatmulFlopsAndBytes) {
  const Tensor a = rand({3, 5, 7}), b = rand({7, 4});
  profiler::Profiler p;
  const Tensor c = matmul(a, b);
  p.stop();
  const auto ev = find(p, EventKind::Op, "matmul");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].flops, 2.0 * 3 * 5 * 4 * 7);                    // 3 products of 5 x 4 outputs, 7 terms each
  EXPECT_EQ(ev[0].bytes, 4.0 * (3 * 5 * 7 + 7 * 4 + 3 * 5 * 4));  // A and B read, C written
  EXPECT_EQ(ev[0].inputs, "float32[3,5,7] float32[7,4]");
  EXPECT_TRUE(ev[0].device.is_cpu());
}

TEST(Profiler, ConvFlopsForwardAndBackward) {
  // 2-D, 2 groups, stride (2, 1), padding (1, 0): out 5 x 6, 2 x 3 x 3 = 18 taps per output.
  const Tensor x = rand({2, 4, 9, 8}, {.requires_grad = true}), w = rand({6, 2, 3, 3}, {.requires_grad = true});
  const Tensor b = rand({6}, {.requires_grad = true});
  const double outputs = 2 * 6 * 5 * 6, multiply_adds = outputs * 18;
  profiler::Profiler p;
  const Tensor y = conv(x, w, b, {2, 1}, {1, 0}, {1}, 2);
  sum(y).backward();
  p.stop();
  ASSERT_EQ(y.shape(), (Shape{2, 6, 5, 6}));
  const auto fwd = find(p, EventKind::Op, "conv"), bwd = find(p, EventKind::Rule, "conv");
  ASSERT_EQ(fwd.size(), 1u);
  ASSERT_EQ(bwd.size(), 1u);
  EXPECT_EQ(fwd[0].flops, 2 * multiply_adds + outputs);                      // and one add per output for the bias
  EXPECT_EQ(bwd[0].flops, 2 * multiply_adds + 2 * multiply_adds + outputs);  // dx, dw, and db's sum
  EXPECT_TRUE(bwd[0].backward);
  EXPECT_FALSE(fwd[0].backward);

  // Only the input's gradient: one pass of multiply-adds.
  const Tensor w2 = w.detach();
  profiler::Profiler q;
  sum(conv(x, w2, {}, {2, 1}, {1, 0}, {1}, 2)).backward();
  q.stop();
  ASSERT_EQ(find(q, EventKind::Rule, "conv").size(), 1u);
  EXPECT_EQ(find(q, EventKind::Rule, "conv")[0].flops, 2 * multiply_adds);
  EXPECT_EQ(find(q, EventKind::Op, "conv")[0].flops, 2 * multiply_adds);
}

TEST(Profiler, LstmFlopsForwardAndBackward) {
  const int64_t B = 2, T = 3, I = 4, H = 5;
  const Tensor x = rand({B, T, I}, {.requires_grad = true});
  const Tensor w_ih = rand({4 * H, I}, {.requires_grad = true}), w_hh = rand({4 * H, H}, {.requires_grad = true});
  const Tensor b_ih = rand({4 * H}, {.requires_grad = true}), b_hh = rand({4 * H}, {.requires_grad = true});
  // Per step, B x 4H gate outputs of I (input) + H (recurrent) multiply-adds each.
  const double input_products = B * T * 4 * H * I, recurrent_products = B * T * 4 * H * H;
  profiler::Profiler p;
  const LstmResult r = lstm_layer(x, {}, {}, w_ih, w_hh, b_ih, b_hh);
  sum(r.output).backward();
  const std::array<LstmResult, 2> both =
      lstm_bidirectional(x, {{}, {}, w_ih, w_hh, b_ih, b_hh}, {{}, {}, w_ih, w_hh, b_ih, b_hh});
  p.stop();
  const auto fwd = find(p, EventKind::Op, "lstm_layer"), bwd = find(p, EventKind::Rule, "lstm_layer");
  ASSERT_EQ(fwd.size(), 1u);
  ASSERT_EQ(bwd.size(), 1u);
  EXPECT_EQ(fwd[0].flops, 2 * (input_products + recurrent_products));
  // Backward: dh through time, dx, dW_ih and dW_hh.
  EXPECT_EQ(bwd[0].flops, 2 * (recurrent_products + input_products + input_products + recurrent_products));
  const auto bi = find(p, EventKind::Op, "lstm_bidirectional");
  ASSERT_EQ(bi.size(), 1u);
  EXPECT_EQ(bi[0].flops, 4 * (input_products + recurrent_products)) << "two directions";
  EXPECT_EQ(both[1].output.shape(), (Shape{B, T, H}));
}

TEST(Profiler, MemoryPerOpIsTheAllocatorsCount) {
  const Tensor a = rand({1000}), b = rand({1000});
  profiler::Profiler p;
  const Tensor c = mul(a, b);  // 4000 bytes kept: one 64-byte-aligned block of 4032
  p.stop();
  const auto ev = find(p, EventKind::Op, "mul");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].memory_after - ev[0].memory_before, 4032);
  EXPECT_GE(ev[0].memory_before, 8064) << "a and b were in use";
}

TEST(Profiler, ChromeTraceNestsAndEveryBackwardEventIsInsideAStep) {
  SmallNet net;
  profiler::Profiler p;
  net.train(2);
  p.stop();
  const nlohmann::json doc = nlohmann::json::parse(p.chrome_trace());
  ASSERT_TRUE(doc.contains("traceEvents"));
  struct Span {
    double start, end;
    std::string name, cat, pass;
  };
  std::vector<Span> spans;
  for (const auto& e : doc["traceEvents"])
    if (e["ph"] == "X" && e["pid"] == 0)
      spans.push_back({e["ts"].get<double>(), e["ts"].get<double>() + e["dur"].get<double>(), e["name"], e["cat"],
                       e["args"]["pass"]});
  ASSERT_FALSE(spans.empty());
  // Nesting: sorted by start (outer first on ties), each span ends before the span around it does.
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.start != b.start ? a.start < b.start : a.end > b.end; });
  std::vector<const Span*> stack;
  for (const Span& s : spans) {
    while (!stack.empty() && stack.back()->end <= s.start) stack.pop_back();
    if (!stack.empty()) {
      EXPECT_LE(s.end, stack.back()->end) << s.name << " overlaps " << stack.back()->name;
    }
    stack.push_back(&s);
  }
  std::vector<const Span*> steps;
  for (const Span& s : spans)
    if (s.cat == "range" && s.name == "step") steps.push_back(&s);
  ASSERT_EQ(steps.size(), 2u);
  int backward_events = 0;
  for (const Span& s : spans) {
    if (s.pass != "backward") continue;
    ++backward_events;
    const bool inside = std::any_of(steps.begin(), steps.end(),
                                    [&](const Span* st) { return st->start <= s.start && s.end <= st->end; });
    EXPECT_TRUE(inside) << s.name << " (" << s.cat << ") is outside every step";
  }
  EXPECT_GT(backward_events, 10);
  // The modules (the Sequential's children 0 and 2) appear in forward and, around their rules, in backward.
  for (const char* module : {"0", "2"}) {
    int forward = 0, backward = 0;
    for (const Span& s : spans)
      if (s.cat == "module" && s.name == module) (s.pass == "backward" ? backward : forward) += 1;
    EXPECT_EQ(forward, 2) << module;
    EXPECT_GE(backward, 2) << module;
  }
  EXPECT_NE(p.chrome_trace().find("\"cat\":\"rule\""), std::string::npos);
  EXPECT_NE(p.chrome_trace().find("memory in use (MiB)"), std::string::npos);
}

TEST(Profiler, TablesCountPerStep) {
  SmallNet net;
  profiler::Profiler p;
  net.train(3);
  p.stop();
  EXPECT_EQ(p.steps(), 3);
  const auto rows = p.op_rows();
  double self = 0;
  bool matmul_forward = false, adam = false, linear_backward_ops = false;
  for (const auto& r : rows) {
    self += r.self_us;
    EXPECT_GE(r.self_us, 0);
    EXPECT_LE(r.self_us, r.total_us + 1e-9);
    if (r.name == "matmul" && r.pass == "forward") {
      matmul_forward = true;
      EXPECT_EQ(r.calls, 3 * 2);
    }
    if (r.name == "adam_step") {
      adam = true;
      EXPECT_EQ(r.pass, "optimizer");
    }
    if (r.name == "matmul" && r.pass == "backward") linear_backward_ops = true;
  }
  EXPECT_TRUE(matmul_forward);
  EXPECT_TRUE(adam);
  EXPECT_TRUE(linear_backward_ops) << "the matmuls a backward rule calls count as backward";
  EXPECT_LE(self, p.step_us() * 1.0001) << "self times count every moment once";
  // By module: the two Linears, and the loss at the top level.
  const auto modules = p.module_rows();
  auto has = [&](const std::string& path, const std::string& pass) {
    return std::any_of(modules.begin(), modules.end(), [&](const auto& r) { return r.name == path && r.pass == pass; });
  };
  EXPECT_TRUE(has("0", "forward"));
  EXPECT_TRUE(has("0", "backward"));
  EXPECT_TRUE(has("1", "forward"));
  EXPECT_TRUE(has("(top level)", "forward"));
  EXPECT_TRUE(has("(top level)", "optimizer"));
  const std::string report = p.report();
  for (const char* part : {"Profile: 3 steps", "By op, per step", "By module, per step", "matmul", "(top level)"})
    EXPECT_NE(report.find(part), std::string::npos) << part << "\n" << report;
}

TEST(Profiler, ProfilingChangesNoResult) {
  SmallNet plain, profiled;
  const std::vector<double> a = plain.train(4);
  profiler::Profiler p;
  const std::vector<double> b = profiled.train(4);
  p.stop();
  EXPECT_EQ(a, b);
  EXPECT_FALSE(p.events().empty());
}

TEST(Profiler, OneThreadOneProfilerAndOtherThreadsAreNotRecorded) {
  profiler::Profiler p;
  EXPECT_THROW(profiler::Profiler second, Error);
  EXPECT_THROW(p.events(), Error) << "the events are read after stop()";
  std::thread other([] { mul(rand({8}), rand({8})); });
  other.join();
  p.stop();
  EXPECT_TRUE(find(p, EventKind::Op, "mul").empty());
  EXPECT_EQ(p.steps(), 1) << "no step ranges: the whole recording is one step";
  profiler::Profiler again;  // the thread is free once the first stopped
  again.stop();
}
