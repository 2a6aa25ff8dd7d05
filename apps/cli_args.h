// Numbers on the apps' command lines, read strictly: the whole argument must be an integer in range, and
// anything else is a std::invalid_argument naming the option (which the apps report with their usage).
// std::stoi alone would take "8x" as 8 and report "abc" as "stoi".
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace minidl::apps {

inline int64_t parse_integer(const std::string& option, const std::string& text,
                             int64_t lo = std::numeric_limits<int64_t>::min(),
                             int64_t hi = std::numeric_limits<int64_t>::max()) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE || v < lo || v > hi) {
    std::string range;
    if (hi == std::numeric_limits<int64_t>::max())
      range = lo == std::numeric_limits<int64_t>::min() ? "" : " of at least " + std::to_string(lo);
    else
      range = " from " + std::to_string(lo) + " to " + std::to_string(hi);
    throw std::invalid_argument(option + " expects an integer" + range + ", got '" + text + "'");
  }
  return v;
}

// A comma-separated list of positive integers ("512,1024,4096").
inline std::vector<int64_t> parse_sizes(const std::string& option, const std::string& list) {
  std::vector<int64_t> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(parse_integer(option, item, 1));
  if (out.empty()) throw std::invalid_argument(option + " expects a list of sizes, got '" + list + "'");
  return out;
}

}  // namespace minidl::apps
