// safetensors: round trips of every saved dtype and of awkward shapes and strides, metadata, the exact
// byte layout, a file written by PyTorch's `safetensors` package (tools/safetensors_fixture.py), and a
// minidl::Error naming the file for every malformed input, including seeded random bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "autograd/minidl.h"
#include "autograd/safetensors.h"
#include "data/file_io.h"
#include "tests/autograd/expect_error.h"
#include "tests/data/data_test_helpers.h"

using namespace minidl;

namespace {

std::string u64le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A file made of a length prefix, the given header text and data bytes.
std::string file_of(const std::string& header, const std::string& data = "") {
  return u64le(header.size()) + header + data;
}

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.begin(), s.size());
  return s;
}

// Bit patterns, so NaN and -0.0 compare exactly.
template <class T>
std::vector<uint64_t> bits(const Tensor& t) {
  std::vector<uint64_t> out;
  for (T v : t.values<T>()) {
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof v);
    out.push_back(b);
  }
  return out;
}

void expect_same(const Tensor& got, const Tensor& want, const std::string& name) {
  SCOPED_TRACE(name);
  EXPECT_EQ(got.shape(), want.shape());
  ASSERT_EQ(got.dtype(), want.dtype());
  EXPECT_TRUE(got.device().is_cpu());
  switch (want.dtype()) {
    case DType::Float32: EXPECT_EQ(bits<float>(got), bits<float>(want)); break;
    case DType::Float64: EXPECT_EQ(bits<double>(got), bits<double>(want)); break;
    case DType::Int64: EXPECT_EQ(got.values<int64_t>(), want.values<int64_t>()); break;
    case DType::Bool: EXPECT_EQ(got.values<bool>(), want.values<bool>()); break;
  }
}

std::vector<std::string> names(const TensorList& list) {
  std::vector<std::string> out;
  for (const auto& [n, t] : list) out.push_back(n);
  return out;
}

std::string fixture(const std::string& name) {
  return (std::filesystem::path(__FILE__).parent_path() / "fixtures" / name).string();
}

}  // namespace

TEST(Safetensors, RoundTripOfEveryDTypeAndShape) {
  data_test::TempDir dir;
  const std::string path = dir.file("all.safetensors");
  const float inf = std::numeric_limits<float>::infinity();
  const TensorList saved = {
      {"f32", from_vector(std::vector<float>{1.5f, -0.0f, inf, -inf, std::nanf(""), 1e-40f}, {2, 3})},
      {"f64", from_vector({1.0 / 3.0, -2.5, 1e300, 5e-324}, {2, 1, 2, 1}, {.dtype = kFloat64})},
      {"i64", from_vector(std::vector<int64_t>{std::numeric_limits<int64_t>::min(), -1, 0, 1LL << 40,
                                               std::numeric_limits<int64_t>::max()},
                          {5}, {.dtype = kInt64})},
      {"mask", from_vector(std::vector<bool>{true, false, false, true}, {2, 2}, {.dtype = kBool})},
      {"scalar", scalar_tensor(2.25)},
      {"scalar_i64", scalar_tensor(-7, {.dtype = kInt64})},
      {"empty", zeros({0, 3})},
      {"empty_i64", zeros({4, 0}, {.dtype = kInt64})},
      {"b.weight", rand({3, 5, 7}, {.dtype = kFloat64})},
  };
  save_safetensors(path, saved);
  const TensorList loaded = load_safetensors(path);
  ASSERT_EQ(names(loaded), names(saved));  // file order is the order given, empty tensors included
  for (size_t i = 0; i < saved.size(); ++i) expect_same(loaded[i].second, saved[i].second, saved[i].first);
}

TEST(Safetensors, NonContiguousAndGraphInputsSaveTheirValues) {
  data_test::TempDir dir;
  const std::string path = dir.file("views.safetensors");
  const Tensor base = arange(24).reshape({4, 6});
  const Tensor leaf = rand({3, 4}, {.requires_grad = true});
  const TensorList saved = {
      {"transposed", base.t()},
      {"stepped", base.slice(1, 1, 6, 2)},
      {"expanded", from_vector({1, 2, 3}, {3, 1}).expand({3, 4})},
      {"offset", base.select(0, 2)},
      {"computed", leaf * 2.0},  // has a grad_fn
  };
  save_safetensors(path, saved);
  const TensorList loaded = load_safetensors(path);
  ASSERT_EQ(loaded.size(), saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    expect_same(loaded[i].second, saved[i].second.detach().contiguous(), saved[i].first);
    EXPECT_TRUE(loaded[i].second.is_contiguous());
    EXPECT_FALSE(loaded[i].second.requires_grad());
  }
}

TEST(Safetensors, MetadataRoundTrip) {
  data_test::TempDir dir;
  const std::string path = dir.file("meta.safetensors");
  const std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"empty", ""}, {"quote\"and\\slash", "line\nbreak"}, {"unicode", "caf\xc3\xa9"}};
  save_safetensors(path, {{"x", ones({2})}}, meta);
  std::map<std::string, std::string> back{{"stale", "value"}};
  load_safetensors(path, &back);
  EXPECT_EQ(back, meta);
  // A file without metadata gives an empty map, not the caller's old one.
  save_safetensors(path, {{"x", ones({2})}});
  load_safetensors(path, &back);
  EXPECT_TRUE(back.empty());
}

TEST(Safetensors, HeaderLayoutByteByByte) {
  data_test::TempDir dir;
  const std::string path = dir.file("layout.safetensors");
  save_safetensors(path, {{"a", from_vector({1, 2}, {2})}, {"b", scalar_tensor(3, {.dtype = kInt64})}}, {{"k", "v"}});
  const std::vector<uint8_t> bytes = data::read_file(path, "test");
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian, whatever the host
  EXPECT_EQ(n % 8, 0u) << "the header is padded to a multiple of 8 bytes";
  ASSERT_EQ(bytes.size(), 8 + n + 8 + 8);  // two floats, one int64
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
  const std::string json = R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"I64","shape":[],"data_offsets":[8,16]}})";
  EXPECT_EQ(header.substr(0, json.size()), json);
  EXPECT_EQ(header.substr(json.size()), std::string(n - json.size(), ' ')) << "padding is spaces";
  EXPECT_LT(n - json.size(), 8u);
  const std::string data(bytes.begin() + 8 + static_cast<long>(n), bytes.end());
  EXPECT_EQ(data, floats({1.0f, 2.0f}) + u64le(3));
}

TEST(Safetensors, ReadsAFileWrittenByPyTorch) {
  std::map<std::string, std::string> meta;
  const TensorList t = load_safetensors(fixture("torch_written.safetensors"), &meta);
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"producer", "pytorch"}, {"note", "minidl reader fixture"}}));
  // The reference writer orders the data by dtype alignment, then name; we return file order.
  ASSERT_EQ(names(t), (std::vector<std::string>{"i64", "f64", "empty", "f32", "scalar", "bf16", "bf16_third", "half",
                                                "half_special", "mask"}));
  auto get = [&t](const std::string& name) {
    for (const auto& [n, v] : t)
      if (n == name) return v;
    return Tensor();
  };
  // The formulas of tools/safetensors_fixture.py.
  std::vector<double> f32, f64, half, bf16;
  std::vector<int64_t> i64;
  std::vector<bool> mask;
  for (int i = 0; i < 6; ++i) f32.push_back(i * 0.5 - 1);
  for (int i = 0; i < 4; ++i) f64.push_back(i / 3.0);
  for (int i = 0; i < 6; ++i) i64.push_back((1LL << 40) + i - 3);
  for (int i = 0; i < 5; ++i) mask.push_back(i % 2 == 0);
  for (int i = 0; i < 8; ++i) half.push_back(i * 0.25 - 1);
  for (int i = 0; i < 6; ++i) bf16.push_back(i * 0.5 - 2);
  expect_same(get("f32"), from_vector(f32, {2, 3}), "f32");
  expect_same(get("f64"), from_vector(f64, {4}, {.dtype = kFloat64}), "f64");
  expect_same(get("i64"), from_vector(i64, {3, 2}, {.dtype = kInt64}), "i64");
  expect_same(get("mask"), from_vector(mask, {5}, {.dtype = kBool}), "mask");
  expect_same(get("scalar"), scalar_tensor(3.5), "scalar");
  expect_same(get("empty"), zeros({0, 3}), "empty");
  // Half precision arrives widened to float32, exactly.
  expect_same(get("half"), from_vector(half, {2, 4}), "half");
  expect_same(get("bf16"), from_vector(bf16, {3, 2}), "bf16");
  const float inf = std::numeric_limits<float>::infinity();
  expect_same(get("half_special"),
              from_vector(std::vector<float>{inf, -inf, 65504.0f, std::ldexp(1.0f, -24), -0.0f, 0.333251953125f}),
              "half_special");
  expect_same(get("bf16_third"), from_vector(std::vector<float>{0.333984375f}), "bf16_third");
}

TEST(Safetensors, SaveRejectsBadNamesAndKeepsTheOldFile) {
  data_test::TempDir dir;
  const std::string path = dir.file("keep.safetensors");
  save_safetensors(path, {{"x", ones({2})}});
  EXPECT_ERROR(save_safetensors(path, {{"a", ones({1})}, {"a", ones({1})}}), path, "'a' appears twice");
  EXPECT_ERROR(save_safetensors(path, {{"", ones({1})}}), path, "empty name");
  EXPECT_ERROR(save_safetensors(path, {{"__metadata__", ones({1})}}), path, "reserved");
  EXPECT_ERROR(save_safetensors(path, {{"u", Tensor()}}), path, "'u' is undefined");
  EXPECT_ERROR(save_safetensors(path, {{"bad\xff", ones({1})}}), path, "UTF-8");
  EXPECT_ERROR(save_safetensors(dir.file("no/such/folder/x.safetensors"), {{"x", ones({1})}}), "no/such/folder");
  const TensorList still = load_safetensors(path);
  ASSERT_EQ(names(still), (std::vector<std::string>{"x"}));
  // No temporary files are left beside it.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 1);
}

// Each malformed file must give a minidl::Error naming the file and the problem (run in a child process,
// so a crash is reported as a failure of that case).
TEST(Safetensors, MalformedFilesAreErrorsNamingTheFile) {
  data_test::TempDir dir;
  const std::string good_entry = R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string two_floats = floats({1, 2});
  struct Case {
    const char* name;
    std::string bytes;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"empty", "", "0 bytes"},
      {"seven", std::string(7, '\0'), "7 bytes"},
      {"too_long", u64le(1000) + "{}", "header length says 1000"},
      {"huge_length", u64le(~0ULL) + "{}", "header length"},
      {"zero_length", u64le(0), "not valid JSON"},
      {"bad_json", file_of(R"({"x": {"dtype": )"), "not valid JSON"},
      {"trailing_garbage", file_of("{} x"), "not valid JSON"},
      {"array", file_of("[1, 2]"), "must be a JSON object"},
      {"string", file_of("\"hi\""), "must be a JSON object"},
      {"entry_not_object", file_of(R"({"x": 5})"), "'x'"},
      {"unknown_dtype", file_of(R"({"x":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", "a"), "'Q7'"},
      {"int32_dtype", file_of(R"({"x":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", "abcd"),
       "unsupported dtype 'I32'"},
      {"dtype_not_string", file_of(R"({"x":{"dtype":1,"shape":[1],"data_offsets":[0,4]}})", "abcd"), "dtype"},
      {"no_shape", file_of(R"({"x":{"dtype":"F32","data_offsets":[0,4]}})", "abcd"), "no 'shape'"},
      {"extra_field", file_of(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"z":1}})", "abcd"), "'z'"},
      {"negative_size", file_of(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"),
       "non-negative integer"},
      {"float_size", file_of(R"({"x":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", "abcd"),
       "non-negative integer"},
      {"shape_overflow",
       file_of(R"({"x":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", "abcdefgh"),
       "more bytes"},
      {"shape_offset_mismatch", file_of(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", two_floats),
       "needs 12"},
      {"offsets_one_value", file_of(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8]}})", two_floats),
       "[begin, end]"},
      {"offsets_reversed", file_of(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", two_floats),
       "end before"},
      {"past_the_end", file_of(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", two_floats),
       "past the end"},
      {"truncated_data", file_of("{" + good_entry + "}", "abc"), "past the end"},
      {"overlap", file_of("{" + good_entry + R"(,"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", two_floats),
       "overlap"},
      {"metadata_not_object", file_of(R"({"__metadata__":[1]})"), "__metadata__"},
      {"metadata_not_string", file_of(R"({"__metadata__":{"k":1}})"), "'k' must be a string"},
      {"bool_byte", file_of(R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2)),
       "not 0 or 1"},
      {"bad_utf8", file_of("{\"\xff\":1}"), "not valid JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir.file(std::string(c.name) + ".safetensors");
    data_test::write_file(path, c.bytes);
    EXPECT_ERROR(load_safetensors(path), "load_safetensors", path, c.fragment);
  }
  EXPECT_ERROR(load_safetensors(dir.file("absent.safetensors")), "absent.safetensors", "no such file");
  // Control: the well-formed variant of the cases above loads.
  const std::string ok = dir.file("ok.safetensors");
  data_test::write_file(ok, file_of("{" + good_entry + "}  ", two_floats));
  EXPECT_EQ(load_safetensors(ok)[0].second.values<float>(), (std::vector<float>{1, 2}));
}

// Seeded random bytes, random truncations and random corruptions of a valid file: each load either
// succeeds (a corrupted data byte is still a valid file) or throws minidl::Error; nothing crashes. The
// whole batch runs in one child process, so a crash fails this test instead of ending the program.
TEST(Safetensors, RandomBytesNeverCrash) {
  data_test::TempDir dir;
  const std::string good = dir.file("good.safetensors");
  save_safetensors(good, {{"w", rand({3, 4})}, {"i", arange(5, {.dtype = kInt64})}, {"m", ones({2}, {.dtype = kBool})}},
                   {{"k", "v"}});
  const std::vector<uint8_t> valid = data::read_file(good, "test");
  const errors_test::Outcome o = errors_test::run_guarded([&] {
    std::mt19937_64 rng(20240607);
    const std::string path = dir.file("random.safetensors");
    auto must_fail = [&](const std::string& bytes, const std::string& what) {
      data_test::write_file(path, bytes);
      try {
        load_safetensors(path);
      } catch (const Error& e) {
        if (std::string(e.what()).find(path) == std::string::npos)
          throw std::runtime_error(what + ": the message does not name the file: " + e.what());
        return;
      }
      throw std::runtime_error(what + ": loaded without an error");
    };
    for (int i = 0; i < 150; ++i) {  // pure noise
      std::string bytes(rng() % 300, '\0');
      for (char& b : bytes) b = static_cast<char>(rng());
      must_fail(bytes, "random bytes #" + std::to_string(i));
    }
    for (int i = 0; i < 100; ++i) {  // a plausible length, then noise
      std::string body(rng() % 200 + 1, '\0');
      for (char& b : body) b = static_cast<char>(rng());
      body[0] = '{';
      must_fail(u64le(rng() % (body.size() + 1)) + body, "noise header #" + std::to_string(i));
    }
    const std::string valid_s(valid.begin(), valid.end());
    for (size_t len = 0; len < valid_s.size(); ++len)  // every truncation
      must_fail(valid_s.substr(0, len), "truncated to " + std::to_string(len));
    for (int i = 0; i < 250; ++i) {  // corruptions: error or success, never a crash
      std::string bytes = valid_s;
      for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
      data_test::write_file(path, bytes);
      try {
        load_safetensors(path);
      } catch (const Error&) {
      }
    }
  });
  EXPECT_EQ(o.kind, errors_test::Kind::NoThrow) << errors_test::describe(o);
}
