#include "io/zip_check.h"

#include <cstdint>
#include <stdexcept>

namespace dnn_gating::train {

static uint32_t little_endian(const std::vector<char>& bytes, size_t at, int width) {
  uint32_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

// The zip archive's directory, checked before torch reads it: every record
// stored uncompressed (as torch.save writes them) and lying inside the file,
// so that nothing the file claims can make the reader allocate more than the
// file holds.
void check_zip_records(const std::vector<char>& bytes, const std::string& path) {
  const std::string not_torch = "not a readable checkpoint (corrupt or not saved by torch)";
  constexpr size_t kEndRecord = 22;
  if (bytes.size() < kEndRecord) throw std::runtime_error(path + ": " + not_torch);
  size_t end = bytes.size() - kEndRecord;
  const size_t lowest = bytes.size() > kEndRecord + 65535 ? bytes.size() - kEndRecord - 65535 : 0;
  while (little_endian(bytes, end, 4) != 0x06054b50) {
    if (end == lowest) throw std::runtime_error(path + ": " + not_torch);
    --end;
  }
  const uint32_t entries = little_endian(bytes, end + 10, 2);
  const uint64_t directory_size = little_endian(bytes, end + 12, 4);
  const uint64_t directory = little_endian(bytes, end + 16, 4);
  if (directory + directory_size > end)
    throw std::runtime_error(path + ": " + not_torch + ": its directory lies outside the file");
  size_t at = directory;
  for (uint32_t i = 0; i < entries; ++i) {
    if (at + 46 > directory + directory_size || little_endian(bytes, at, 4) != 0x02014b50) {
      throw std::runtime_error(path + ": " + not_torch + ": broken directory entry " +
                               std::to_string(i));
    }
    const uint32_t method = little_endian(bytes, at + 10, 2);
    const uint64_t packed = little_endian(bytes, at + 20, 4);
    const uint64_t size = little_endian(bytes, at + 24, 4);
    const uint64_t local = little_endian(bytes, at + 42, 4);
    if (method != 0 || packed != size || local + size > bytes.size()) {
      throw std::runtime_error(path + ": " + not_torch + ": record " + std::to_string(i) +
                               " claims " + std::to_string(size) +
                               " bytes that the file does not hold");
    }
    at += 46 + little_endian(bytes, at + 28, 2) + little_endian(bytes, at + 30, 2) +
          little_endian(bytes, at + 32, 2);
  }
}

}  // namespace dnn_gating::train
