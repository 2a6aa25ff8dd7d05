#include "data/clip_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "autograd/error.h"
#include "data/file_io.h"

namespace minidl::data {
namespace {

namespace fs = std::filesystem;

constexpr char kFramesMagic[8] = {'M', 'D', 'L', 'F', 'R', 'A', 'M', 'E'};
constexpr char kAudioMagic[8] = {'M', 'D', 'L', 'A', 'U', 'D', 'I', 'O'};

// Fixed-size header at the start of every cache file.
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t param;      // image size or sample rate
  int64_t count;       // frames or samples
  uint64_t signature;  // of the sources
};

// FNV-1a, enough to notice that a source file was replaced or touched.
struct Fnv {
  uint64_t h = 1469598103934665603ULL;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  }
  template <class T>
  void add(const T& v) {
    add(&v, sizeof v);
  }
};

void add_file(Fnv& f, const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto time = fs::last_write_time(path, ec).time_since_epoch().count();
  f.add(ec ? uint64_t{0} : static_cast<uint64_t>(size));
  f.add(static_cast<int64_t>(ec ? 0 : time));
}

bool read_header(const std::string& path, Header& h) {
  std::ifstream in(path, std::ios::binary);
  return in && in.read(reinterpret_cast<char*>(&h), sizeof h) && in.gcount() == sizeof h;
}

bool header_matches(const Header& h, const char (&magic)[8], uint32_t param, int64_t count, uint64_t signature) {
  return std::memcmp(h.magic, magic, 8) == 0 && h.version == ClipCache::kFormatVersion && h.param == param &&
         h.count == count && h.signature == signature;
}

// Reads n bytes at offset; false when the file is shorter (it was truncated behind our back).
bool read_at(const std::string& path, int64_t offset, void* dst, size_t n) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  const ssize_t got = ::pread(fd, dst, n, offset);
  ::close(fd);
  return got == static_cast<ssize_t>(n);
}

std::string file_key(const std::string& s) {
  std::string k = s;
  for (char& c : k)
    if (c == '/' || c == '\\') c = '_';
  return k;
}

}  // namespace

ClipCache::ClipCache(std::string dir) : dir_(std::move(dir)) {
  if (dir_.empty()) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  MINIDL_CHECK(!ec, "loader cache: cannot create the cache folder ", dir_, ": ", ec.message());
}

std::mutex& ClipCache::lock_for(const std::string& path) {
  std::lock_guard<std::mutex> guard(locks_mutex_);
  auto& m = locks_[path];
  if (!m) m = std::make_unique<std::mutex>();
  return *m;
}

std::shared_ptr<const std::vector<float>> ClipCache::audio(const std::string& wav_path, int rate,
                                                           const std::function<std::vector<float>()>& decode) {
  if (!enabled()) return std::make_shared<const std::vector<float>>(decode());
  const std::string path =
      (fs::path(dir_) / (file_key(fs::path(wav_path).filename().string()) + ".audio" + std::to_string(rate) + ".bin"))
          .string();
  Fnv sig;
  sig.add(wav_path.data(), wav_path.size());
  add_file(sig, wav_path);
  std::lock_guard<std::mutex> guard(lock_for(path));
  Header h{};
  if (read_header(path, h) && h.count >= 0 &&
      header_matches(h, kAudioMagic, static_cast<uint32_t>(rate), h.count, sig.h)) {
    auto track = std::make_shared<std::vector<float>>(static_cast<size_t>(h.count));
    if (read_at(path, sizeof(Header), track->data(), track->size() * sizeof(float))) {
      ++hits_;
      return track;
    }
  }
  auto track = std::make_shared<const std::vector<float>>(decode());
  std::memcpy(h.magic, kAudioMagic, 8);
  h.version = kFormatVersion;
  h.param = static_cast<uint32_t>(rate);
  h.count = static_cast<int64_t>(track->size());
  h.signature = sig.h;
  write_file_atomically(path, {{&h, sizeof h}, {track->data(), track->size() * sizeof(float)}}, "loader cache");
  return track;
}

std::vector<uint8_t> ClipCache::frame(const VideoRecord& video, int64_t frame, int size,
                                      const std::function<std::vector<uint8_t>(int64_t)>& decode) {
  if (!enabled()) return video.image_exists(frame) ? decode(frame) : std::vector<uint8_t>{};
  const std::string path =
      (fs::path(dir_) / (file_key(video.name) + ".frames" + std::to_string(size) + ".bin")).string();
  const int64_t n = video.num_frames();
  const size_t frame_bytes = static_cast<size_t>(size) * size * 3;

  auto checked = [&] {
    std::lock_guard<std::mutex> g(locks_mutex_);
    return checked_.count(path) > 0;
  };
  if (!checked()) {
    std::lock_guard<std::mutex> guard(lock_for(path));
    if (!checked()) {  // another thread may have built or checked the file while we waited for its lock
      Fnv sig;
      sig.add(video.frames_dir.data(), video.frames_dir.size());
      for (int64_t f = 1; f <= n; ++f)
        if (video.image_exists(f)) {
          sig.add(f);
          add_file(sig, video.frame_path(f));
        }
      Header h{};
      if (read_header(path, h) && header_matches(h, kFramesMagic, static_cast<uint32_t>(size), n, sig.h)) {
        ++hits_;
      } else {
        std::vector<uint8_t> present(static_cast<size_t>(n), 0), pixels(static_cast<size_t>(n) * frame_bytes, 0);
        for (int64_t f = 1; f <= n; ++f) {
          if (!video.image_exists(f)) continue;
          std::vector<uint8_t> p = decode(f);
          if (p.size() != frame_bytes) continue;  // a bad file the caller tolerates: stays absent
          present[f - 1] = 1;
          std::memcpy(pixels.data() + (f - 1) * frame_bytes, p.data(), frame_bytes);
        }
        std::memcpy(h.magic, kFramesMagic, 8);
        h.version = kFormatVersion;
        h.param = static_cast<uint32_t>(size);
        h.count = n;
        h.signature = sig.h;
        write_file_atomically(path, {{&h, sizeof h}, {present.data(), present.size()}, {pixels.data(), pixels.size()}},
                              "loader cache");
      }
      std::lock_guard<std::mutex> g(locks_mutex_);
      checked_[path] = true;
    }
  }
  if (frame < 1 || frame > n) return {};
  uint8_t present = 0;
  std::vector<uint8_t> pixels(frame_bytes);
  const int64_t base = static_cast<int64_t>(sizeof(Header));
  MINIDL_CHECK(read_at(path, base + frame - 1, &present, 1) &&
                   (!present || read_at(path, base + n + (frame - 1) * static_cast<int64_t>(frame_bytes), pixels.data(),
                                        frame_bytes)),
               "loader cache: ", path, " is shorter than its header says; delete the cache folder to rebuild it");
  if (!present) return {};
  return pixels;
}

}  // namespace minidl::data
