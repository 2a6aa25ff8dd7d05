// Image decode/encode round trips (JPEG, PNG, and hand-assembled grey, grey+alpha, RGBA and 16-bit PNGs),
// resizing (area averaging down, bilinear up) and every error a user can hit.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "autograd/error.h"
#include "data/image.h"
#include "tests/data/data_test_helpers.h"

using namespace minidl;
using namespace minidl::data;
using namespace data_test;

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

Image make_image(int w, int h, uint8_t (*f)(int x, int y, int c)) {
  Image im{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) im.rgb[(y * w + x) * 3 + c] = f(x, y, c);
  return im;
}

Image random_image(int w, int h, unsigned seed) {
  std::mt19937 rng(seed);
  Image im{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3)};
  for (auto& v : im.rgb) v = static_cast<uint8_t>(rng());
  return im;
}

// Smooth content, the kind JPEG is made for: its round-trip error says whether encode and decode agree.
Image smooth_image(int w, int h) {
  return make_image(w, h, [](int x, int y, int c) {
    return static_cast<uint8_t>(128 + 90 * std::sin(0.09 * x + 0.05 * y + 2.0 * c) * std::cos(0.07 * y));
  });
}

Bytes file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
}

// ---- a minimal PNG writer (stored deflate blocks), for the colour types write_png does not produce ----

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

void png_chunk(Bytes& out, const char* type, const Bytes& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  Bytes typed(type, type + 4);
  typed.insert(typed.end(), data.begin(), data.end());
  out.insert(out.end(), typed.begin(), typed.end());
  put_be32(out, crc32(typed.data(), typed.size()));
}

// `rows` holds each scanline's raw bytes (no filter byte); colour type 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA.
Bytes make_png(int w, int h, int bit_depth, int colour_type, const std::vector<Bytes>& rows) {
  Bytes raw;
  for (const Bytes& r : rows) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), r.begin(), r.end());
  }
  Bytes z = {0x78, 0x01};
  for (size_t at = 0; at < raw.size() || at == 0; at += 65535) {
    const size_t len = std::min<size_t>(65535, raw.size() - at);
    z.push_back(at + len >= raw.size() ? 1 : 0);  // stored block, final flag on the last
    z.push_back(static_cast<uint8_t>(len));
    z.push_back(static_cast<uint8_t>(len >> 8));
    z.push_back(static_cast<uint8_t>(~len));
    z.push_back(static_cast<uint8_t>(~len >> 8));
    z.insert(z.end(), raw.begin() + at, raw.begin() + at + len);
    if (raw.empty()) break;
  }
  uint32_t a = 1, b = 0;
  for (uint8_t v : raw) {
    a = (a + v) % 65521;
    b = (b + a) % 65521;
  }
  put_be32(z, (b << 16) | a);

  Bytes png = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  Bytes ihdr;
  put_be32(ihdr, w);
  put_be32(ihdr, h);
  ihdr.insert(ihdr.end(), {static_cast<uint8_t>(bit_depth), static_cast<uint8_t>(colour_type), 0, 0, 0});
  png_chunk(png, "IHDR", ihdr);
  png_chunk(png, "IDAT", z);
  png_chunk(png, "IEND", {});
  return png;
}

}  // namespace

// ---- decode / encode ------------------------------------------------------------------------------

TEST(Image, PngRoundTripIsExact) {
  TempDir dir;
  const Image im = random_image(37, 23, 5);
  const std::string path = dir.file("frame.png");
  write_png(path, im);
  const Image back = read_image(path);
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.height, 23);
  EXPECT_EQ(back.rgb, im.rgb);
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1) << "no temporary file may be left behind";
}

TEST(Image, JpegRoundTripIsClose) {
  TempDir dir;
  const Image im = smooth_image(64, 48);
  const Bytes jpg = encode_jpeg(im, 95);
  ASSERT_GE(jpg.size(), 4u);
  EXPECT_EQ(jpg[0], 0xFF);
  EXPECT_EQ(jpg[1], 0xD8);
  const Image back = decode_image(jpg, "mem.jpg");
  ASSERT_EQ(back.width, 64);
  ASSERT_EQ(back.height, 48);
  double mae = 0;
  for (size_t i = 0; i < im.rgb.size(); ++i) mae += std::abs(im.rgb[i] - back.rgb[i]);
  mae /= static_cast<double>(im.rgb.size());
  EXPECT_LT(mae, 1.5);  // measured 0.73
  EXPECT_LT(encode_jpeg(im, 10).size(), jpg.size()) << "quality must reach the encoder";

  const std::string path = dir.file("frame.jpg");
  write_jpeg(path, im, 95);
  EXPECT_EQ(file_bytes(path), jpg) << "write_jpeg writes what encode_jpeg returns";
  EXPECT_EQ(read_image(path).rgb, back.rgb);
}

TEST(Image, GreyAlphaAndSixteenBitPngsBecomeRgb) {
  // Grey is replicated to the three channels.
  const Image grey = decode_image(make_png(2, 2, 8, 0, {{0, 100}, {200, 255}}), "grey.png");
  ASSERT_EQ(grey.width, 2);
  EXPECT_EQ(grey.rgb, (Bytes{0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255}));
  // Alpha is dropped, not composited.
  const Image ga = decode_image(make_png(2, 1, 8, 4, {{10, 0, 20, 255}}), "grey-alpha.png");
  EXPECT_EQ(ga.rgb, (Bytes{10, 10, 10, 20, 20, 20}));
  const Image rgba = decode_image(make_png(2, 1, 8, 6, {{1, 2, 3, 0, 4, 5, 6, 128}}), "rgba.png");
  EXPECT_EQ(rgba.rgb, (Bytes{1, 2, 3, 4, 5, 6}));
  // 16-bit samples keep their high byte.
  const Image deep = decode_image(make_png(1, 1, 16, 2, {{0x12, 0x34, 0xAB, 0xCD, 0xFF, 0xFF}}), "deep.png");
  EXPECT_EQ(deep.rgb, (Bytes{0x12, 0xAB, 0xFF}));
  // And a plain RGB one, to show the hand-made files are what stb expects.
  EXPECT_EQ(decode_image(make_png(1, 1, 8, 2, {{7, 8, 9}}), "rgb.png").rgb, (Bytes{7, 8, 9}));
}

// ---- resize -----------------------------------------------------------------------------------------

TEST(Resize, ConstantImageStaysConstant) {
  const Image c = make_image(17, 13, [](int, int, int ch) { return static_cast<uint8_t>(40 + 70 * ch); });
  for (const auto& [w, h] : {std::pair{5, 29}, std::pair{40, 3}, std::pair{17, 13}, std::pair{1, 1}}) {
    const Image r = resize_image(c, w, h);
    ASSERT_EQ(r.width, w);
    ASSERT_EQ(r.height, h);
    ASSERT_EQ(r.rgb.size(), static_cast<size_t>(w) * h * 3);
    for (size_t i = 0; i < r.rgb.size(); ++i) ASSERT_EQ(r.rgb[i], 40 + 70 * (i % 3)) << w << "x" << h << " @" << i;
  }
}

TEST(Resize, HalvingAveragesEachTwoByTwoBlock) {
  // 4x2 single-channel pattern (replicated to RGB with offsets) whose block means are integers.
  const int v[2][4] = {{10, 20, 100, 0}, {30, 40, 60, 80}};
  Image im{4, 2, Bytes(4 * 2 * 3)};
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) im.rgb[(y * 4 + x) * 3 + c] = static_cast<uint8_t>(v[y][x] + c);
  const Image r = resize_image(im, 2, 1);
  EXPECT_EQ(r.rgb, (Bytes{25, 26, 27, 60, 61, 62}));
  // A 3 -> 2 shrink weights the shared middle pixel by half: (30 + 0.5 * 60) / 1.5 and (0.5 * 60 + 90) / 1.5.
  const Image row{3, 1, Bytes{30, 30, 30, 60, 60, 60, 90, 90, 90}};
  EXPECT_EQ(resize_image(row, 2, 1).rgb, (Bytes{40, 40, 40, 80, 80, 80}));
  // The axes are independent: shrinking width while enlarging height.
  const Image mixed = resize_image(im, 2, 4);
  EXPECT_EQ(mixed.height, 4);
  EXPECT_EQ(Bytes(mixed.rgb.begin(), mixed.rgb.begin() + 6), (Bytes{15, 16, 17, 50, 51, 52})) << "top row";
}

TEST(Resize, EnlargingIsBilinear) {
  // 2x2 grey [0 200; 100 40] to 4x4: sample positions -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
  const Image im{2, 2, Bytes{0, 0, 0, 200, 200, 200, 100, 100, 100, 40, 40, 40}};
  const Image r = resize_image(im, 4, 4);
  const int want[4][4] = {{0, 50, 150, 200}, {25, 59, 126, 160}, {75, 76, 79, 80}, {100, 85, 55, 40}};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) EXPECT_EQ(r.rgb[(y * 4 + x) * 3], want[y][x]) << x << "," << y;
  // 2x2 to 3x3: the centre samples the middle of the four pixels.
  EXPECT_EQ(resize_image(im, 3, 3).rgb[(1 * 3 + 1) * 3], 85);
}

// ---- errors -----------------------------------------------------------------------------------------

TEST(Image, UnreadableFilesAreErrorsNamingTheFile) {
  TempDir dir;
  const std::string missing = dir.file("missing.jpg");
  expect_error([&] { read_image(missing); }, {missing, "no such file"});
  const std::string empty = dir.file("empty.png");
  write_bytes(empty, {});
  expect_error([&] { read_image(empty); }, {empty, "empty file"});
  expect_error([&] { read_image(dir.path().string()); }, {dir.path().string(), "folder"});

  const Bytes jpg = encode_jpeg(smooth_image(64, 64), 90);
  const std::string cut = dir.file("cut.jpg");
  write_bytes(cut, Bytes(jpg.begin(), jpg.begin() + jpg.size() / 2));
  expect_error([&] { read_image(cut); }, {cut, "stb_image"});
  TempDir other;
  const std::string png_path = other.file("cut.png");
  write_png(png_path, random_image(20, 20, 3));
  const Bytes png = file_bytes(png_path);
  expect_error([&] { decode_image(Bytes(png.begin(), png.begin() + png.size() / 2), "cut.png"); }, {"cut.png"});

  std::mt19937 rng(99);
  for (int trial = 0; trial < 50; ++trial) {
    Bytes noise(2 + rng() % 2000);
    for (auto& b : noise) b = static_cast<uint8_t>(rng());
    if (trial % 2) {  // starts like a JPEG, so the JPEG decoder itself sees the garbage
      noise[0] = 0xFF;
      noise[1] = 0xD8;
    }
    try {
      decode_image(noise, "noise.bin");
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("noise.bin"), std::string::npos) << e.what();
    }
  }
  expect_error([&] { decode_image(Bytes{'B', 'M', 1, 2, 3, 4, 5, 6, 7, 8}, "bitmap.bmp"); }, {"bitmap.bmp"});
}

TEST(Image, OversizedJpegHuffmanTableIsRejectedBeforeStb) {
  // 16 code counts of 17 each (272 codes): stb_image 2.27 would write past its 257-entry tables.
  Bytes b = {0xFF, 0xD8, 0xFF, 0xC4};
  const int length = 2 + 17 + 272;
  b.push_back(static_cast<uint8_t>(length >> 8));
  b.push_back(static_cast<uint8_t>(length));
  b.push_back(0x00);  // DC table 0
  for (int k = 0; k < 16; ++k) b.push_back(17);
  for (int k = 0; k < 272; ++k) b.push_back(static_cast<uint8_t>(k));
  b.insert(b.end(), {0xFF, 0xD9});
  expect_error([&] { decode_image(b, "evil.jpg"); }, {"evil.jpg", "Huffman table declares 272 codes"});
  // The same table after an APP segment and fill bytes is found too.
  Bytes c = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xFF, 0xC4, 0xFF, 0xFF};
  c.insert(c.end(), b.begin() + 3, b.end());
  expect_error([&] { decode_image(c, "evil2.jpg"); }, {"evil2.jpg", "Huffman"});
}

TEST(Image, InvalidImagesAndArgumentsAreErrors) {
  TempDir dir;
  const Image zero{0, 4, {}};
  const Image short_rgb{2, 2, Bytes(11)};
  const Image good = random_image(4, 4, 1);
  for (const Image* bad : {&zero, &short_rgb}) {
    const std::string path = dir.file("bad.png");
    expect_error([&] { write_png(path, *bad); }, {path, "invalid image"});
    expect_error([&] { write_jpeg(dir.file("bad.jpg"), *bad); }, {"bad.jpg", "invalid image"});
    expect_error([&] { encode_jpeg(*bad); }, {"invalid image"});
    expect_error([&] { resize_image(*bad, 2, 2); }, {"invalid image"});
    EXPECT_FALSE(fs::exists(path));
  }
  expect_error([&] { encode_jpeg(good, 0); }, {"quality"});
  expect_error([&] { encode_jpeg(good, 101); }, {"quality"});
  expect_error([&] { resize_image(good, 0, 3); }, {"0x3"});
  expect_error([&] { resize_image(good, 3, -1); }, {"3x-1"});

  const std::string folder = dir.file("no-such-folder");
  expect_error([&] { write_png(folder + "/a.png", good); }, {folder, "does not exist"});
  expect_error([&] { write_jpeg(folder + "/a.jpg", good); }, {folder, "does not exist"});
  EXPECT_FALSE(fs::exists(folder));
}
