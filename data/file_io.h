// Whole-file reads and atomic writes, shared by the decoders, the writers and the loader's cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace minidl::data {

// The file's bytes. A missing path, a folder or a read failure is a minidl::Error "<who>: <path>: ...".
std::vector<uint8_t> read_file(const std::string& path, const char* who);

// Writes the parts, one after another, to a temporary file beside `path` and renames it over `path`, so
// a reader sees either the old file or the whole new one, never half of it. A missing folder, a failed
// write (disk full) or rename is a minidl::Error "<who>: <path>: ..." and leaves no temporary file.
void write_file_atomically(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts,
                           const char* who);
void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes, const char* who);

}  // namespace minidl::data
