// What a Profiler holds while it records (profiler.cpp) and reports (profiler_report.cpp). Private to
// those two files.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/profiler.h"

namespace minidl::profiler {

// One event as it is recorded: fixed size, its text in arrays of its own, so that recording allocates
// nothing from the heap the tensors live in (see RecordLog). Turned into an Event at stop().
struct Record {
  EventKind kind;
  bool backward;
  Device device;
  const std::string* module;
  int parent;
  double start_us, end_us;
  double flops, bytes;
  int64_t memory_before, memory_after;
  void* cuda_start;  // cudaEvent_t pair around a CUDA op, on its stream; null otherwise
  void* cuda_end;
  char name[80];
  char inputs[176];
};

// The records, in chunks of memory mapped from the operating system rather than taken from malloc.
// Why: a training step frees and reallocates the same activation-sized blocks, which glibc hands back
// from its heap (autograd/storage.cpp keeps them there). A growing vector of events, or a string per
// event, interleaved with those blocks, fragments the heap, and the step then takes fresh pages that the
// kernel must zero (measured in docs/perf.md).
class RecordLog {
 public:
  RecordLog() = default;
  ~RecordLog();
  RecordLog(const RecordLog&) = delete;
  RecordLog& operator=(const RecordLog&) = delete;

  Record& append();  // a zeroed record at the end
  Record& operator[](size_t i) { return chunks_[i / kPerChunk][i % kPerChunk]; }
  const Record& operator[](size_t i) const { return chunks_[i / kPerChunk][i % kPerChunk]; }
  size_t size() const { return size_; }

 private:
  static constexpr size_t kPerChunk = 4096;
  std::vector<Record*> chunks_;  // one pointer per 4096 records: grows rarely and stays small
  size_t size_ = 0;
};

struct Profiler::Impl {
  ~Impl();
  void finish_events();  // records -> events, with the GPU's times (stop)
  void summarise();      // step_count and step_time_us (stop)

  struct DeviceBase {
    int device = 0;
    void* event = nullptr;  // recorded on an idle device at host time host_us
    double host_us = 0;
    int64_t peak = 0;  // the allocator's peak at stop
  };

  Options options;
  std::chrono::steady_clock::time_point t0;
  RecordLog records;
  std::vector<Event> events;                       // filled at stop
  std::vector<int> open;                           // indices of the open records, outermost first
  std::vector<std::pair<std::string, int>> spans;  // backward: open module spans (path, record)
  int backward_depth = 0;                          // run_backward calls under way
  std::map<int, DeviceBase> devices;               // the CUDA devices ops ran on
  bool stopped = false;
  double stop_us = 0;
  int64_t host_peak = 0;
  int step_count = 1;
  double step_time_us = 0;
  Impl** owner = nullptr;  // the thread's t_session, cleared if this dies while recording
};

}  // namespace minidl::profiler
