// minidl::Error and the checks every op front end uses.
//
// Every failure a user can cause (a wrong shape, a dtype mismatch, a tensor on the wrong device, a second
// backward through a freed graph) becomes a minidl::Error whose message starts with the op's name and
// carries the shapes, dtypes and devices involved. User input must never reach an assert or a crash.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace minidl {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}
}  // namespace detail

// Throws minidl::Error with the parts streamed one after another:
//   fail("matmul: ", shape_str(a), " @ ", shape_str(b), ": inner dimensions differ");
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(detail::concat(std::forward<Parts>(parts)...));
}

}  // namespace minidl

// MINIDL_CHECK(cond, parts...): throws minidl::Error built from parts when cond is false. The parts are
// only evaluated on failure, so building a message costs nothing on the normal path.
#define MINIDL_CHECK(cond, ...)               \
  do {                                        \
    if (!(cond)) ::minidl::fail(__VA_ARGS__); \
  } while (0)
