// Helpers shared by the data tests (tests/data/): TempDir, a fresh folder of its own under the system's
// temp folder that is removed again at the end of the test; write_file, which writes bytes to a file
// (making its folders); and expect_error, which requires a call to throw a minidl::Error whose message
// holds given fragments. Everything here is inline, so several test files can include it; they bring it
// in with `using namespace data_test;`.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <system_error>

#include "autograd/error.h"

namespace data_test {

// A folder of its own under the system's temp folder, created here and removed with everything in it
// when the TempDir goes away. The name joins the process id, a per-process counter and a random number,
// so tests running side by side (ctest -j, several test programs) never share a folder.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("minidl_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
             std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` inside the folder, as a string (for APIs that take one).
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Writes `bytes` to `path`, creating the folders on the way; a failed write fails the test.
inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

// Runs fn and expects a minidl::Error whose message holds every fragment; no exception, or one of another
// type, is a failure.
inline void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    ADD_FAILURE() << "no minidl::Error was thrown";
  } catch (const minidl::Error& e) {
    const std::string what = e.what();
    for (const std::string& f : fragments)
      EXPECT_NE(what.find(f), std::string::npos) << "'" << what << "' lacks '" << f << "'";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a different exception: " << e.what();
  }
}

}  // namespace data_test
