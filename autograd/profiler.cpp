// The op profiler's recording (autograd/profiler.h); the tables and the trace are in profiler_report.cpp.
//
// A Profiler owns one Impl and points this thread's t_session at it. Every scope that opens while it
// records appends a Record (profiler_impl.h: fixed size, in memory of its own) and pushes its index on
// `open`; closing pops it. Parents are taken from that stack, so events nest exactly as the scopes did.
// An op on a CUDA tensor gets two CUDA events recorded on its stream around it. They are read only at
// stop(), after one wait for the device: reading them per op would make every op wait for the GPU and
// turn the profile into one of a synchronous program.
#include "autograd/profiler.h"

#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>

#include "autograd/error.h"
#include "autograd/profiler_impl.h"
#include "autograd/scope.h"
#include "autograd/storage.h"
#include "cuda/runtime.h"

namespace minidl::profiler {

namespace {

thread_local Profiler::Impl* t_session = nullptr;

double now_us(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

int64_t memory_in_use(Device d) {
  if (d.is_cpu()) return host_memory_stats().in_use;
  return static_cast<int64_t>(cuda::memory_stats(d.index).in_use);
}

// "float32[64,16,512] float32[128,512]" into a record's array, "..." where it runs out; no heap.
void describe_inputs(const Tensor* const* inputs, size_t count, char* out, size_t cap) {
  size_t at = 0;
  auto put = [&](const char* text) {
    const size_t n = std::strlen(text);
    if (at + n + 4 >= cap) {  // keep room for "..." and the terminating zero
      std::memcpy(out + at, "...", 4);
      return false;
    }
    std::memcpy(out + at, text, n + 1);
    at += n;
    return true;
  };
  for (size_t i = 0; i < count; ++i) {
    if (i > 0 && !put(" ")) return;
    const Tensor& t = *inputs[i];
    if (!t.defined()) {
      if (!put("-")) return;
      continue;
    }
    if (!put(dtype_name(t.dtype())) || !put("[")) return;
    for (int64_t d = 0; d < t.dim(); ++d) {
      char size[24];
      std::snprintf(size, sizeof size, d ? ",%lld" : "%lld", static_cast<long long>(t.size(d)));
      if (!put(size)) return;
    }
    if (!put("]")) return;
  }
}

}  // namespace

// ---- recording ------------------------------------------------------------------------------------
Profiler::Profiler(Options options) : impl_(std::make_unique<Impl>()) {
  MINIDL_CHECK(t_session == nullptr,
               "Profiler: this thread is already recording into another Profiler; stop that "
               "one first (a thread has one Profiler at a time)");
  impl_->options = std::move(options);
  impl_->t0 = std::chrono::steady_clock::now();
  reset_host_peak_memory();
  t_session = impl_.get();
  impl_->owner = &t_session;
  instrument::acquire(instrument::kProfiling);
}

Profiler::~Profiler() {
  try {
    stop();
  } catch (...) {  // a destructor must not throw; the device's error surfaces at its next use
  }
}

bool Profiler::running() const { return !impl_->stopped; }

void Profiler::stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  MINIDL_CHECK(t_session == &s, "Profiler::stop: call it on the thread that made the Profiler");
  detail::backward_module(nullptr);
  while (!s.open.empty()) detail::end(s.open.back());
  s.stop_us = now_us(s.t0);
  t_session = nullptr;
  s.stopped = true;
  instrument::release(instrument::kProfiling);
  s.host_peak = host_memory_stats().peak_in_use;
  // The GPU's side: wait once, then read every pair of events against the device's base event.
  for (auto& [device, base] : s.devices) {
    cuda::synchronize(device);
    base.peak = static_cast<int64_t>(cuda::memory_stats(device).peak_in_use);
  }
  s.finish_events();
  s.summarise();
}

void Profiler::Impl::finish_events() {
  events.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    Record& r = records[i];
    Event e;
    e.kind = r.kind;
    e.name = r.kind == EventKind::Module && r.module ? *r.module : r.name;
    e.module = r.module;
    e.inputs = r.inputs;
    e.device = r.device;
    e.parent = r.parent;
    e.backward = r.backward;
    e.start_us = r.start_us;
    e.end_us = r.end_us;
    e.flops = r.flops;
    e.bytes = r.bytes;
    e.memory_before = r.memory_before;
    e.memory_after = r.memory_after;
    if (r.cuda_start) {
      const DeviceBase& base = devices.at(r.device.index);
      e.device_start_us = base.host_us + 1e3 * cuda::elapsed_ms(base.event, r.cuda_start);
      e.device_end_us = base.host_us + 1e3 * cuda::elapsed_ms(base.event, r.cuda_end);
    }
    events.push_back(std::move(e));
  }
}

Profiler::Impl::~Impl() {
  for (size_t i = 0; i < records.size(); ++i)
    if (records[i].cuda_start) {
      const int device = records[i].device.index;
      cuda::destroy_event(records[i].cuda_start, device);
      cuda::destroy_event(records[i].cuda_end, device);
    }
  for (auto& [device, base] : devices) cuda::destroy_event(base.event, device);
  if (owner && *owner == this) *owner = nullptr;
}

RecordLog::~RecordLog() {
  for (Record* c : chunks_) munmap(c, kPerChunk * sizeof(Record));
}

Record& RecordLog::append() {
  if (size_ == chunks_.size() * kPerChunk) {
    void* p = mmap(nullptr, kPerChunk * sizeof(Record), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MINIDL_CHECK(p != MAP_FAILED, "Profiler: out of memory for its records (", size_, " so far)");
    chunks_.push_back(static_cast<Record*>(p));  // zero-filled by the kernel
  }
  return *new (&(*this)[size_++]) Record{};  // every field zero or empty, the device the CPU
}

void Profiler::Impl::summarise() {
  double total = 0;
  int count = 0;
  for (const Event& e : events)
    if (e.kind == EventKind::Range && e.name == options.step_range && e.parent < 0) {
      total += e.end_us - e.start_us;
      ++count;
    }
  step_count = count > 0 ? count : 1;
  step_time_us = count > 0 ? total / count : stop_us;
}

const std::vector<Event>& Profiler::events() const {
  MINIDL_CHECK(impl_->stopped, "Profiler::events: stop() the profiler before reading it");
  return impl_->events;
}

int Profiler::steps() const {
  MINIDL_CHECK(impl_->stopped, "Profiler::steps: stop() the profiler before reading it");
  return impl_->step_count;
}

double Profiler::step_us() const {
  MINIDL_CHECK(impl_->stopped, "Profiler::step_us: stop() the profiler before reading it");
  return impl_->step_time_us;
}

Range::Range(const char* name) {
  if (instrument::g_flags.load(std::memory_order_relaxed) & instrument::kProfiling)
    event_ = detail::begin(EventKind::Range, name, current_module(), nullptr, 0);
}

Range::~Range() {
  if (event_ >= 0) detail::end(event_);
}

namespace detail {

int begin(EventKind kind, const char* name, const std::string* module, const Tensor* const* inputs, size_t count,
          const Device* device) {
  Profiler::Impl* s = t_session;
  if (!s) return -1;
  const int parent = s->open.empty() ? -1 : s->open.back();
  Device where = Device::cpu();
  bool found = false;
  for (size_t i = 0; i < count && !found; ++i)
    if (inputs[i]->defined()) {
      where = inputs[i]->device();
      found = true;
    }
  if (!found && device) where = *device;
  if (!found && !device && parent >= 0) where = s->records[parent].device;
  if (kind == EventKind::Module || kind == EventKind::Range) where = Device::cpu();
  void *cuda_start = nullptr, *cuda_end = nullptr;
  if (where.is_cuda() && (kind == EventKind::Op || kind == EventKind::Rule)) {
    const int d = where.index;
    if (!s->devices.count(d)) {
      // The base: the queue is drained, so this event runs now and GPU times line up with host times.
      cuda::synchronize(d);
      cuda::reset_peak_memory(d);
      Profiler::Impl::DeviceBase base;
      base.device = d;
      base.event = cuda::create_event(d);
      base.host_us = now_us(s->t0);
      cuda::record_event(base.event, d);
      s->devices.emplace(d, base);
    }
    cuda_start = cuda::create_event(d);
    cuda_end = cuda::create_event(d);
  }
  const int index = static_cast<int>(s->records.size());
  Record& r = s->records.append();
  r.kind = kind;
  r.device = where;
  r.module = module;
  r.parent = parent;
  r.backward = kind == EventKind::Rule || s->backward_depth > 0 || (parent >= 0 && s->records[parent].backward);
  r.cuda_start = cuda_start;
  r.cuda_end = cuda_end;
  std::snprintf(r.name, sizeof r.name, "%s", name);
  describe_inputs(inputs, count, r.inputs, sizeof r.inputs);
  r.memory_before = memory_in_use(where);
  s->open.push_back(index);
  r.start_us = now_us(s->t0);
  if (cuda_start) cuda::record_event(cuda_start, where.index);
  return index;
}

void end(int index) {
  Profiler::Impl* s = t_session;
  if (!s) return;
  // Scopes close in the reverse order of opening, so this is the last open record; searching anyway
  // ignores an index that is not open here (a scope that outlived the Profiler it began in).
  size_t k = s->open.size();
  while (k > 0 && s->open[k - 1] != index) --k;
  if (k == 0) return;
  s->open.erase(s->open.begin() + static_cast<std::ptrdiff_t>(k - 1));
  Record& r = s->records[index];
  if (r.cuda_end) cuda::record_event(r.cuda_end, r.device.index);
  r.end_us = now_us(s->t0);
  r.memory_after = memory_in_use(r.device);
}

void add_work(double flops, double bytes) {
  Profiler::Impl* s = t_session;
  if (!s) return;
  for (size_t k = s->open.size(); k-- > 0;) {
    Record& r = s->records[s->open[k]];
    if (r.kind == EventKind::Op || r.kind == EventKind::Rule) {
      r.flops += flops;
      r.bytes += bytes;
      return;
    }
  }
}

void backward_module(const std::string* module) {
  Profiler::Impl* s = t_session;
  if (!s) return;
  // The target's ancestors, outermost first: "a", "a.b", "a.b.c".
  std::vector<std::string> prefixes;
  if (module)
    for (size_t dot = 0;; ++dot) {
      dot = module->find('.', dot);
      prefixes.push_back(module->substr(0, dot));
      if (dot == std::string::npos) break;
    }
  size_t keep = 0;
  while (keep < s->spans.size() && keep < prefixes.size() && s->spans[keep].first == prefixes[keep]) ++keep;
  while (s->spans.size() > keep) {
    end(s->spans.back().second);
    s->spans.pop_back();
  }
  for (size_t k = keep; k < prefixes.size(); ++k) {
    const std::string* path = intern_path(prefixes[k]);
    const int index = begin(EventKind::Module, path->c_str(), path, nullptr, 0);
    s->records[index].backward = true;
    s->spans.emplace_back(prefixes[k], index);
  }
}

BackwardPass::BackwardPass() {
  if (!(instrument::g_flags.load(std::memory_order_relaxed) & instrument::kProfiling) || !t_session) return;
  on_ = true;
  ++t_session->backward_depth;
}

BackwardPass::~BackwardPass() {
  if (!on_ || !t_session) return;
  backward_module(nullptr);
  --t_session->backward_depth;
}

}  // namespace detail

}  // namespace minidl::profiler
