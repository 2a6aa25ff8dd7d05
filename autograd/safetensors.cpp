// safetensors reader and writer (format in safetensors.h).
//
// The reader treats the file as untrusted input: every length, offset and shape is checked against the
// file before a byte is copied, so a truncated download or a corrupted checkpoint is a minidl::Error that
// names the file, never a crash or a tensor holding garbage.
#include "autograd/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "autograd/error.h"
#include "autograd/grad_mode.h"
#include "data/file_io.h"

namespace minidl {
namespace {

// Tensor bytes are copied straight between memory and the file, which stores little-endian values.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

// ordered_json keeps the header's key order: it breaks ties between empty tensors that share an offset, so
// a file written here loads back in the order it was written.
using Json = nlohmann::ordered_json;

constexpr const char* kMetadataKey = "__metadata__";
constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();

// The dtypes a file may hold, with their element size and what they become here.
struct FileDType {
  const char* name;
  size_t size;
  DType loaded_as;
};
constexpr FileDType kFileDTypes[] = {
    {"F32", 4, DType::Float32}, {"F64", 8, DType::Float64}, {"I64", 8, DType::Int64},
    {"BOOL", 1, DType::Bool},   {"F16", 2, DType::Float32}, {"BF16", 2, DType::Float32},
};

const char* file_dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

// IEEE half to float, exactly (every half is a float): subnormals renormalised, inf and NaN kept.
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal: value mant * 2^-24. Shift the leading 1 up to the implicit position.
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

// bfloat16 is the top half of a float32.
float bf16_to_float(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// A non-negative JSON integer that fits int64, or an error naming what it was meant to be.
int64_t json_size(const Json& v, const std::string& path, const std::string& name, const char* what) {
  MINIDL_CHECK(v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(kMaxInt64),
               "load_safetensors: ", path, ": tensor '", name, "': ", what, " must be a non-negative integer, got ",
               v.dump());
  return static_cast<int64_t>(v.get<uint64_t>());
}

struct Entry {
  std::string name;
  const FileDType* dtype;
  Shape shape;
  int64_t begin, end;  // within the data section
};

Entry parse_entry(const std::string& path, const std::string& name, const Json& info, int64_t data_size) {
  const std::string where = "load_safetensors: " + path + ": tensor '" + name + "'";
  MINIDL_CHECK(info.is_object(), where, ": its header entry must be an object, got ", info.dump());
  for (const auto& [key, value] : info.items())
    MINIDL_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", where, ": unexpected field '", key,
                 "' (an entry has dtype, shape and data_offsets)");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    MINIDL_CHECK(info.contains(key), where, ": the entry has no '", key, "'");

  Entry e;
  e.name = name;
  const Json& dt = info["dtype"];
  MINIDL_CHECK(dt.is_string(), where, ": dtype must be a string, got ", dt.dump());
  const std::string dname = dt.get<std::string>();
  e.dtype = nullptr;
  for (const FileDType& f : kFileDTypes)
    if (dname == f.name) e.dtype = &f;
  MINIDL_CHECK(e.dtype != nullptr, where, ": unsupported dtype '", dname,
               "' (minidl reads F32, F64, I64, BOOL, F16 and BF16)");

  const Json& sh = info["shape"];
  MINIDL_CHECK(sh.is_array(), where, ": shape must be an array, got ", sh.dump());
  int64_t bytes = static_cast<int64_t>(e.dtype->size);
  for (const Json& s : sh) {
    e.shape.push_back(json_size(s, path, name, "every size in shape"));
    MINIDL_CHECK(e.shape.back() == 0 || bytes <= kMaxInt64 / e.shape.back(), where, ": shape ", sh.dump(),
                 " holds more bytes than any file can");
    bytes *= e.shape.back();
  }

  const Json& off = info["data_offsets"];
  MINIDL_CHECK(off.is_array() && off.size() == 2, where, ": data_offsets must be [begin, end], got ", off.dump());
  e.begin = json_size(off[0], path, name, "data_offsets[0]");
  e.end = json_size(off[1], path, name, "data_offsets[1]");
  MINIDL_CHECK(e.begin <= e.end, where, ": data_offsets ", off.dump(), " end before they begin");
  MINIDL_CHECK(e.end <= data_size, where, ": data_offsets ", off.dump(), " reach past the end of the data section (",
               data_size, " bytes; the file may be truncated)");
  MINIDL_CHECK(e.end - e.begin == bytes, where, ": data_offsets ", off.dump(), " span ", e.end - e.begin,
               " bytes, but ", dname, " ", shape_str(e.shape), " needs ", bytes);
  return e;
}

// The tensor of one entry, built from its bytes (already bounds-checked).
Tensor decode(const std::string& path, const Entry& e, const uint8_t* bytes) {
  Tensor t = Tensor::empty(e.shape, e.dtype->loaded_as);
  const int64_t n = t.numel();
  const std::string dname = e.dtype->name;
  if (dname == "F16" || dname == "BF16") {
    float* out = t.data<float>();
    const bool half = dname == "F16";
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      out[i] = half ? half_to_float(h) : bf16_to_float(h);
    }
  } else if (n > 0) {
    if (dname == "BOOL")  // any other byte would be an invalid bool, which C++ may not even read
      for (int64_t i = 0; i < n; ++i)
        MINIDL_CHECK(bytes[i] <= 1, "load_safetensors: ", path, ": tensor '", e.name, "': BOOL element ", i,
                     " is the byte ", static_cast<int>(bytes[i]), ", not 0 or 1");
    std::memcpy(t.raw_data(), bytes, static_cast<size_t>(e.end - e.begin));
  }
  return t;
}

}  // namespace

void save_safetensors(const std::string& path, const TensorList& tensors,
                      const std::map<std::string, std::string>& metadata) {
  NoGradGuard no_grad;
  // Checked before anything is written, so a bad call leaves an existing file as it was.
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    MINIDL_CHECK(!name.empty(), "save_safetensors: ", path, ": a tensor has an empty name");
    MINIDL_CHECK(name != kMetadataKey, "save_safetensors: ", path, ": '", name,
                 "' is reserved for the metadata and cannot name a tensor");
    MINIDL_CHECK(seen.insert(name).second, "save_safetensors: ", path, ": the name '", name,
                 "' appears twice; names must be distinct");
    MINIDL_CHECK(t.defined(), "save_safetensors: ", path, ": tensor '", name, "' is undefined");
  }

  // The bytes of each tensor, contiguous and on the CPU; kept alive until the file is written.
  std::vector<Tensor> host;
  host.reserve(tensors.size());
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[kMetadataKey] = meta;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    host.push_back(t.detach().to(Device::cpu()).contiguous());
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    header[name] = {
        {"dtype", file_dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata string that is not valid UTF-8
    fail("save_safetensors: ", path, ": the header cannot be written as JSON (", e.what(),
         "); names and metadata must be UTF-8");
  }
  // Padding with spaces to a multiple of 8 keeps the data 8-byte aligned in a memory-mapped file, as the
  // reference writer does; JSON ignores trailing whitespace.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t length[8];
  const uint64_t n = text.size();
  std::memcpy(length, &n, 8);

  std::vector<std::pair<const void*, size_t>> parts{{length, 8}, {text.data(), text.size()}};
  for (const Tensor& h : host)
    if (h.numel() > 0) parts.emplace_back(h.raw_data(), static_cast<size_t>(h.numel()) * dtype_size(h.dtype()));
  data::write_file_atomically(path, parts, "save_safetensors");
}

TensorList load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  const std::vector<uint8_t> file = data::read_file(path, "load_safetensors");
  const std::string who = "load_safetensors: " + path;
  MINIDL_CHECK(file.size() >= 8, who, ": the file has ", file.size(),
               " bytes, too few for the 8-byte header length: not a safetensors file, or truncated");
  uint64_t header_len;
  std::memcpy(&header_len, file.data(), 8);
  MINIDL_CHECK(header_len <= file.size() - 8, who, ": the header length says ", header_len, " bytes, but only ",
               file.size() - 8, " follow it: not a safetensors file, or truncated");
  const uint8_t* header_begin = file.data() + 8;
  const uint8_t* data = header_begin + header_len;
  const int64_t data_size = static_cast<int64_t>(file.size() - 8 - header_len);

  Json header;
  try {
    header = Json::parse(header_begin, data);
  } catch (const nlohmann::json::exception& e) {
    fail(who, ": the header (", header_len, " bytes) is not valid JSON: ", e.what());
  }
  MINIDL_CHECK(header.is_object(), who, ": the header must be a JSON object, not a JSON ", header.type_name());

  std::vector<Entry> entries;
  std::map<std::string, std::string> meta;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      MINIDL_CHECK(value.is_object(), who, ": __metadata__ must be an object of strings, got ", value.dump());
      for (const auto& [k, v] : value.items()) {
        MINIDL_CHECK(v.is_string(), who, ": __metadata__ entry '", k, "' must be a string, got ", v.dump());
        meta[k] = v.get<std::string>();
      }
    } else {
      entries.push_back(parse_entry(path, key, value, data_size));
    }
  }

  // File order; stable, so tensors sharing an offset (empty ones) keep the header's order. Unlike the
  // reference reader, gaps between tensors and bytes after the last one are tolerated: nothing reads them.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  const Entry* last = nullptr;  // the non-empty entry reaching furthest so far
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;  // an empty range overlaps nothing
    MINIDL_CHECK(last == nullptr || e.begin >= last->end, who, ": tensors '", last ? last->name : "", "' [",
                 last ? last->begin : 0, ", ", last ? last->end : 0, ") and '", e.name, "' [", e.begin, ", ", e.end,
                 ") overlap in the data section");
    last = &e;
  }

  TensorList out;
  out.reserve(entries.size());
  for (const Entry& e : entries) out.emplace_back(e.name, decode(path, e, data + e.begin));
  if (metadata != nullptr) *metadata = std::move(meta);
  return out;
}

}  // namespace minidl
