// Images: JPEG and PNG in (through stb_image), JPEG and PNG out (stb_image_write), and resizing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minidl::data {

// 8-bit RGB, rows top to bottom, pixels interleaved: the value of channel c at (x, y) is
// rgb[(y * width + x) * 3 + c].
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

// Reads a JPEG or PNG file as RGB (grey and alpha are converted). A missing, empty, truncated or
// undecodable file is a minidl::Error naming the file and stb's reason.
Image read_image(const std::string& path);
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name);

// Resamples to width x height: bilinear when enlarging, area-averaging when shrinking (no aliasing).
Image resize_image(const Image& image, int width, int height);

// Writers; files appear atomically (temporary name, then rename).
void write_jpeg(const std::string& path, const Image& image, int quality = 90);
void write_png(const std::string& path, const Image& image);
std::vector<uint8_t> encode_jpeg(const Image& image, int quality = 90);

}  // namespace minidl::data
