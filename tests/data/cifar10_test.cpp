#include "dnn_gating/data/cifar10.h"

#include <filesystem>
#include <fstream>
#include <vector>

#include "test_support.h"

namespace dnn_gating::data {
namespace {

namespace fs = std::filesystem;
using dnn_gating::testing::TempDir;

using dnn_gating::testing::error_of;

/// Pixel (channel c, row r, column x) of record i in the files written below:
/// distinct across channels, rows and columns so a transposition shows.
uint8_t pixel(int64_t i, int64_t c, int64_t r, int64_t x) {
  return static_cast<uint8_t>((i * 7 + c * 85 + r * 3 + x * 5) % 256);
}

/// Writes records first..first+count-1 with labels `label(i)` = i % 10 unless overridden.
void write_records(const fs::path& file, int64_t first, int64_t count, int bad_record = -1,
                   int bad_label = 0) {
  std::ofstream out(file, std::ios::binary);
  for (int64_t i = first; i < first + count; ++i) {
    const int64_t label = (i - first == bad_record) ? bad_label : i % 10;
    out.put(static_cast<char>(label));
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t r = 0; r < 32; ++r) {
        for (int64_t x = 0; x < 32; ++x) out.put(static_cast<char>(pixel(i, c, r, x)));
      }
    }
  }
}

/// Train files of 1, 2, 3, 1, 2 records (9 in all, numbered in file order) and a test file of 4.
void write_small_dir(const fs::path& dir) {
  const int64_t counts[] = {1, 2, 3, 1, 2};
  int64_t first = 0;
  for (int b = 0; b < 5; ++b) {
    write_records(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"), first, counts[b]);
    first += counts[b];
  }
  write_records(dir / "test_batch.bin", 100, 4);
}

torch::Tensor expected_images(int64_t first, int64_t count) {
  torch::Tensor images = torch::empty({count, 3, 32, 32}, torch::kUInt8);
  auto a = images.accessor<uint8_t, 4>();
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t r = 0; r < 32; ++r) {
        for (int64_t x = 0; x < 32; ++x) a[i][c][r][x] = pixel(first + i, c, r, x);
      }
    }
  }
  return images;
}

TEST(Cifar10Reader, ReadsEveryTrainFileInOrder) {
  TempDir tmp;
  write_small_dir(tmp.path());
  const ImageSet set = read_cifar10(tmp.path().string(), Split::kTrain);
  ASSERT_EQ(set.size(), 9);
  EXPECT_EQ(set.channels(), 3);
  EXPECT_TRUE(set.images.is_contiguous());
  EXPECT_EQ(set.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(set.labels.scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(set.images, expected_images(0, 9)));
  EXPECT_TRUE(torch::equal(set.labels, torch::arange(9, torch::kLong)));
  // Record 4 (second of data_batch_3.bin): R plane first, then G, then B; row-major.
  EXPECT_EQ(set.images[4][0][0][0].item<int>(), (4 * 7) % 256);                   // 28
  EXPECT_EQ(set.images[4][1][0][0].item<int>(), (4 * 7 + 85) % 256);              // 113
  EXPECT_EQ(set.images[4][2][10][3].item<int>(), (4 * 7 + 170 + 30 + 15) % 256);  // 243
  EXPECT_EQ(set.images[4][0][1][0].item<int>(), 31);  // row 1 starts 32 bytes in
  EXPECT_EQ(set.images[4][0][0][1].item<int>(), 33);
}

TEST(Cifar10Reader, ReadsTestSplitAndMetadata) {
  TempDir tmp;
  write_small_dir(tmp.path());
  const ImageSet set = read_cifar10(tmp.path().string(), Split::kTest);
  ASSERT_EQ(set.size(), 4);
  EXPECT_TRUE(torch::equal(set.images, expected_images(100, 4)));
  EXPECT_TRUE(torch::equal(set.labels, torch::tensor({0, 1, 2, 3}, torch::kLong)));
  EXPECT_EQ(set.name, "CIFAR-10");
  const std::vector<std::string> names = {"plane", "car",  "bird",  "cat",  "deer",
                                          "dog",   "frog", "horse", "ship", "truck"};
  EXPECT_EQ(set.class_names, names);
  EXPECT_EQ(set.mean, (std::vector<float>{0.485f, 0.456f, 0.406f}));
  EXPECT_EQ(set.std, (std::vector<float>{0.229f, 0.224f, 0.225f}));
}

TEST(Cifar10Reader, ReadsTheSharedTestHelperDirectory) {
  TempDir tmp;
  dnn_gating::testing::write_cifar_dir(tmp.path(), /*per_file=*/3);
  EXPECT_EQ(read_cifar10(tmp.path().string(), Split::kTrain).size(), 15);
  EXPECT_EQ(read_cifar10(tmp.path().string(), Split::kTest).size(), 3);
}

TEST(Cifar10Reader, MissingFileNamesItAndTheDownloadScript) {
  TempDir tmp;
  write_small_dir(tmp.path());
  fs::remove(tmp.path() / "data_batch_3.bin");
  EXPECT_THROW(read_cifar10(tmp.path().string(), Split::kTrain), std::runtime_error);
  const std::string message = error_of([&] { read_cifar10(tmp.path().string(), Split::kTrain); });
  EXPECT_NE(message.find((tmp.path() / "data_batch_3.bin").string()), std::string::npos) << message;
  EXPECT_NE(message.find("scripts/get_cifar10.sh"), std::string::npos) << message;
  // The test split does not need the train files.
  EXPECT_EQ(read_cifar10(tmp.path().string(), Split::kTest).size(), 4);
}

TEST(Cifar10Reader, TruncatedFileNamesItsSizeAndTheRecordSize) {
  TempDir tmp;
  write_small_dir(tmp.path());
  const fs::path file = tmp.path() / "data_batch_2.bin";
  fs::resize_file(file, 2 * 3073 - 1);
  EXPECT_THROW(read_cifar10(tmp.path().string(), Split::kTrain), std::runtime_error);
  const std::string message = error_of([&] { read_cifar10(tmp.path().string(), Split::kTrain); });
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  EXPECT_NE(message.find("6145"), std::string::npos) << message;
  EXPECT_NE(message.find("3073"), std::string::npos) << message;
}

TEST(Cifar10Reader, EmptyFileIsAnError) {
  TempDir tmp;
  write_small_dir(tmp.path());
  const fs::path file = tmp.path() / "test_batch.bin";
  fs::resize_file(file, 0);
  const std::string message = error_of([&] { read_cifar10(tmp.path().string(), Split::kTest); });
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  EXPECT_NE(message.find(" 0 bytes"), std::string::npos) << message;
}

TEST(Cifar10Reader, BadLabelNamesFileRecordAndLabel) {
  TempDir tmp;
  write_small_dir(tmp.path());
  const fs::path file = tmp.path() / "data_batch_5.bin";
  write_records(file, 7, 2, /*bad_record=*/1, /*bad_label=*/10);
  EXPECT_THROW(read_cifar10(tmp.path().string(), Split::kTrain), std::runtime_error);
  const std::string message = error_of([&] { read_cifar10(tmp.path().string(), Split::kTrain); });
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  EXPECT_NE(message.find("record 1"), std::string::npos) << message;
  EXPECT_NE(message.find("label 10"), std::string::npos) << message;
}

TEST(ImageSet, FirstKeepsALeadingSliceAndMetadata) {
  TempDir tmp;
  write_small_dir(tmp.path());
  const ImageSet set = read_cifar10(tmp.path().string(), Split::kTrain);
  const ImageSet head = set.first(5);
  ASSERT_EQ(head.size(), 5);
  EXPECT_TRUE(head.images.is_contiguous());
  EXPECT_TRUE(torch::equal(head.images, expected_images(0, 5)));
  EXPECT_TRUE(torch::equal(head.labels, torch::arange(5, torch::kLong)));
  EXPECT_EQ(head.class_names, set.class_names);
  EXPECT_EQ(head.mean, set.mean);
  EXPECT_EQ(set.first(9).size(), 9);
  EXPECT_EQ(set.first(1000).size(), 9);
  EXPECT_EQ(set.first(0).size(), 0);
  EXPECT_THROW(set.first(-1), c10::Error);
}

TEST(ImageSet, ReadDatasetDispatchesByName) {
  TempDir tmp;
  write_small_dir(tmp.path());
  const ImageSet set = read_dataset("cifar10", tmp.path().string(), Split::kTest);
  EXPECT_EQ(set.name, "CIFAR-10");
  EXPECT_TRUE(torch::equal(set.images, expected_images(100, 4)));
  EXPECT_THROW(read_dataset("cifar100", tmp.path().string(), Split::kTest), std::invalid_argument);
  const std::string message =
      error_of([&] { read_dataset("cifar100", tmp.path().string(), Split::kTest); });
  EXPECT_NE(message.find("cifar100"), std::string::npos) << message;
  EXPECT_NE(message.find("fashion-mnist"), std::string::npos) << message;
}

TEST(Cifar10Dataset, GetReturnsTheNormalisedImageAndLabel) {
  TempDir tmp;
  write_small_dir(tmp.path());
  Cifar10 dataset(tmp.path().string(), Split::kTrain);
  ASSERT_EQ(dataset.size().value(), 9u);
  const torch::data::Example<> example = dataset.get(4);
  EXPECT_EQ(example.target.item<int64_t>(), 4);
  ASSERT_EQ(example.data.sizes(), (std::vector<int64_t>{3, 32, 32}));
  // Hand-computed: R(0,0) is byte 28, B(10,3) is byte 243.
  EXPECT_NEAR(example.data[0][0][0].item<float>(), (28 / 255.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(example.data[2][10][3].item<float>(), (243 / 255.0 - 0.406) / 0.225, 1e-5);
  const torch::Tensor mean = torch::tensor({0.485, 0.456, 0.406}).view({3, 1, 1});
  const torch::Tensor stdev = torch::tensor({0.229, 0.224, 0.225}).view({3, 1, 1});
  const torch::Tensor expected = (expected_images(4, 1)[0].to(torch::kDouble) / 255 - mean) / stdev;
  EXPECT_TRUE(dnn_gating::testing::all_close(example.data, expected, 1e-5, 1e-5));
}

TEST(Cifar10Dataset, WorksWithTorchDataLoader) {
  TempDir tmp;
  write_small_dir(tmp.path());
  auto dataset =
      Cifar10(tmp.path().string(), Split::kTrain).map(torch::data::transforms::Stack<>());
  auto loader = torch::data::make_data_loader<torch::data::samplers::SequentialSampler>(
      std::move(dataset), /*batch_size=*/4);
  std::vector<int64_t> batch_sizes;
  std::vector<int64_t> labels;
  for (const auto& batch : *loader) {
    batch_sizes.push_back(batch.data.size(0));
    for (int64_t i = 0; i < batch.target.size(0); ++i)
      labels.push_back(batch.target[i].item<int64_t>());
  }
  EXPECT_EQ(batch_sizes, (std::vector<int64_t>{4, 4, 1}));
  EXPECT_EQ(labels, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
}

}  // namespace
}  // namespace dnn_gating::data
