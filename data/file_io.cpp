#include "data/file_io.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "autograd/error.h"

namespace minidl::data {

namespace fs = std::filesystem;

std::vector<uint8_t> read_file(const std::string& path, const char* who) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  MINIDL_CHECK(fs::exists(status), who, ": ", path, ": no such file");
  MINIDL_CHECK(!fs::is_directory(status), who, ": ", path, ": is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  MINIDL_CHECK(in.good(), who, ": ", path, ": cannot open: ", std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MINIDL_CHECK(!in.bad(), who, ": ", path, ": read error: ", std::strerror(errno));
  return bytes;
}

void write_file_atomically(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts,
                           const char* who) {
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  MINIDL_CHECK(parent.empty() || fs::is_directory(parent, ec), who, ": ", path, ": folder ", parent.string(),
               " does not exist");
  // Unique per process and call: two threads writing the same file must not share a temporary.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    MINIDL_CHECK(out.good(), who, ": ", path, ": cannot create ", tmp, ": ", std::strerror(errno));
    for (const auto& [p, n] : parts) out.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    out.flush();
    if (!out.good()) {
      out.close();
      fs::remove(tmp, ec);
      fail(who, ": ", path, ": writing ", tmp, " failed (disk full?)");
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    fail(who, ": ", path, ": cannot rename ", tmp, " into place: ", ec.message());
  }
}

void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes, const char* who) {
  write_file_atomically(path, {{bytes.data(), bytes.size()}}, who);
}

}  // namespace minidl::data
