// Image folders: JPEG and PNG decoding of every colour type, the folder
// layout, torchvision's transforms (their random draws' distributions and
// where they sample), and batches decoded on worker threads that are the
// same whatever the threads and their timing.
#include "dnn_gating/data/image_folder.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <fstream>
#include <functional>
#include <random>

#include "data/image_transforms.h"
#include "dnn_gating/data/folder_loader.h"
#include "dnn_gating/data/image_file.h"
#include "dnn_gating/report/png.h"
#include "jpeg_writer.h"
#include "png_writer.h"
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

// Samples (each below 2^bits) packed into a PNG row: most significant bits
// first below 8 bits, big-endian at 16.
std::vector<uint8_t> packed_row(const std::vector<int>& samples, int bits) {
  std::vector<uint8_t> out((samples.size() * bits + 7) / 8, 0);
  for (size_t i = 0; i < samples.size(); ++i) {
    if (bits == 16) {
      out[2 * i] = static_cast<uint8_t>(samples[i] >> 8);
      out[2 * i + 1] = static_cast<uint8_t>(samples[i] & 255);
    } else {
      const size_t bit = i * bits;
      out[bit / 8] |= static_cast<uint8_t>(samples[i] << (8 - bits - bit % 8));
    }
  }
  return out;
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

// PNGs of every colour type and bit depth, written with libpng, decode to
// the RGB torchvision's loader (PIL's convert("RGB")) sees: palette entries
// looked up, grey repeated in three channels, low bit depths scaled to
// 0-255, alpha (and a palette's tRNS) dropped without blending, 16-bit
// samples reduced to their high byte, Adam7 interlacing undone.
TEST(ImageFile, DecodesEveryPngColourTypeToItsRgb) {
  using dgt::PngColour;
  constexpr int kWidth = 13, kHeight = 11;  // odd: rows of low bit depths end inside a byte
  const auto red = [](int x, int y) { return (x * 19 + y * 7) % 256; };
  const auto green = [](int x, int y) { return (x * 5 + y * 23 + 40) % 256; };
  const auto blue = [](int x, int y) { return (x * x + y * 3) % 256; };
  const auto alpha = [](int x, int y) { return (x * 50 + y * 9) % 256; };
  const auto low = [](int x, int y) { return (x * 13 + y * 17 + 5) % 256; };  // a low byte
  const std::vector<uint8_t> palette{255, 0, 0, 0, 255, 0, 0, 0, 255, 17, 34, 51, 200, 100, 50};
  const auto entry = [&](int i) {
    return std::array<int, 3>{palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]};
  };
  struct Case {
    std::string name;
    PngColour colour;
    int bits;
    bool interlaced;
    std::vector<uint8_t> transparency;
    // The samples of pixel (x, y) as stored, and the RGB the reader must give.
    std::function<std::vector<int>(int, int)> samples;
    std::function<std::array<int, 3>(int, int)> rgb;
  };
  const auto grey = [&](int x, int y) {
    return std::array<int, 3>{red(x, y), red(x, y), red(x, y)};
  };
  const auto colour = [&](int x, int y) {
    return std::array<int, 3>{red(x, y), green(x, y), blue(x, y)};
  };
  const auto wide = [&](int high, int x, int y) { return high * 256 + (low(x, y) + high) % 256; };
  const std::vector<Case> cases{
      {"palette 8-bit",
       PngColour::kPalette,
       8,
       false,
       {},
       [](int x, int y) { return std::vector<int>{(x + 2 * y) % 5}; },
       [&](int x, int y) { return entry((x + 2 * y) % 5); }},
      {"palette 2-bit with tRNS",
       PngColour::kPalette,
       2,
       false,
       {0, 128},
       [](int x, int y) { return std::vector<int>{(x + y) % 4}; },
       [&](int x, int y) { return entry((x + y) % 4); }},
      {"palette 4-bit interlaced",
       PngColour::kPalette,
       4,
       true,
       {},
       [](int x, int y) { return std::vector<int>{(3 * x + y) % 5}; },
       [&](int x, int y) { return entry((3 * x + y) % 5); }},
      {"grey 1-bit",
       PngColour::kGrey,
       1,
       false,
       {},
       [](int x, int y) { return std::vector<int>{(x + y) % 2}; },
       [](int x, int y) {
         const int v = (x + y) % 2 * 255;
         return std::array<int, 3>{v, v, v};
       }},
      {"grey 2-bit",
       PngColour::kGrey,
       2,
       false,
       {},
       [](int x, int y) { return std::vector<int>{(x + 2 * y) % 4}; },
       [](int x, int y) {
         const int v = (x + 2 * y) % 4 * 85;
         return std::array<int, 3>{v, v, v};
       }},
      {"grey 4-bit",
       PngColour::kGrey,
       4,
       false,
       {},
       [](int x, int y) { return std::vector<int>{(3 * x + y) % 16}; },
       [](int x, int y) {
         const int v = (3 * x + y) % 16 * 17;
         return std::array<int, 3>{v, v, v};
       }},
      {"grey 8-bit",
       PngColour::kGrey,
       8,
       false,
       {},
       [&](int x, int y) { return std::vector<int>{red(x, y)}; },
       grey},
      {"grey 16-bit",
       PngColour::kGrey,
       16,
       false,
       {},
       [&](int x, int y) { return std::vector<int>{wide(red(x, y), x, y)}; },
       grey},
      {"grey and alpha 8-bit",
       PngColour::kGreyAlpha,
       8,
       false,
       {},
       [&](int x, int y) {
         return std::vector<int>{red(x, y), alpha(x, y)};
       },
       grey},
      {"grey and alpha 16-bit",
       PngColour::kGreyAlpha,
       16,
       false,
       {},
       [&](int x, int y) {
         return std::vector<int>{wide(red(x, y), x, y), wide(alpha(x, y), y, x)};
       },
       grey},
      {"RGB 8-bit interlaced",
       PngColour::kRgb,
       8,
       true,
       {},
       [&](int x, int y) {
         return std::vector<int>{red(x, y), green(x, y), blue(x, y)};
       },
       colour},
      {"RGB 16-bit",
       PngColour::kRgb,
       16,
       false,
       {},
       [&](int x, int y) {
         return std::vector<int>{wide(red(x, y), x, y), wide(green(x, y), y, x),
                                 wide(blue(x, y), x, x)};
       },
       colour},
      {"RGBA 8-bit",
       PngColour::kRgba,
       8,
       false,
       {},
       [&](int x, int y) {
         return std::vector<int>{red(x, y), green(x, y), blue(x, y), alpha(x, y)};
       },
       colour},
      {"RGBA 16-bit interlaced",
       PngColour::kRgba,
       16,
       true,
       {},
       [&](int x, int y) {
         return std::vector<int>{wide(red(x, y), x, y), wide(green(x, y), y, x),
                                 wide(blue(x, y), x, x), wide(alpha(x, y), y, y)};
       },
       colour},
  };
  for (const Case& c : cases) {
    dgt::PngLayout layout;
    layout.width = kWidth;
    layout.height = kHeight;
    layout.colour = c.colour;
    layout.bit_depth = c.bits;
    layout.interlaced = c.interlaced;
    if (c.colour == PngColour::kPalette) {  // as many entries as the bit depth indexes
      layout.palette.assign(
          palette.begin(),
          palette.begin() + 3 * std::min<size_t>(palette.size() / 3, 1u << c.bits));
    }
    layout.transparency = c.transparency;
    std::vector<uint8_t> rows;
    for (int y = 0; y < kHeight; ++y) {
      std::vector<int> samples;
      for (int x = 0; x < kWidth; ++x) {
        for (const int v : c.samples(x, y)) samples.push_back(v);
      }
      const auto row = packed_row(samples, c.bits);
      rows.insert(rows.end(), row.begin(), row.end());
    }
    const std::string file = dgt::encode_png_samples(rows, layout);
    ASSERT_EQ(file[28], c.interlaced ? 1 : 0) << c.name << ": IHDR's interlace method";
    dd::RgbImage image;
    try {
      image = dd::decode_image(file, "case.png");
    } catch (const std::exception& e) {
      ADD_FAILURE() << c.name << ": " << e.what();
      continue;
    }
    ASSERT_EQ(image.width, kWidth) << c.name;
    ASSERT_EQ(image.height, kHeight) << c.name;
    int wrong = 0;
    for (int y = 0; y < kHeight; ++y) {
      for (int x = 0; x < kWidth; ++x) {
        const uint8_t* got = image.rgb.data() + (y * kWidth + x) * 3;
        const std::array<int, 3> want = c.rgb(x, y);
        if (wrong < 3 && (got[0] != want[0] || got[1] != want[1] || got[2] != want[2])) {
          ++wrong;
          ADD_FAILURE() << c.name << " pixel (" << x << ", " << y << "): (" << int(got[0]) << ", "
                        << int(got[1]) << ", " << int(got[2]) << "), expected (" << want[0] << ", "
                        << want[1] << ", " << want[2] << ")";
        }
      }
    }
  }
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

// torchvision draws the area fraction s ~ U(0.08, 1) and the log aspect
// u = log(w / h) ~ U(-a, a), a = log(4/3), and draws again (up to ten
// times) while the box does not fit. In a square image (s, u) fits where
// s <= e^-|u|, which holds for every u below s = e^-a = 3/4: the crops of
// area fraction at most 3/4 are (s, u) uniform over [0.08, 3/4] x [-a, a],
// so s has mean 0.415 and variance 0.67^2 / 12 there, u mean 0 and variance
// (2a)^2 / 12. They are the share 0.67 * 2a / (2 (1 - e^-a) - 0.16 a) =
// 0.67 a / (0.25 - 0.08 a) = 0.849 of all crops: that rectangle's area over
// the area of the region that fits, {0.08 <= s <= e^-|u|}.
TEST(ImageTransforms, RandomResizedCropDrawsTorchvisionsScaleAndAspect) {
  std::mt19937_64 rng(17);
  constexpr int64_t kSide = 1000;
  constexpr int kDraws = 20000;
  const double a = std::log(4.0 / 3.0);
  int64_t kept = 0;
  double sum_s = 0, sum_s2 = 0, sum_u = 0, sum_u2 = 0, min_s = 1, max_u = 0;
  for (int i = 0; i < kDraws; ++i) {
    const dd::CropBox b = dd::random_resized_crop(kSide, kSide, rng);
    ASSERT_TRUE(b.top >= 0 && b.left >= 0 && b.top + b.height <= kSide &&
                b.left + b.width <= kSide);
    const double s = static_cast<double>(b.height * b.width) / (kSide * kSide);
    const double u = std::log(static_cast<double>(b.width) / static_cast<double>(b.height));
    min_s = std::min(min_s, s);
    max_u = std::max(max_u, std::abs(u));
    if (s > 0.75) continue;
    ++kept;
    sum_s += s;
    sum_s2 += s * s;
    sum_u += u;
    sum_u2 += u * u;
  }
  const double n = static_cast<double>(kept);
  const double mean_s = sum_s / n, mean_u = sum_u / n;
  const double var_s = sum_s2 / n - mean_s * mean_s, var_u = sum_u2 / n - mean_u * mean_u;
  // Tolerances: four standard errors at this sample size, plus 1e-3 for w
  // and h rounded to whole pixels (at least 245 of them here, so 0.2 % each,
  // as often up as down). A uniform variable of width L has variance L^2/12
  // and a sample variance of standard error L^2 sqrt(1/80 - 1/144) / sqrt(n).
  const auto mean_tolerance = [n](double width) {
    return 4 * width / std::sqrt(12.0) / std::sqrt(n) + 1e-3;
  };
  const auto variance_tolerance = [n](double width) {
    return 4 * width * width * std::sqrt(1.0 / 80 - 1.0 / 144) / std::sqrt(n) + 1e-3 * width;
  };
  const double share = 0.67 * a / (0.25 - 0.08 * a);  // 0.849
  EXPECT_NEAR(n / kDraws, share, 4 * std::sqrt(share * (1 - share) / kDraws));
  EXPECT_NEAR(mean_s, (0.08 + 0.75) / 2, mean_tolerance(0.67));
  EXPECT_NEAR(var_s, 0.67 * 0.67 / 12, variance_tolerance(0.67));
  EXPECT_NEAR(mean_u, 0.0, mean_tolerance(2 * a));
  EXPECT_NEAR(var_u, 4 * a * a / 12, variance_tolerance(2 * a));
  // The ranges' ends are reached (each within 1 % of them: among 20000
  // draws, hundreds fall there), never passed beyond rounding.
  EXPECT_GT(min_s, 0.08 - 0.002);
  EXPECT_LT(min_s, 0.09);
  EXPECT_LT(max_u, a + 0.005);
  EXPECT_GT(max_u, a - 0.01);
}

// Resize(round(size * 256 / 224)) then CenterCrop(size), where torchvision
// samples: a linear ramp resampled by PIL's bilinear filter is the ramp at
// each output pixel's centre (minus half a pixel, the pixels' own centres)
// wherever the filter is symmetric and inside the image.
TEST(ImageTransforms, ResizeCenterCropSamplesWhereTorchvisionDoes) {
  const std::vector<float> zero{0, 0, 0}, one{1.0f / 255, 1.0f / 255, 1.0f / 255};
  const auto ramps = [](int width, int height, const std::function<int(int)>& across,
                        const std::function<int(int)>& down, const std::function<int(int)>& third) {
    dd::RgbImage image{width, height, {}};
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        image.rgb.insert(image.rgb.end(),
                         {static_cast<uint8_t>(across(x)), static_cast<uint8_t>(down(y)),
                          static_cast<uint8_t>(third(x))});
      }
    }
    return image;
  };
  {
    // Upscaled, portrait, 40 x 51 to 56: the shorter side to round(56 *
    // 256 / 224) = 64, the longer to int(64 * 51 / 40) = int(81.6) = 81;
    // crop offsets (64 - 56) / 2 = 4 and round(25 / 2) = 12 (Python rounds
    // half to even). Upscaling, the filter is a triangle one input pixel
    // wide: exact on a ramp while both its taps are inside.
    const auto f = [](double x) { return 5 * x + 10; };
    const auto g = [](double y) { return 4 * y + 20; };
    const dd::RgbImage image = ramps(
        40, 51, [&](int x) { return static_cast<int>(f(x)); },
        [&](int y) { return static_cast<int>(g(y)); }, [](int) { return 90; });
    std::vector<float> out(3 * 56 * 56);
    dd::resize_center_crop_into(image, 56, zero, one, out.data());
    for (int i = 0; i < 56; ++i) {
      for (int j = 0; j < 56; ++j) {
        const double x = (4 + j + 0.5) * 40.0 / 64.0 - 0.5, y = (12 + i + 0.5) * 51.0 / 81.0 - 0.5;
        ASSERT_NEAR(out[0 * 56 * 56 + i * 56 + j], f(x), 1e-3) << "row " << i << ", column " << j;
        ASSERT_NEAR(out[1 * 56 * 56 + i * 56 + j], g(y), 1e-3) << "row " << i << ", column " << j;
        ASSERT_NEAR(out[2 * 56 * 56 + i * 56 + j], 90, 1e-3);
      }
    }
  }
  {
    // Downscaled by exactly 2, landscape, 96 x 64 to 28: resized to 48 x 32,
    // cropped at (32 - 28) / 2 = 2 and (48 - 28) / 2 = 10. The antialiased
    // filter is a triangle two input pixels wide each way: taps 2c - 1 .. 2c
    // + 2 of output pixel c weighted 1, 3, 3, 1 (/ 8), symmetric about 2c +
    // 0.5. So the ramps are sampled at 2 (10 + j) + 0.5 and 2 (2 + i) + 0.5,
    // and a single bright column 40 lands in resized columns 19 (weight 1/8)
    // and 20 (3/8): the crop's columns 9 and 10.
    const auto f = [](double x) { return 2 * x + 20; };
    const auto g = [](double y) { return 3 * y + 30; };
    const dd::RgbImage image = ramps(
        96, 64, [&](int x) { return static_cast<int>(f(x)); },
        [&](int y) { return static_cast<int>(g(y)); }, [](int x) { return x == 40 ? 200 : 0; });
    std::vector<float> out(3 * 28 * 28);
    dd::resize_center_crop_into(image, 28, zero, one, out.data());
    for (int i = 0; i < 28; ++i) {
      for (int j = 0; j < 28; ++j) {
        ASSERT_NEAR(out[0 * 28 * 28 + i * 28 + j], f(2 * (10 + j) + 0.5), 1e-3)
            << "row " << i << ", column " << j;
        ASSERT_NEAR(out[1 * 28 * 28 + i * 28 + j], g(2 * (2 + i) + 0.5), 1e-3)
            << "row " << i << ", column " << j;
        const double line = j == 9 ? 200.0 / 8 : j == 10 ? 200.0 * 3 / 8 : 0.0;
        ASSERT_NEAR(out[2 * 28 * 28 + i * 28 + j], line, 1e-3) << "row " << i << ", column " << j;
      }
    }
  }
}

// RandomResizedCrop's resize samples its box alone: a box of 12 x 15 at
// (top 10, left 20) of two ramps, upscaled to 24 x 24, holds the ramps at
// each output pixel's centre in the box, clamped to the box's first and last
// pixels (the taps stay inside the box, never reaching the pixels beside
// it); flipped, the same columns mirrored.
TEST(ImageTransforms, ResizedCropSamplesItsBoxAlone) {
  const std::vector<float> zero{0, 0, 0}, one{1.0f / 255, 1.0f / 255, 1.0f / 255};
  const auto f = [](double x) { return 3 * x + 5; };
  const auto g = [](double y) { return 4 * y + 7; };
  dd::RgbImage image{60, 50, {}};
  for (int y = 0; y < 50; ++y) {
    for (int x = 0; x < 60; ++x) {
      image.rgb.insert(image.rgb.end(),
                       {static_cast<uint8_t>(f(x)), static_cast<uint8_t>(g(y)), 0});
    }
  }
  const dd::CropBox box{/*top=*/10, /*left=*/20, /*height=*/15, /*width=*/12};
  for (const bool flip : {false, true}) {
    std::vector<float> out(3 * 24 * 24);
    dd::resized_crop_into(image, box, 24, flip, zero, one, out.data());
    for (int i = 0; i < 24; ++i) {
      for (int j = 0; j < 24; ++j) {
        const int source = flip ? 23 - j : j;
        const double x = 20 + std::clamp((source + 0.5) * 12.0 / 24.0 - 0.5, 0.0, 11.0);
        const double y = 10 + std::clamp((i + 0.5) * 15.0 / 24.0 - 0.5, 0.0, 14.0);
        ASSERT_NEAR(out[0 * 576 + i * 24 + j], f(x), 1e-3)
            << (flip ? "flipped, " : "") << "row " << i << ", column " << j;
        ASSERT_NEAR(out[1 * 576 + i * 24 + j], g(y), 1e-3)
            << (flip ? "flipped, " : "") << "row " << i << ", column " << j;
      }
    }
  }
}
