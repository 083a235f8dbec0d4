#include "dnn_gating/data/cifar10.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace dnn_gating::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kImageBytes = 3 * 32 * 32;
constexpr int64_t kRecordBytes = 1 + kImageBytes;

std::vector<std::string> file_names(Split split) {
  if (split == Split::kTest) return {"test_batch.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
          "data_batch_5.bin"};
}

/// Size of a CIFAR-10 file in records; throws if it is missing or not a
/// non-zero whole number of records.
int64_t count_records(const fs::path& file) {
  if (!fs::is_regular_file(file)) {
    throw std::runtime_error("CIFAR-10 file not found: " + file.string() +
                             " (download the binary version with scripts/get_cifar10.sh and "
                             "pass the directory holding data_batch_1.bin .. test_batch.bin)");
  }
  const auto size = static_cast<int64_t>(fs::file_size(file));
  if (size == 0 || size % kRecordBytes != 0) {
    throw std::runtime_error("CIFAR-10 file " + file.string() + " has " + std::to_string(size) +
                             " bytes; expected a non-zero multiple of " +
                             std::to_string(kRecordBytes) +
                             " (1 label byte + 3072 pixel bytes per record)");
  }
  return size / kRecordBytes;
}

}  // namespace

ImageSet read_cifar10(const std::string& dir, Split split) {
  // Check every file before reading any, so a missing last file fails at once.
  std::vector<std::pair<fs::path, int64_t>> files;
  int64_t total = 0;
  for (const std::string& name : file_names(split)) {
    const fs::path file = fs::path(dir) / name;
    const int64_t records = count_records(file);
    files.emplace_back(file, records);
    total += records;
  }

  ImageSet set;
  set.images = torch::empty({total, 3, 32, 32}, torch::kUInt8);
  set.labels = torch::empty({total}, torch::kLong);
  auto* images = set.images.data_ptr<uint8_t>();
  auto* labels = set.labels.data_ptr<int64_t>();
  std::vector<char> bytes;  // one file at a time, so peak memory stays near the set's size
  int64_t i = 0;
  for (const auto& [file, records] : files) {
    bytes.resize(static_cast<size_t>(records * kRecordBytes));
    std::ifstream in(file, std::ios::binary);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!in) throw std::runtime_error("could not read CIFAR-10 file " + file.string());
    for (int64_t r = 0; r < records; ++r, ++i) {
      const char* record = bytes.data() + r * kRecordBytes;
      const int label = static_cast<unsigned char>(record[0]);
      if (label > 9) {
        throw std::runtime_error("CIFAR-10 file " + file.string() + ": record " +
                                 std::to_string(r) + " has label " + std::to_string(label) +
                                 "; expected 0-9");
      }
      labels[i] = label;
      // The record's plane order (R, G, B; rows of 32) is already CHW.
      std::memcpy(images + i * kImageBytes, record + 1, kImageBytes);
    }
  }
  // Spelled as in the original, whose report lines read "Accuracy of plane : 93.0 %".
  set.class_names = {"plane", "car",  "bird",  "cat",  "deer",
                     "dog",   "frog", "horse", "ship", "truck"};
  set.mean = {0.485f, 0.456f, 0.406f};
  set.std = {0.229f, 0.224f, 0.225f};
  set.name = "CIFAR-10";
  return set;
}

Cifar10::Cifar10(const std::string& dir, Split split) : Cifar10(read_cifar10(dir, split)) {}

Cifar10::Cifar10(ImageSet set) : set_(std::move(set)) {
  const int64_t channels = set_.channels();
  TORCH_CHECK(static_cast<int64_t>(set_.mean.size()) == channels &&
                  static_cast<int64_t>(set_.std.size()) == channels,
              "Cifar10: need one mean and std per channel (", channels, "), got ", set_.mean.size(),
              " and ", set_.std.size());
  mean_ = torch::tensor(set_.mean, torch::kFloat).view({channels, 1, 1});
  std_ = torch::tensor(set_.std, torch::kFloat).view({channels, 1, 1});
}

torch::data::Example<> Cifar10::get(size_t index) {
  const auto i = static_cast<int64_t>(index);
  TORCH_CHECK(i < set_.size(), "Cifar10: index ", i, " out of range for ", set_.size(),
              " examples");
  torch::Tensor image = set_.images[i].to(torch::kFloat).div_(255).sub_(mean_).div_(std_);
  return {image, set_.labels[i]};
}

torch::optional<size_t> Cifar10::size() const { return static_cast<size_t>(set_.size()); }

}  // namespace dnn_gating::data
