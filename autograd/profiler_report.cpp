// The op profiler's tables and trace (autograd/profiler.h), from the events profiler.cpp recorded.
//
// Self time: an event's time minus the time of the events directly inside it, so that summing self
// times over all ops counts every moment once (linear's self time is its own bookkeeping; the matmul
// and add it calls have theirs). For an op on a CUDA tensor the time is the GPU's, between its two CUDA
// events; the host time of such an op is what launching it cost, shown in a column of its own.
#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "autograd/error.h"
#include "autograd/profiler.h"
#include "autograd/profiler_impl.h"

namespace minidl::profiler {
namespace {

constexpr const char* kTopLevel = "(top level)";

bool is_work(const Event& e) { return e.kind == EventKind::Op || e.kind == EventKind::Rule; }
bool on_gpu(const Event& e) { return e.device_start_us >= 0; }
double host_us(const Event& e) { return e.end_us - e.start_us; }
double time_us(const Event& e) { return on_gpu(e) ? e.device_end_us - e.device_start_us : host_us(e); }

// Self time (GPU time for CUDA ops, host time otherwise) and host self time of every event.
struct SelfTimes {
  std::vector<double> self, host_self;
};

SelfTimes self_times(const std::vector<Event>& events) {
  SelfTimes t;
  t.self.resize(events.size());
  t.host_self.resize(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    t.self[i] = time_us(events[i]);
    t.host_self[i] = host_us(events[i]);
  }
  for (const Event& e : events) {
    if (e.parent < 0) continue;
    const Event& p = events[e.parent];
    t.host_self[e.parent] -= host_us(e);
    // A GPU parent loses its children's GPU time; a child without GPU time was host work inside it.
    if (on_gpu(p) == on_gpu(e)) t.self[e.parent] -= time_us(e);
  }
  for (size_t i = 0; i < events.size(); ++i) {
    t.self[i] = std::max(0.0, t.self[i]);
    t.host_self[i] = std::max(0.0, t.host_self[i]);
  }
  return t;
}

// Which events the tables count: with step ranges, those inside one (a validation pass between two
// profiled steps is not part of a step); without, all.
std::vector<bool> in_steps(const std::vector<Event>& events, const std::string& step_range) {
  std::vector<bool> in(events.size(), false);
  bool any = false;
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    in[i] = (e.kind == EventKind::Range && e.name == step_range && e.parent < 0) || (e.parent >= 0 && in[e.parent]);
    any = any || in[i];
  }
  if (!any) in.assign(events.size(), true);
  return in;
}

// forward, backward, or the innermost enclosing range's name that is not the step ("optimizer").
std::string pass_of(const std::vector<Event>& events, size_t i, const std::string& step_range) {
  if (events[i].backward) return "backward";
  for (int p = events[i].parent; p >= 0; p = events[p].parent)
    if (events[p].kind == EventKind::Range && events[p].name != step_range) return events[p].name;
  return "forward";
}

std::string row_name(const Event& e) { return e.kind == EventKind::Rule ? e.name + " backward" : e.name; }

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string rate(double amount, double us, double unit) {
  if (amount <= 0 || us <= 0) return "-";
  return fixed(amount / (us * 1e-6) / unit, 1);
}

std::string pad(std::string s, size_t width, bool right = false) {
  if (s.size() >= width) return s;
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

}  // namespace

std::vector<Profiler::Row> Profiler::op_rows() const {
  const std::vector<Event>& ev = events();
  const SelfTimes t = self_times(ev);
  const double steps = impl_->step_count;
  const std::vector<bool> counted = in_steps(ev, impl_->options.step_range);
  std::map<std::tuple<std::string, std::string, int>, Row> rows;
  for (size_t i = 0; i < ev.size(); ++i) {
    const Event& e = ev[i];
    if (!is_work(e) || !counted[i]) continue;
    const std::string pass = pass_of(ev, i, impl_->options.step_range);
    Row& r = rows[{row_name(e), pass, static_cast<int>(e.device.type)}];
    r.name = row_name(e);
    r.pass = pass;
    r.kind = e.kind;
    r.device = e.device;
    r.calls += 1;
    r.self_us += t.self[i] / steps;
    r.total_us += time_us(e) / steps;
    r.host_self_us += t.host_self[i] / steps;
    r.flops += e.flops / steps;
    r.bytes += e.bytes / steps;
    r.memory_delta += static_cast<double>(e.memory_after - e.memory_before) / steps;
  }
  std::vector<Row> out;
  for (auto& [key, r] : rows) out.push_back(r);
  std::stable_sort(out.begin(), out.end(), [](const Row& a, const Row& b) { return a.self_us > b.self_us; });
  return out;
}

std::vector<Profiler::Row> Profiler::module_rows(int max_depth) const {
  const std::vector<Event>& ev = events();
  const SelfTimes t = self_times(ev);
  const double steps = impl_->step_count;
  // Paths in the order they first appear, which is the forward's depth-first order of the modules.
  std::vector<std::string> order;
  std::map<std::pair<std::string, std::string>, Row> rows;
  std::map<std::string, bool> seen;
  auto add = [&](const std::string& path, const std::string& pass, double self, const Event& e) {
    if (!seen[path]) {
      seen[path] = true;
      order.push_back(path);
    }
    Row& r = rows[{path, pass}];
    r.name = path;
    r.pass = pass;
    r.kind = EventKind::Module;
    r.calls += 1;
    r.self_us += self / steps;
    r.flops += e.flops / steps;
    r.bytes += e.bytes / steps;
  };
  const std::vector<bool> counted = in_steps(ev, impl_->options.step_range);
  for (size_t i = 0; i < ev.size(); ++i) {
    const Event& e = ev[i];
    if (!is_work(e) || !counted[i]) continue;
    const std::string pass = pass_of(ev, i, impl_->options.step_range);
    if (!e.module) {
      add(kTopLevel, pass, t.self[i], e);
      continue;
    }
    // Every ancestor up to max_depth components gets the op's time.
    const std::string& path = *e.module;
    int depth = 0;
    for (size_t dot = 0; depth < max_depth; ++dot) {
      dot = path.find('.', dot);
      add(path.substr(0, dot), pass, t.self[i], e);
      ++depth;
      if (dot == std::string::npos) break;
    }
  }
  // The top level last: it is what no module owns (the loss, the optimiser, the root module's own ops).
  std::stable_partition(order.begin(), order.end(), [](const std::string& p) { return p != kTopLevel; });
  std::vector<Row> out;
  for (const std::string& path : order)
    for (const auto& [key, r] : rows)
      if (key.first == path) out.push_back(r);
  return out;
}

std::string Profiler::report(size_t max_rows, int module_depth) const {
  const Impl& s = *impl_;
  const std::vector<Row> ops = op_rows();
  const double step = s.step_time_us;
  std::ostringstream os;
  os << "Profile: " << s.step_count << (s.step_count == 1 ? " step" : " steps") << " of " << fixed(step / 1e3, 2)
     << " ms (host wall time per step); memory peak " << fixed(static_cast<double>(s.host_peak) / 1048576.0, 1)
     << " MiB on the cpu";
  for (const auto& [device, base] : s.devices)
    os << ", " << fixed(static_cast<double>(base.peak) / 1048576.0, 1) << " MiB on cuda:" << device;
  // Time between the steps, in ranges of its own (the trainer's wait for the next batch, "data").
  std::map<std::string, double> between;
  for (const Event& e : s.events)
    if (e.kind == EventKind::Range && e.parent < 0 && e.name != s.options.step_range) between[e.name] += host_us(e);
  for (const auto& [name, us] : between)
    os << "\nOutside the steps, per step: " << name << " " << fixed(us / s.step_count / 1e3, 2) << " ms";
  os << "\n\nBy op, per step (self: the op's own kernels, not the ops it calls; GPU time for CUDA ops)\n";
  const bool gpu = !s.devices.empty();
  os << pad("op", 36) << pad("pass", 10) << pad("calls", 7, true) << pad("self ms", 10, true) << pad("% step", 8, true)
     << pad("total ms", 10, true);
  if (gpu) os << pad("host ms", 9, true);
  os << pad("GFLOP/s", 9, true) << pad("GB/s", 8, true) << pad("mem +MiB", 10, true) << "\n";
  double covered = 0;
  Row rest;
  size_t rest_count = 0;
  auto print = [&](const Row& r, const std::string& name) {
    os << pad(name, 36) << pad(r.pass, 10) << pad(fixed(r.calls / double(s.step_count), 0), 7, true)
       << pad(fixed(r.self_us / 1e3, 3), 10, true) << pad(fixed(100 * r.self_us / step, 1), 8, true)
       << pad(fixed(r.total_us / 1e3, 3), 10, true);
    if (gpu) os << pad(fixed(r.host_self_us / 1e3, 3), 9, true);
    os << pad(rate(r.flops, r.self_us, 1e9), 9, true) << pad(rate(r.bytes, r.self_us, 1e9), 8, true)
       << pad(fixed(r.memory_delta / 1048576.0, 2), 10, true) << "\n";
  };
  for (size_t k = 0; k < ops.size(); ++k) {
    covered += ops[k].self_us;
    if (k < max_rows) {
      print(ops[k], ops[k].device.is_cuda() ? ops[k].name + " (cuda)" : ops[k].name);
      continue;
    }
    ++rest_count;
    rest.calls += ops[k].calls;
    rest.self_us += ops[k].self_us;
    rest.total_us += ops[k].total_us;
    rest.host_self_us += ops[k].host_self_us;
    rest.memory_delta += ops[k].memory_delta;
  }
  if (rest_count) print(rest, "(" + std::to_string(rest_count) + " more rows)");
  os << "ops: " << fixed(covered / 1e3, 2) << " ms per step, " << fixed(100 * covered / step, 1)
     << "% of the step; the rest ran outside any op (the program, the engine, the loader, waits)\n";

  os << "\nBy module, per step (self time of the ops its forward recorded and of their backward rules, "
        "submodules included; depth <= "
     << module_depth << ")\n";
  os << pad("module", 40) << pad("forward ms", 12, true) << pad("backward ms", 13, true) << pad("other ms", 10, true)
     << pad("% step", 8, true) << "\n";
  std::vector<std::string> paths;
  std::map<std::string, std::array<double, 3>> by_path;
  for (const Row& r : module_rows(module_depth)) {
    if (!by_path.count(r.name)) paths.push_back(r.name);
    const int col = r.pass == "forward" ? 0 : r.pass == "backward" ? 1 : 2;
    by_path[r.name][col] += r.self_us;
  }
  for (const std::string& p : paths) {
    const auto& v = by_path[p];
    const int depth = static_cast<int>(std::count(p.begin(), p.end(), '.'));
    os << pad(std::string(2 * depth, ' ') + p, 40) << pad(fixed(v[0] / 1e3, 3), 12, true)
       << pad(fixed(v[1] / 1e3, 3), 13, true) << pad(fixed(v[2] / 1e3, 3), 10, true)
       << pad(fixed(100 * (v[0] + v[1] + v[2]) / step, 1), 8, true) << "\n";
  }
  return os.str();
}

std::string Profiler::chrome_trace() const {
  const std::vector<Event>& ev = events();
  const Impl& s = *impl_;
  using nlohmann::json;
  json trace = json::array();
  auto name_track = [&](int pid, const std::string& process, const std::string& thread) {
    trace.push_back({{"ph", "M"}, {"pid", pid}, {"name", "process_name"}, {"args", {{"name", process}}}});
    trace.push_back({{"ph", "M"}, {"pid", pid}, {"tid", 0}, {"name", "thread_name"}, {"args", {{"name", thread}}}});
  };
  name_track(0, "minidl host", "ops, modules and ranges");
  for (const auto& [device, base] : s.devices)
    name_track(1 + device, "cuda:" + std::to_string(device), "kernels of each op (CUDA events)");
  const char* kinds[] = {"op", "rule", "module", "range"};
  for (size_t i = 0; i < ev.size(); ++i) {
    const Event& e = ev[i];
    json args = {{"pass", pass_of(ev, i, s.options.step_range)}};
    if (e.module) args["module"] = *e.module;
    if (!e.inputs.empty()) args["inputs"] = e.inputs;
    if (is_work(e)) {
      args["device"] = e.device.str();
      if (e.flops > 0) args["flops"] = e.flops;
      if (e.bytes > 0) args["bytes"] = e.bytes;
      args["memory_in_use"] = e.memory_after;
    }
    // A complete event on one track: the host's (pid 0), or the GPU's times on the device's track.
    auto complete = [&](int pid, double ts, double dur) {
      trace.push_back({{"ph", "X"},
                       {"pid", pid},
                       {"tid", 0},
                       {"name", row_name(e)},
                       {"cat", kinds[static_cast<int>(e.kind)]},
                       {"ts", ts},
                       {"dur", dur},
                       {"args", args}});
    };
    complete(0, e.start_us, host_us(e));
    if (on_gpu(e)) complete(1 + e.device.index, e.device_start_us, time_us(e));
    if (is_work(e))
      trace.push_back({{"ph", "C"},
                       {"pid", 0},
                       {"name", "memory in use (MiB)"},
                       {"ts", e.end_us},
                       {"args", {{e.device.str(), static_cast<double>(e.memory_after) / 1048576.0}}}});
  }
  const json doc = {{"traceEvents", trace},
                    {"displayTimeUnit", "ms"},
                    {"otherData", {{"producer", "minidl op profiler"}, {"steps", s.step_count}}}};
  return doc.dump();
}

}  // namespace minidl::profiler
