// The one translation unit that compiles stb_image and stb_image_write; everything else goes through the
// functions below.
#include "data/image.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>

#include "autograd/error.h"
#include "data/file_io.h"

// Only the two formats the API promises: fewer decoders reachable from untrusted bytes, and a BMP or GIF
// is reported as unsupported rather than silently accepted. Files are read and written by our own code
// (clear errors, atomic writes), so stb's stdio paths are compiled out.
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_WRITE_NO_STDIO
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
// stb's own code is not ours to fix; its only warning under -Wall -Wextra (GCC 12) is this one.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace minidl::data {
namespace {

namespace fs = std::filesystem;

// Checks what every consumer of an Image relies on; `who` (the function, and the path if any) starts the
// message.
void validate(const Image& image, const std::string& who) {
  MINIDL_CHECK(image.width > 0 && image.height > 0, who, ": invalid image: size ", image.width, "x", image.height,
               " (width and height must be positive)");
  const uint64_t expected = uint64_t{3} * static_cast<uint64_t>(image.width) * static_cast<uint64_t>(image.height);
  MINIDL_CHECK(image.rgb.size() == expected, who, ": invalid image: ", image.width, "x", image.height, " RGB needs ",
               expected, " bytes, rgb has ", image.rgb.size());
}

// stb_image_write sizes its buffers in int; half of INT_MAX leaves room for PNG's filter bytes and zlib's
// worst case.
void check_writable_size(const Image& image, const std::string& who) {
  const uint64_t bytes = uint64_t{3} * static_cast<uint64_t>(image.width) * static_cast<uint64_t>(image.height);
  MINIDL_CHECK(bytes <= static_cast<uint64_t>(std::numeric_limits<int>::max() / 2), who, ": image ", image.width, "x",
               image.height, " is too large to encode");
}

// stb_image 2.27 (Debian 12's libstb) trusts the code counts of a JPEG Huffman table: 16 counts summing to
// more than 256 overrun its 257-entry arrays (heap corruption from a few crafted bytes; fixed upstream in
// 2.28). This walks the markers the way stb's parser meets them (segments skipped by their length, anything
// else scanned for the next 0xFF marker, which also covers entropy-coded data) and rejects such a table
// before stb sees it. A valid table never has more than 256 codes, so no good file is refused.
void check_jpeg_huffman_tables(const std::vector<uint8_t>& bytes, const std::string& name) {
  const size_t n = bytes.size();
  const uint8_t* b = bytes.data();
  if (n < 2 || b[0] != 0xFF || b[1] != 0xD8) return;  // not a JPEG
  // Past the end stb reads zeros, which only make counts smaller.
  const auto at = [&](size_t i) -> int { return i < n ? b[i] : 0; };
  size_t i = 2;
  while (i < n) {
    if (b[i] != 0xFF) {
      ++i;
      continue;
    }
    while (i < n && b[i] == 0xFF) ++i;  // fill bytes
    if (i >= n) break;
    const int marker = b[i++];
    if (marker == 0xD9) break;                                                             // end of image
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // stuffing, TEM, RST
    const size_t length = static_cast<size_t>(at(i) << 8 | at(i + 1));
    if (length < 2) break;  // stb rejects it
    if (marker == 0xC4) {
      // Tables follow one another until the declared length is used up, exactly as stb reads them.
      int64_t left = static_cast<int64_t>(length) - 2;
      size_t t = i + 2;
      while (left > 0 && t < n) {
        int count = 0;
        for (int k = 1; k <= 16; ++k) count += at(t + k);
        MINIDL_CHECK(count <= 256, "read_image: ", name, ": corrupt JPEG: a Huffman table declares ", count,
                     " codes (at most 256 exist)");
        t += 17 + static_cast<size_t>(count);
        left -= 17 + count;
      }
    }
    i += length;
  }
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

std::vector<uint8_t> encode_png(const Image& image, const std::string& who) {
  validate(image, who);
  check_writable_size(image, who);
  std::vector<uint8_t> out;
  const int ok =
      stbi_write_png_to_func(append_bytes, &out, image.width, image.height, 3, image.rgb.data(), image.width * 3);
  MINIDL_CHECK(ok != 0, who, ": stb_image_write could not encode a ", image.width, "x", image.height, " PNG");
  return out;
}

// One axis of a separable resize: output i is the sum over its taps of weight * input[src].
struct Taps {
  std::vector<int> begin;  // taps of output i are [begin[i], begin[i + 1])
  std::vector<int> src;
  std::vector<float> weight;
};

Taps axis_taps(int in, int out) {
  Taps t;
  t.begin.push_back(0);
  if (out >= in) {
    // Bilinear with pixel centres aligned (half-pixel offsets, edges clamped); out == in is the identity.
    const double scale = static_cast<double>(in) / out;
    for (int i = 0; i < out; ++i) {
      const double s = std::clamp((i + 0.5) * scale - 0.5, 0.0, static_cast<double>(in - 1));
      const int i0 = static_cast<int>(s);
      const double f = s - i0;
      t.src.push_back(i0);
      t.weight.push_back(static_cast<float>(1.0 - f));
      if (f > 0.0) {
        t.src.push_back(i0 + 1);
        t.weight.push_back(static_cast<float>(f));
      }
      t.begin.push_back(static_cast<int>(t.src.size()));
    }
  } else {
    // Exact box filter: measured in units of 1/(in*out) of the image, input pixel j spans [j*out, (j+1)*out)
    // and output pixel i spans [i*in, (i+1)*in), so every overlap is an integer and the weights are exact.
    for (int i = 0; i < out; ++i) {
      const int64_t lo = int64_t{i} * in, hi = lo + in;
      for (int64_t j = lo / out; j * out < hi; ++j) {
        const int64_t overlap = std::min(hi, (j + 1) * out) - std::max(lo, j * out);
        if (overlap <= 0) continue;
        t.src.push_back(static_cast<int>(j));
        t.weight.push_back(static_cast<float>(static_cast<double>(overlap) / in));
      }
      t.begin.push_back(static_cast<int>(t.src.size()));
    }
  }
  return t;
}

}  // namespace

Image read_image(const std::string& path) { return decode_image(read_file(path, "read_image"), path); }

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name) {
  MINIDL_CHECK(!bytes.empty(), "read_image: ", name, ": empty file");
  MINIDL_CHECK(bytes.size() <= static_cast<size_t>(std::numeric_limits<int>::max()), "read_image: ", name, ": ",
               bytes.size(), " bytes are more than stb_image can read");
  check_jpeg_huffman_tables(bytes, name);
  int width = 0, height = 0, channels = 0;
  // Three desired channels: stb converts grey (replicated) and drops alpha (not composited).
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &width, &height, &channels, 3),
      stbi_image_free);
  if (!pixels) {
    // Thread-local in this stb version (STBI_THREAD_LOCAL), so loader threads do not see each other's reasons.
    const char* reason = stbi_failure_reason();
    fail("read_image: ", name, ": cannot decode as JPEG or PNG (stb_image: ", reason ? reason : "unknown error", ")");
  }
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.assign(pixels.get(), pixels.get() + static_cast<size_t>(width) * height * 3);
  return image;
}

Image resize_image(const Image& image, int width, int height) {
  validate(image, "resize_image");
  MINIDL_CHECK(width > 0 && height > 0, "resize_image: target size ", width, "x", height, " must be positive");
  MINIDL_CHECK(static_cast<uint64_t>(width) * static_cast<uint64_t>(height) <= (uint64_t{1} << 32),
               "resize_image: target size ", width, "x", height, " is too large");
  if (width == image.width && height == image.height) return image;

  const Taps tx = axis_taps(image.width, width), ty = axis_taps(image.height, height);
  // Vertical pass into floats (rows of the output height, the input width), then horizontal, rounding
  // once at the end so an exact average stays exact. In this order the per-pixel taps of the horizontal
  // pass, the costlier one, run over the output's rows only (48 instead of 112 for the tiny model's
  // frames); the vertical pass is whole rows times a weight, which vectorises.
  const size_t row_in = static_cast<size_t>(image.width) * 3, row_out = static_cast<size_t>(width) * 3;
  std::vector<float> mid(static_cast<size_t>(height) * row_in, 0.0f);
  for (int y = 0; y < height; ++y) {
    float* acc = mid.data() + y * row_in;
    for (int k = ty.begin[y]; k < ty.begin[y + 1]; ++k) {
      const uint8_t* src = image.rgb.data() + static_cast<size_t>(ty.src[k]) * row_in;
      const float w = ty.weight[k];
      for (size_t i = 0; i < row_in; ++i) acc[i] += w * static_cast<float>(src[i]);
    }
  }
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(static_cast<size_t>(height) * row_out);
  for (int y = 0; y < height; ++y) {
    const float* src = mid.data() + y * row_in;
    uint8_t* dst = out.rgb.data() + static_cast<size_t>(y) * row_out;
    for (int x = 0; x < width; ++x) {
      float acc[3] = {0, 0, 0};
      for (int k = tx.begin[x]; k < tx.begin[x + 1]; ++k) {
        const float* px = src + static_cast<size_t>(tx.src[k]) * 3;
        for (int c = 0; c < 3; ++c) acc[c] += tx.weight[k] * px[c];
      }
      // Round half away from zero, as lround does for these non-negative sums: acc + 0.5 is exact in
      // double, and truncation is then the floor.
      for (int c = 0; c < 3; ++c)
        dst[x * 3 + c] = static_cast<uint8_t>(static_cast<double>(std::clamp(acc[c], 0.0f, 255.0f)) + 0.5);
    }
  }
  return out;
}

std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
  validate(image, "encode_jpeg");
  check_writable_size(image, "encode_jpeg");
  MINIDL_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality must be in [1, 100], got ", quality);
  // JPEG stores sizes in 16 bits.
  MINIDL_CHECK(image.width <= 65535 && image.height <= 65535, "encode_jpeg: ", image.width, "x", image.height,
               " exceeds JPEG's 65535-pixel limit");
  std::vector<uint8_t> out;
  const int ok = stbi_write_jpg_to_func(append_bytes, &out, image.width, image.height, 3, image.rgb.data(), quality);
  MINIDL_CHECK(ok != 0, "encode_jpeg: stb_image_write could not encode a ", image.width, "x", image.height, " JPEG");
  return out;
}

void write_jpeg(const std::string& path, const Image& image, int quality) {
  validate(image, "write_jpeg: " + path);
  MINIDL_CHECK(quality >= 1 && quality <= 100, "write_jpeg: ", path, ": quality must be in [1, 100], got ", quality);
  write_file_atomically(path, encode_jpeg(image, quality), "write_jpeg");
}

void write_png(const std::string& path, const Image& image) {
  write_file_atomically(path, encode_png(image, "write_png: " + path), "write_png");
}

}  // namespace minidl::data
