// Picks events out of a stopped Profiler (autograd/profiler.h), for the profiler's tests on both devices.
#pragma once

#include <string>
#include <vector>

#include "autograd/profiler.h"

namespace profile_test {

// The events of one kind and name, in the order they were recorded. forward_only leaves out the ops a
// backward rule called (matmul's rule calls matmul twice).
inline std::vector<minidl::profiler::Event> find(const minidl::profiler::Profiler& p, minidl::profiler::EventKind kind,
                                                 const std::string& name, bool forward_only = false) {
  std::vector<minidl::profiler::Event> out;
  for (const minidl::profiler::Event& e : p.events())
    if (e.kind == kind && e.name == name && !(forward_only && kind == minidl::profiler::EventKind::Op && e.backward))
      out.push_back(e);
  return out;
}

}  // namespace profile_test
