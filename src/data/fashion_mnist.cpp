#include "dnn_gating/data/fashion_mnist.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace dnn_gating::data {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kImageMagic = 2051;
constexpr uint32_t kLabelMagic = 2049;
constexpr int64_t kImageHeaderBytes = 16;  // magic, count, rows, cols
constexpr int64_t kLabelHeaderBytes = 8;   // magic, count
constexpr int64_t kSide = 28;
constexpr int64_t kPaddedSide = 32;
constexpr int64_t kPad = (kPaddedSide - kSide) / 2;

/// The plain file if it exists, else its `.gz` form; throws if neither does.
fs::path find_file(const fs::path& dir, const std::string& name) {
  const fs::path plain = dir / name;
  if (fs::is_regular_file(plain)) return plain;
  const fs::path gz = dir / (name + ".gz");
  if (fs::is_regular_file(gz)) return gz;
  throw std::runtime_error("Fashion-MNIST file not found: " + plain.string() + " (nor " +
                           gz.string() + ")");
}

// Fashion-MNIST's largest file is 47 MB; a file (or a small gzip bomb) that
// decompresses to far more is refused before it fills the memory.
constexpr size_t kMaxFileBytes = size_t{256} << 20;

/// The whole (decompressed) content. gzread also reads plain files verbatim,
/// so one path serves both forms.
std::vector<uint8_t> read_bytes(const fs::path& file) {
  gzFile gz = gzopen(file.c_str(), "rb");
  if (gz == nullptr) throw std::runtime_error("could not open Fashion-MNIST file " + file.string());
  gzbuffer(gz, 1 << 17);
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  for (;;) {
    const int n = gzread(gz, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(gz, &code);
      gzclose(gz);
      throw std::runtime_error("could not read Fashion-MNIST file " + file.string() + ": " +
                               message);
    }
    if (n == 0) break;
    if (bytes.size() + static_cast<size_t>(n) > kMaxFileBytes) {
      gzclose(gz);
      throw std::runtime_error("Fashion-MNIST file " + file.string() + " holds more than " +
                               std::to_string(kMaxFileBytes >> 20) +
                               " MiB (decompressed); not an IDX file of this data set");
    }
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  gzclose(gz);
  return bytes;
}

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

/// Checks the IDX header of `file` and returns its item count.
int64_t check_header(const fs::path& file, const std::vector<uint8_t>& bytes, uint32_t magic,
                     int64_t header_bytes, int64_t item_bytes) {
  const auto size = static_cast<int64_t>(bytes.size());
  if (size < header_bytes) {
    throw std::runtime_error("Fashion-MNIST file " + file.string() + " has " +
                             std::to_string(size) + " bytes, fewer than its " +
                             std::to_string(header_bytes) + "-byte header");
  }
  const uint32_t found = big_endian_u32(bytes.data());
  if (found != magic) {
    throw std::runtime_error("Fashion-MNIST file " + file.string() + " has magic number " +
                             std::to_string(found) + "; expected " + std::to_string(magic) +
                             (magic == kImageMagic ? " (IDX images)" : " (IDX labels)"));
  }
  const int64_t count = big_endian_u32(bytes.data() + 4);
  if (magic == kImageMagic) {
    const uint32_t rows = big_endian_u32(bytes.data() + 8);
    const uint32_t cols = big_endian_u32(bytes.data() + 12);
    if (rows != kSide || cols != kSide) {
      throw std::runtime_error("Fashion-MNIST file " + file.string() + " has " +
                               std::to_string(rows) + "x" + std::to_string(cols) +
                               " images; expected 28x28");
    }
  }
  const int64_t expected = header_bytes + count * item_bytes;
  if (size != expected) {
    throw std::runtime_error("Fashion-MNIST file " + file.string() + " has " +
                             std::to_string(size) + " bytes; its header announces " +
                             std::to_string(count) + " items, so expected " +
                             std::to_string(expected));
  }
  return count;
}

}  // namespace

ImageSet read_fashion_mnist(const std::string& dir, Split split) {
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  const fs::path image_file = find_file(dir, prefix + "-images-idx3-ubyte");
  const fs::path label_file = find_file(dir, prefix + "-labels-idx1-ubyte");
  const std::vector<uint8_t> image_bytes = read_bytes(image_file);
  const std::vector<uint8_t> label_bytes = read_bytes(label_file);
  const int64_t count =
      check_header(image_file, image_bytes, kImageMagic, kImageHeaderBytes, kSide * kSide);
  const int64_t label_count =
      check_header(label_file, label_bytes, kLabelMagic, kLabelHeaderBytes, /*item_bytes=*/1);
  if (count != label_count) {
    throw std::runtime_error("Fashion-MNIST files disagree: " + image_file.string() + " holds " +
                             std::to_string(count) + " images but " + label_file.string() +
                             " holds " + std::to_string(label_count) + " labels");
  }

  ImageSet set;
  set.labels = torch::empty({count}, torch::kLong);
  auto* labels = set.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    const int label = label_bytes[kLabelHeaderBytes + i];
    if (label > 9) {
      throw std::runtime_error("Fashion-MNIST file " + label_file.string() + ": item " +
                               std::to_string(i) + " has label " + std::to_string(label) +
                               "; expected 0-9");
    }
    labels[i] = label;
  }
  // Zero padding to 32x32 lets the CIFAR ResNets take these images unchanged.
  set.images = torch::zeros({count, 1, kPaddedSide, kPaddedSide}, torch::kUInt8);
  auto* images = set.images.data_ptr<uint8_t>();
  const uint8_t* source = image_bytes.data() + kImageHeaderBytes;
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t y = 0; y < kSide; ++y) {
      std::memcpy(images + (i * kPaddedSide + y + kPad) * kPaddedSide + kPad,
                  source + (i * kSide + y) * kSide, kSide);
    }
  }
  set.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  set.mean = {0.2860f};
  set.std = {0.3530f};
  set.name = "Fashion-MNIST";
  return set;
}

}  // namespace dnn_gating::data
