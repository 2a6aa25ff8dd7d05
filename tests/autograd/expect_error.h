// Error reporting: every failure a user can cause must be a minidl::Error whose message names the op and
// the shapes / dtypes / devices involved; no user input may reach an assert or a crash.
//
// Each call under test runs in a forked child process (on POSIX), so a crash, an abort or a hang is
// reported as a failure of that one check instead of taking the whole test program down. The child sends
// back what happened: a minidl::Error and its message, another exception, or no exception at all.
// MINIDL_ERRORS_NO_FORK=1 runs the calls in-process instead (for a debugger); MINIDL_ERRORS_VERBOSE=1
// prints every message checked.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#include <unistd.h>
#define MINIDL_ERRORS_CAN_FORK 1
#endif
#if defined(__GNUG__)
#include <cxxabi.h>
#endif

#include "autograd/minidl.h"

// Everything here is inline (or a template), so several test files can include it; they bring it in with
// `using namespace errors_test;`.
namespace errors_test {

using namespace minidl;

// ---- running a call and classifying the outcome ----------------------------------------------------

enum class Kind : char { MinidlError = 'E', OtherException = 'X', NoThrow = 'N', Crash = 'C' };

struct Outcome {
  Kind kind = Kind::Crash;
  std::string text;  // the message, the exception's type and message, or how the child died
};

inline std::string demangle(const char* name) {
#if defined(__GNUG__)
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status == 0 && d) {
    std::string s(d);
    std::free(d);
    return s;
  }
#endif
  return name;
}

inline Outcome run_here(const std::function<void()>& f) {
  try {
    f();
  } catch (const minidl::Error& e) {
    return {Kind::MinidlError, e.what()};
  } catch (const std::exception& e) {
    return {Kind::OtherException, demangle(typeid(e).name()) + ": " + e.what()};
  } catch (...) {
    return {Kind::OtherException, "an exception that is not a std::exception"};
  }
  return {Kind::NoThrow, ""};
}

// Runs f in a child process when possible; a crash there becomes Kind::Crash with the signal's name.
inline Outcome run_guarded(const std::function<void()>& f) {
#ifdef MINIDL_ERRORS_CAN_FORK
  int fds[2];
  if (std::getenv("MINIDL_ERRORS_NO_FORK") == nullptr && pipe(fds) == 0) {
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      alarm(60);  // a hang becomes SIGALRM, reported as a crash
      const Outcome o = run_here(f);
      const std::string msg = static_cast<char>(o.kind) + o.text;
      size_t done = 0;
      while (done < msg.size()) {
        const ssize_t n = write(fds[1], msg.data() + done, msg.size() - done);
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      close(fds[1]);
      _exit(0);
    }
    if (pid > 0) {
      close(fds[1]);
      std::string buf;
      char chunk[4096];
      for (;;) {
        const ssize_t n = read(fds[0], chunk, sizeof chunk);
        if (n <= 0) break;
        buf.append(chunk, static_cast<size_t>(n));
      }
      close(fds[0]);
      int status = 0;
      waitpid(pid, &status, 0);
      if (WIFSIGNALED(status))
        return {Kind::Crash, "CRASHED: killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
                                 strsignal(WTERMSIG(status)) + ")"};
      if (buf.empty() || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return {Kind::Crash, "CRASHED: the call ended the process (exit status " +
                                 std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ") without returning"};
      return {static_cast<Kind>(buf[0]), buf.substr(1)};
    }
    close(fds[0]);
    close(fds[1]);
  }
#endif
  return run_here(f);
}

inline std::string describe(const Outcome& o) {
  switch (o.kind) {
    case Kind::MinidlError: return "minidl::Error: \"" + o.text + "\"";
    case Kind::OtherException: return "a different exception type (" + o.text + ")";
    case Kind::NoThrow: return "no exception at all";
    case Kind::Crash: return o.text;
  }
  return "?";
}

// Requires f to throw minidl::Error (not another exception type, not a crash, not nothing) whose message
// contains every fragment. Returns the outcome, for callers that want to look further.
template <class F>
Outcome expect_error(F&& f, const std::vector<std::string>& fragments) {
  const Outcome o = run_guarded(std::function<void()>(std::forward<F>(f)));
  if (std::getenv("MINIDL_ERRORS_VERBOSE") != nullptr) std::printf("    [message] %s\n", describe(o).c_str());
  if (o.kind != Kind::MinidlError) {
    ADD_FAILURE() << "expected a minidl::Error, got " << describe(o);
    return o;
  }
  for (const std::string& frag : fragments)
    EXPECT_NE(o.text.find(frag), std::string::npos)
        << "the message lacks \"" << frag << "\"\n  actual message: \"" << o.text << "\"";
  return o;
}

// The call may succeed or throw minidl::Error, but must not crash or throw anything else.
template <class F>
void expect_no_crash(F&& f) {
  const Outcome o = run_guarded(std::function<void()>(std::forward<F>(f)));
  EXPECT_TRUE(o.kind == Kind::NoThrow || o.kind == Kind::MinidlError)
      << "expected success or a minidl::Error, got " << describe(o);
}

// ---- small builders ---------------------------------------------------------------------------------
inline Tensor f32(const Shape& s) { return ones(s); }
inline Tensor f64(const Shape& s) { return ones(s, {.dtype = kFloat64}); }
inline Tensor i64(const Shape& s) { return zeros(s, {.dtype = kInt64}); }
inline Tensor b8(const Shape& s, bool v = true) { return full(s, v ? 1.0 : 0.0, {.dtype = kBool}); }
inline Tensor index_of(const std::vector<int64_t>& v, const Shape& s = {}) {
  return from_vector(v, s, {.dtype = kInt64});
}
inline Tensor leaf(const Shape& s, DType dt = kFloat32) {
  Tensor t = ones(s, {.dtype = dt});
  t.requires_grad_();
  return t;
}

using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;
struct NamedBinary {
  const char* name;  // the op name the message must start with
  Binary fn;
};

inline std::vector<NamedBinary> arithmetic_ops() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }},
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }},
  };
}

inline std::vector<NamedBinary> comparison_ops() {
  return {
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); }},
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }},
  };
}

inline std::string op(const char* name) { return std::string(name) + ":"; }

}  // namespace errors_test

// EXPECT_ERROR(expression, "fragment", ...): the expression must throw minidl::Error containing each fragment.
#define EXPECT_ERROR(expr, ...)                                                                \
  do {                                                                                         \
    SCOPED_TRACE("call: " #expr);                                                              \
    ::errors_test::expect_error([&] { (void)(expr); }, std::vector<std::string>{__VA_ARGS__}); \
  } while (0)
