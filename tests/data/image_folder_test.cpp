// Image folders: JPEG and PNG decoding of every colour type, the folder
// layout, torchvision's transforms, and batches decoded on worker threads
// that are the same whatever the threads and their timing.
#include "dnn_gating/data/image_folder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "data/image_transforms.h"
#include "dnn_gating/data/folder_loader.h"
#include "dnn_gating/data/image_file.h"
#include "dnn_gating/report/png.h"
#include "jpeg_writer.h"
#include "test_support.h"

namespace dd = dnn_gating::data;
namespace dgt = dnn_gating::testing;
namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// An RGB gradient of odd size.
std::vector<uint8_t> gradient(int width, int height) {
  std::vector<uint8_t> rgb;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      rgb.insert(rgb.end(), {static_cast<uint8_t>(x * 255 / std::max(1, width - 1)),
                             static_cast<uint8_t>(y * 255 / std::max(1, height - 1)), 60});
    }
  }
  return rgb;
}

std::string png_of(const std::vector<uint8_t>& rgb, int width, int height) {
  dnn_gating::train::Picture picture(width, height);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const uint8_t* p = rgb.data() + (y * width + x) * 3;
      picture.set(x, y, {p[0], p[1], p[2]});
    }
  }
  return dnn_gating::train::encode_png(picture);
}

int max_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  int out = 0;
  for (size_t i = 0; i < a.size(); ++i) out = std::max(out, std::abs(int(a[i]) - int(b[i])));
  return out;
}

// train/<class>/ with JPEGs (RGB, grey, CMYK, progressive) and PNGs of odd
// sizes, a text file to leave alone, and one truncated JPEG.
class Folder : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path root = tmp_.path() / "train";
    write_file(root / "dog" / "a.jpg", dgt::encode_jpeg(gradient(37, 23), 37, 23, 3));
    write_file(root / "dog" / "b.PNG", png_of(gradient(300, 17), 300, 17));
    write_file(root / "dog" / "notes.txt", "not an image");
    std::vector<uint8_t> grey(41 * 29, 128);
    write_file(root / "cat" / "grey.jpeg", dgt::encode_jpeg(grey, 41, 29, 1, 90, true));
    std::vector<uint8_t> cmyk;
    for (int i = 0; i < 16 * 16; ++i) cmyk.insert(cmyk.end(), {255, 128, 255, 255});
    write_file(root / "cat" / "cmyk.jpg", dgt::encode_jpeg(cmyk, 16, 16, 4, 100));
    const std::string whole = dgt::encode_jpeg(gradient(64, 64), 64, 64, 3);
    write_file(root / "cat" / "zz-broken.jpg", whole.substr(0, whole.size() / 2));
    write_file(root / "ant" / "c.png", png_of(gradient(9, 50), 9, 50));
  }
  fs::path root() const { return tmp_.path() / "train"; }
  dgt::TempDir tmp_;
};

}  // namespace

TEST(ImageFile, DecodesEveryColourType) {
  const auto rgb = gradient(37, 23);
  const dd::RgbImage jpeg = dd::decode_image(dgt::encode_jpeg(rgb, 37, 23, 3, 100), "a.jpg");
  ASSERT_EQ(jpeg.width, 37);
  ASSERT_EQ(jpeg.height, 23);
  EXPECT_LE(max_difference(jpeg.rgb, rgb), 12);
  const dd::RgbImage png = dd::decode_image(png_of(rgb, 37, 23), "a.png");
  EXPECT_EQ(png.rgb, rgb);
  // Grey becomes three equal channels; Adobe CMYK (stored inverted) RGB as PIL.
  const dd::RgbImage grey =
      dd::decode_image(dgt::encode_jpeg(std::vector<uint8_t>(8 * 8, 77), 8, 8, 1, 100), "g.jpg");
  for (size_t i = 0; i < grey.rgb.size(); i += 3) {
    EXPECT_EQ(grey.rgb[i], grey.rgb[i + 1]);
    EXPECT_NEAR(grey.rgb[i], 77, 2);
  }
  std::vector<uint8_t> cmyk;
  for (int i = 0; i < 8 * 8; ++i) cmyk.insert(cmyk.end(), {255, 128, 0, 200});
  const dd::RgbImage converted = dd::decode_image(dgt::encode_jpeg(cmyk, 8, 8, 4, 100), "c.jpg");
  EXPECT_NEAR(converted.rgb[0], 200, 3);              // 255 * 200 / 255
  EXPECT_NEAR(converted.rgb[1], 128 * 200 / 255, 3);  // 100
  EXPECT_NEAR(converted.rgb[2], 0, 3);
}

TEST(ImageFile, RefusesBrokenFilesByName) {
  const std::string whole = dgt::encode_jpeg(gradient(64, 64), 64, 64, 3);
  std::string message =
      dgt::error_of([&] { dd::decode_image(whole.substr(0, whole.size() / 2), "cut.jpg"); });
  EXPECT_NE(message.find("cut.jpg: not a readable JPEG file"), std::string::npos) << message;
  message = dgt::error_of([&] { dd::decode_image("GIF89a....", "x.gif"); });
  EXPECT_NE(message.find("x.gif: neither a JPEG nor a PNG file"), std::string::npos) << message;
  // A header that claims 60000 x 60000 pixels is refused before allocating.
  std::string huge = dgt::encode_jpeg(gradient(8, 8), 8, 8, 3);
  const size_t sof = huge.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  huge[sof + 5] = '\xEA', huge[sof + 6] = '\x60', huge[sof + 7] = '\xEA', huge[sof + 8] = '\x60';
  message = dgt::error_of([&] { dd::decode_image(huge, "huge.jpg"); });
  EXPECT_NE(message.find("huge.jpg: not a readable JPEG file (larger than 8192 x 8192"),
            std::string::npos)
      << message;
}

TEST_F(Folder, ListsClassesAndImagesSorted) {
  const dd::ImageFolder folder = dd::scan_image_folder(root().string());
  EXPECT_EQ(folder.class_names, (std::vector<std::string>{"ant", "cat", "dog"}));
  std::vector<std::string> names;
  for (const auto& f : folder.files) names.push_back(fs::path(f).filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"c.png", "cmyk.jpg", "grey.jpeg", "zz-broken.jpg",
                                             "a.jpg", "b.PNG"}));
  EXPECT_EQ(folder.labels, (std::vector<int64_t>{0, 1, 1, 1, 2, 2}));
  const dd::ImageFolder two = folder.spread(2);
  EXPECT_EQ(two.labels, (std::vector<int64_t>{0, 1}));
  fs::create_directories(root() / "empty");
  std::string message = dgt::error_of([&] { dd::scan_image_folder(root().string()); });
  EXPECT_NE(message.find("empty: a class directory without a .jpg, .jpeg or .png file"),
            std::string::npos)
      << message;
  message = dgt::error_of([&] { dd::scan_image_folder((root() / "nowhere").string()); });
  EXPECT_NE(message.find("nowhere: no such directory"), std::string::npos) << message;
}

TEST(ImageTransforms, IdentityAndUniformImages) {
  // A box the size of the output reproduces the image exactly.
  const std::vector<float> zero{0, 0, 0}, one{1.0f / 255, 1.0f / 255, 1.0f / 255};
  // (byte/255 - 0) / (1/255) = byte: the resampled bytes themselves.
  std::vector<float> square(3 * 10 * 10);
  dd::resized_crop_into(dd::RgbImage{10, 10, gradient(10, 10)}, {0, 0, 10, 10}, 10, false, zero,
                        one, square.data());
  const auto expected = gradient(10, 10);
  for (int y = 0; y < 10; ++y) {
    for (int x = 0; x < 10; ++x) {
      for (int c = 0; c < 3; ++c) {
        ASSERT_NEAR(square[c * 100 + y * 10 + x], expected[(y * 10 + x) * 3 + c], 1e-3);
      }
    }
  }
  // Flipped: the same columns mirrored.
  std::vector<float> flipped(3 * 10 * 10);
  dd::resized_crop_into(dd::RgbImage{10, 10, gradient(10, 10)}, {0, 0, 10, 10}, 10, true, zero, one,
                        flipped.data());
  EXPECT_NEAR(flipped[0 * 100 + 3 * 10 + 0], square[0 * 100 + 3 * 10 + 9], 1e-3);
  // A uniform image stays uniform at any size, through either transform.
  const dd::RgbImage flat{31, 17, std::vector<uint8_t>(31 * 17 * 3, 200)};
  std::vector<float> small(3 * 8 * 8);
  dd::resize_center_crop_into(flat, 8, zero, one, small.data());
  for (const float v : small) EXPECT_NEAR(v, 200, 1e-3);
  std::vector<float> out(3 * 24 * 24);
  dd::resized_crop_into(flat, {3, 5, 11, 9}, 24, false, zero, one, out.data());
  for (const float v : out) EXPECT_NEAR(v, 200, 1e-3);
}

TEST(ImageTransforms, RandomResizedCropStaysInsideWithTorchvisionsRanges) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 500; ++i) {
    const int64_t h = 20 + i % 300, w = 30 + (i * 7) % 400;
    const dd::CropBox b = dd::random_resized_crop(h, w, rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, h);
    ASSERT_LE(b.left + b.width, w);
    ASSERT_GT(b.height, 0);
    ASSERT_GT(b.width, 0);
  }
}

TEST_F(Folder, BatchesAreTheSameWhateverTheThreads) {
  dd::ImageFolder folder = dd::scan_image_folder(root().string());
  folder.files.erase(folder.files.begin() + 3);  // without the broken file
  folder.labels.erase(folder.labels.begin() + 3);
  for (const bool augment : {false, true}) {
    SCOPED_TRACE(augment ? "training transforms" : "evaluation transforms");
    const auto options = dd::LoaderOptions(2).augment(augment).shuffle(augment).seed(9);
    dd::FolderLoader one(folder, options, dd::FolderOptions().image_size(16).threads(1));
    dd::FolderLoader three(folder, options,
                           dd::FolderOptions().image_size(16).threads(3).prefetch(1));
    ASSERT_EQ(one.num_batches(), 3);
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      one.start_epoch(epoch);
      three.start_epoch(epoch);
      for (int64_t b = one.num_batches() - 1; b >= 0; --b) {  // any order
        const dd::Batch x = one.batch(b), y = three.batch(b);
        ASSERT_EQ(x.images.sizes().slice(1), (std::vector<int64_t>{3, 16, 16}));
        EXPECT_TRUE(torch::equal(x.images, y.images)) << b;
        EXPECT_TRUE(torch::equal(x.labels, y.labels)) << b;
        // A shard is that part of the whole batch.
        const dd::Batch part = three.batch(b, 1, 2);
        EXPECT_TRUE(torch::equal(part.images, x.images.slice(0, 1, 2)));
      }
    }
    // Training draws differ by epoch.
    if (augment) {
      one.start_epoch(0);
      const torch::Tensor first = one.batch(0).images;
      one.start_epoch(1);
      EXPECT_FALSE(torch::equal(first, one.batch(0).images));
    }
  }
}

TEST_F(Folder, BrokenFilesStopOrAreSkippedByName) {
  const dd::ImageFolder folder = dd::scan_image_folder(root().string());
  {
    dd::FolderLoader refuse(folder, dd::LoaderOptions(6), dd::FolderOptions().image_size(8));
    const std::string message = dgt::error_of([&] { refuse.batch(0); });
    EXPECT_NE(message.find("zz-broken.jpg: not a readable JPEG file"), std::string::npos)
        << message;
  }
  std::vector<std::string> skipped;
  std::mutex mutex;
  dd::FolderLoader skip(folder, dd::LoaderOptions(6),
                        dd::FolderOptions()
                            .image_size(8)
                            .threads(2)
                            .bad_images(dd::BadImages::kSkip)
                            .on_skipped([&](const std::string& m) {
                              const std::lock_guard<std::mutex> lock(mutex);
                              skipped.push_back(m);
                            }));
  for (int epoch = 0; epoch < 2; ++epoch) {
    skip.start_epoch(epoch);
    const dd::Batch batch = skip.batch(0);
    EXPECT_EQ(batch.images.size(0), 6);
    // The broken cat image is replaced by the next one: a dog.
    EXPECT_EQ(batch.labels[3].item<int64_t>(), 2);
  }
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("zz-broken.jpg: not a readable JPEG file"), std::string::npos);
  EXPECT_NE(skipped[0].find("skipped"), std::string::npos);
}
