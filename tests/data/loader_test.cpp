#include "dnn_gating/data/loader.h"

#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include "dnn_gating/setting_error.h"
#include "test_support.h"

namespace dnn_gating::data {
namespace {

using dnn_gating::testing::all_close;

/// n random CIFAR-shaped images; label i is i, so a batch's labels show which
/// images it holds.
ImageSet random_set(int64_t n, uint64_t seed = 7) {
  torch::manual_seed(seed);
  ImageSet set;
  set.images = torch::randint(0, 256, {n, 3, 32, 32}, torch::kUInt8);
  set.labels = torch::arange(n, torch::kLong);
  set.mean = {0.485f, 0.456f, 0.406f};
  set.std = {0.229f, 0.224f, 0.225f};
  set.class_names = std::vector<std::string>(10, "c");
  set.name = "random";
  return set;
}

/// (x / 255 - mean) / std in double, computed independently of the loader.
torch::Tensor normalised(const torch::Tensor& bytes, const ImageSet& set) {
  const auto c = static_cast<int64_t>(set.mean.size());
  const torch::Tensor mean = torch::tensor(std::vector<double>(set.mean.begin(), set.mean.end()));
  const torch::Tensor stdev = torch::tensor(std::vector<double>(set.std.begin(), set.std.end()));
  return (bytes.to(torch::kDouble) / 255 - mean.view({c, 1, 1})) / stdev.view({c, 1, 1});
}

/// torchvision's RandomCrop(32, padding=4) at offset (dy, dx), then an optional flip.
torch::Tensor crop(const torch::Tensor& image, int64_t dy, int64_t dx, bool flip) {
  torch::Tensor padded = torch::constant_pad_nd(image, {4, 4, 4, 4}, 0);
  torch::Tensor out = padded.slice(1, dy, dy + 32).slice(2, dx, dx + 32);
  return flip ? out.flip({2}) : out;
}

/// All batches of the current epoch, concatenated.
Batch whole_epoch(const BatchLoader& loader) {
  std::vector<torch::Tensor> images;
  std::vector<torch::Tensor> labels;
  for (int64_t b = 0; b < loader.num_batches(); ++b) {
    Batch batch = loader.batch(b);
    images.push_back(batch.images);
    labels.push_back(batch.labels);
  }
  return {torch::cat(images), torch::cat(labels)};
}

TEST(LoaderBatches, CountAndLastBatchSize) {
  const ImageSet set = random_set(10);
  BatchLoader loader(set, LoaderOptions(4));
  ASSERT_EQ(loader.num_batches(), 3);
  EXPECT_EQ(loader.size(), 10);
  EXPECT_EQ(loader.batch(0).images.sizes(), (std::vector<int64_t>{4, 3, 32, 32}));
  EXPECT_EQ(loader.batch(1).images.size(0), 4);
  const Batch last = loader.batch(2);
  EXPECT_EQ(last.images.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(last.labels, torch::tensor({8, 9}, torch::kLong)));
  EXPECT_EQ(last.images.scalar_type(), torch::kFloat);
  EXPECT_EQ(last.labels.scalar_type(), torch::kLong);

  EXPECT_EQ(BatchLoader(set, LoaderOptions(5)).num_batches(), 2);
  EXPECT_EQ(BatchLoader(set, LoaderOptions(128)).num_batches(), 1);
  EXPECT_EQ(BatchLoader(set, LoaderOptions(1)).num_batches(), 10);
}

TEST(LoaderBatches, RejectsBadArguments) {
  const ImageSet set = random_set(10);
  EXPECT_THROW(BatchLoader(set, LoaderOptions(0)), SettingError);
  BatchLoader loader(set, LoaderOptions(4));
  EXPECT_THROW(loader.batch(3), c10::Error);
  EXPECT_THROW(loader.batch(-1), c10::Error);
  ImageSet bad = set;
  bad.std = {0.2f};
  EXPECT_THROW(BatchLoader(bad, LoaderOptions(4)), c10::Error);
}

TEST(LoaderNormalisation, KnownByteValues) {
  ImageSet set = random_set(2);
  set.images.fill_(128);
  set.images[1].fill_(0);
  const Batch batch = BatchLoader(set, LoaderOptions(2)).batch(0);
  // (128/255 - mean) / std, by hand.
  EXPECT_NEAR(batch.images[0][0][5][7].item<float>(), 0.0740645f, 1e-5);
  EXPECT_NEAR(batch.images[0][1][5][7].item<float>(), 0.2051820f, 1e-5);
  EXPECT_NEAR(batch.images[0][2][5][7].item<float>(), 0.4264924f, 1e-5);
  // Byte 0 is -mean / std.
  EXPECT_NEAR(batch.images[1][0][0][0].item<float>(), -2.1179039f, 1e-5);
  EXPECT_NEAR(batch.images[1][1][31][31].item<float>(), -2.0357143f, 1e-5);
  EXPECT_NEAR(batch.images[1][2][9][0].item<float>(), -1.8044444f, 1e-5);
}

TEST(LoaderNormalisation, SingleChannelFashionMnistConstants) {
  ImageSet set;
  set.images = torch::zeros({3, 1, 32, 32}, torch::kUInt8);
  set.images[1].fill_(255);
  set.labels = torch::tensor({4, 5, 6}, torch::kLong);
  set.mean = {0.2860f};
  set.std = {0.3530f};
  const Batch batch = BatchLoader(set, LoaderOptions(3)).batch(0);
  EXPECT_NEAR(batch.images[0][0][3][3].item<float>(), -0.8101983f, 1e-5);
  EXPECT_NEAR(batch.images[1][0][3][3].item<float>(), 2.0226629f, 1e-5);
  EXPECT_TRUE(torch::equal(batch.labels, torch::tensor({4, 5, 6}, torch::kLong)));
}

TEST(LoaderNormalisation, WithoutAugmentEqualsThePlainNormalisedImages) {
  const ImageSet set = random_set(37);
  BatchLoader loader(set, LoaderOptions(16));
  for (int64_t epoch : {0, 1}) {
    loader.start_epoch(epoch);
    const Batch all = whole_epoch(loader);
    EXPECT_TRUE(torch::equal(all.labels, torch::arange(37, torch::kLong)));
    EXPECT_TRUE(all_close(all.images, normalised(set.images, set), 1e-6, 1e-6));
  }
}

TEST(LoaderAugment, EachImageIsOneCropAndFlipOfThePaddedImage) {
  const ImageSet set = random_set(24);
  BatchLoader loader(set, LoaderOptions(24).augment(true).seed(3));
  const Batch batch = loader.batch(0);
  int flipped = 0;
  for (int64_t i = 0; i < 24; ++i) {
    const torch::Tensor image = set.images[i];
    std::vector<std::tuple<int64_t, int64_t, bool>> matches;
    for (int64_t dy = 0; dy <= 8; ++dy) {
      for (int64_t dx = 0; dx <= 8; ++dx) {
        for (bool flip : {false, true}) {
          const torch::Tensor expected = normalised(crop(image, dy, dx, flip), set);
          if (torch::allclose(batch.images[i].to(torch::kDouble), expected, 1e-6, 1e-6)) {
            matches.emplace_back(dy, dx, flip);
          }
        }
      }
    }
    ASSERT_EQ(matches.size(), 1u) << "image " << i << " is not exactly one crop";
    flipped += std::get<2>(matches[0]);
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, 24);
}

/// An image whose bytes encode their position: channel 0 is 1 + column,
/// channel 1 is 1 + row, channel 2 is 200. The crop offset and flip of an
/// augmented copy can then be read off its pixels.
ImageSet position_set(int64_t n) {
  ImageSet set = random_set(n);
  const torch::Tensor column = torch::arange(1, 33, torch::kUInt8).view({1, 32}).expand({32, 32});
  set.images.select(1, 0).copy_(column.expand({n, 32, 32}));
  set.images.select(1, 1).copy_(column.t().expand({n, 32, 32}));
  set.images.select(1, 2).fill_(200);
  return set;
}

/// Byte value behind a normalised float of channel c.
int byte_of(float value, const ImageSet& set, int c) {
  return static_cast<int>(std::lround((value * set.std[c] + set.mean[c]) * 255));
}

TEST(LoaderAugment, HandComputedCropOfAPositionImage) {
  const ImageSet set = position_set(64);
  BatchLoader loader(set, LoaderOptions(64).augment(true).seed(11));
  const Batch batch = loader.batch(0);
  auto out = batch.images.accessor<float, 4>();
  bool saw_flip = false;
  bool saw_plain = false;
  for (int64_t i = 0; i < 64; ++i) {
    // Pixel (16, 16) always comes from inside the image: its row byte is
    // 1 + (16 + dy - 4) = 13 + dy and its column byte 1 + (16 + dx - 4) = 13 + dx,
    // or, flipped, 1 + (31 - 16 + dx - 4) = 12 + dx, with columns running backwards.
    const bool flip = byte_of(out[i][0][16][17], set, 0) < byte_of(out[i][0][16][16], set, 0);
    const int64_t dy = byte_of(out[i][1][16][16], set, 1) - 13;
    const int64_t dx = byte_of(out[i][0][16][16], set, 0) - (flip ? 12 : 13);
    ASSERT_GE(dy, 0);
    ASSERT_LE(dy, 8);
    ASSERT_GE(dx, 0);
    ASSERT_LE(dx, 8);
    (flip ? saw_flip : saw_plain) = true;
    // Every output pixel, written out: source (y + dy - 4, x' + dx - 4) with
    // x' = 31 - x when flipped; outside the image the zero byte.
    for (int64_t y = 0; y < 32; ++y) {
      for (int64_t x = 0; x < 32; ++x) {
        const int64_t sy = y + dy - 4;
        const int64_t sx = (flip ? 31 - x : x) + dx - 4;
        const bool inside = sy >= 0 && sy < 32 && sx >= 0 && sx < 32;
        const int expected[3] = {inside ? static_cast<int>(1 + sx) : 0,
                                 inside ? static_cast<int>(1 + sy) : 0, inside ? 200 : 0};
        for (int c = 0; c < 3; ++c) {
          const float value = (expected[c] / 255.0f - set.mean[c]) / set.std[c];
          ASSERT_NEAR(out[i][c][y][x], value, 1e-5)
              << "image " << i << " c " << c << " y " << y << " x " << x << " dy " << dy << " dx "
              << dx << " flip " << flip;
        }
      }
    }
  }
  EXPECT_TRUE(saw_flip);
  EXPECT_TRUE(saw_plain);
}

TEST(LoaderAugment, OffsetsAndFlipsAreUniform) {
  const int64_t n = 4000;
  const ImageSet set = position_set(n);
  BatchLoader loader(set, LoaderOptions(512).augment(true).seed(5));
  const Batch all = whole_epoch(loader);
  auto out = all.images.accessor<float, 4>();
  std::vector<int64_t> dy_count(9), dx_count(9);
  std::set<std::pair<int64_t, int64_t>> pairs;
  int64_t flips = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool flip = byte_of(out[i][0][16][17], set, 0) < byte_of(out[i][0][16][16], set, 0);
    const int64_t dy = byte_of(out[i][1][16][16], set, 1) - 13;
    const int64_t dx = byte_of(out[i][0][16][16], set, 0) - (flip ? 12 : 13);
    ASSERT_TRUE(dy >= 0 && dy <= 8 && dx >= 0 && dx <= 8) << dy << " " << dx;
    ++dy_count[dy];
    ++dx_count[dx];
    pairs.emplace(dy, dx);
    flips += flip;
  }
  // Expected 4000/9 = 444 each, standard deviation about 20.
  for (int k = 0; k < 9; ++k) {
    EXPECT_GT(dy_count[k], 344) << "dy " << k;
    EXPECT_LT(dy_count[k], 544) << "dy " << k;
    EXPECT_GT(dx_count[k], 344) << "dx " << k;
    EXPECT_LT(dx_count[k], 544) << "dx " << k;
  }
  EXPECT_EQ(pairs.size(), 81u);
  EXPECT_GT(flips, 1850);  // 2000 +- 32 (1 sd)
  EXPECT_LT(flips, 2150);
}

TEST(LoaderOrder, SameSeedAndEpochGiveTheSameBatches) {
  const ImageSet set = random_set(50);
  const auto options = LoaderOptions(16).augment(true).shuffle(true).seed(42);
  BatchLoader a(set, options);
  BatchLoader b(set, options);
  a.start_epoch(3);
  b.start_epoch(7);
  b.start_epoch(3);
  for (int64_t i = 0; i < a.num_batches(); ++i) {
    EXPECT_TRUE(torch::equal(a.batch(i).images, b.batch(i).images)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a.batch(i).labels, b.batch(i).labels)) << "batch " << i;
  }
  // batch() depends only on the epoch, not on what was served before.
  const Batch again = a.batch(1);
  EXPECT_TRUE(torch::equal(again.images, b.batch(1).images));
}

TEST(LoaderOrder, PinnedOrderForSeedAndEpoch) {
  // Guards reproducibility of runs: a change here changes every shuffled training run.
  BatchLoader loader(random_set(10), LoaderOptions(10).shuffle(true).seed(1));
  const torch::Tensor epoch0 = loader.batch(0).labels;
  EXPECT_TRUE(torch::equal(epoch0, torch::tensor({4, 6, 8, 9, 3, 5, 7, 2, 0, 1}, torch::kLong)))
      << epoch0;
  loader.start_epoch(1);
  const torch::Tensor epoch1 = loader.batch(0).labels;
  EXPECT_TRUE(torch::equal(epoch1, torch::tensor({4, 3, 6, 5, 8, 7, 2, 0, 1, 9}, torch::kLong)))
      << epoch1;
}

TEST(LoaderOrder, DifferentEpochsAndSeedsGiveDifferentOrders) {
  const ImageSet set = random_set(100);
  BatchLoader loader(set, LoaderOptions(32).shuffle(true).seed(9));
  const torch::Tensor epoch0 = whole_epoch(loader).labels;
  loader.start_epoch(1);
  const torch::Tensor epoch1 = whole_epoch(loader).labels;
  EXPECT_FALSE(torch::equal(epoch0, epoch1));
  EXPECT_FALSE(torch::equal(epoch0, torch::arange(100, torch::kLong)));
  BatchLoader other(set, LoaderOptions(32).shuffle(true).seed(10));
  EXPECT_FALSE(torch::equal(epoch0, whole_epoch(other).labels));
}

TEST(LoaderOrder, EveryImageExactlyOncePerEpochWithItsOwnLabel) {
  const ImageSet set = random_set(45);
  BatchLoader loader(set, LoaderOptions(8).shuffle(true).seed(2));
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    loader.start_epoch(epoch);
    const Batch all = whole_epoch(loader);
    ASSERT_EQ(all.labels.size(0), 45);
    EXPECT_TRUE(torch::equal(std::get<0>(all.labels.sort()), torch::arange(45, torch::kLong)));
    // Without augment, the image at each position is the one its label names.
    EXPECT_TRUE(
        all_close(all.images, normalised(set.images.index_select(0, all.labels), set), 1e-6, 1e-6));
  }
}

TEST(LoaderOrder, WithoutShuffleTheOrderIsFixedButAugmentChanges) {
  const ImageSet set = random_set(20);
  BatchLoader loader(set, LoaderOptions(20).augment(true).seed(4));
  const Batch epoch0 = loader.batch(0);
  loader.start_epoch(1);
  const Batch epoch1 = loader.batch(0);
  EXPECT_TRUE(torch::equal(epoch0.labels, torch::arange(20, torch::kLong)));
  EXPECT_TRUE(torch::equal(epoch1.labels, torch::arange(20, torch::kLong)));
  EXPECT_FALSE(torch::equal(epoch0.images, epoch1.images));
}

TEST(LoaderOrder, BatchIsSafeToCallFromSeveralThreads) {
  const ImageSet set = random_set(64);
  const BatchLoader loader(set, LoaderOptions(8).augment(true).shuffle(true).seed(8));
  std::vector<Batch> first(loader.num_batches());
  std::vector<Batch> second(loader.num_batches());
  std::thread t1([&] {
    for (int64_t i = 0; i < loader.num_batches(); ++i) first[i] = loader.batch(i);
  });
  std::thread t2([&] {
    for (int64_t i = loader.num_batches() - 1; i >= 0; --i) second[i] = loader.batch(i);
  });
  t1.join();
  t2.join();
  for (int64_t i = 0; i < loader.num_batches(); ++i) {
    EXPECT_TRUE(torch::equal(first[i].images, second[i].images));
    EXPECT_TRUE(torch::equal(first[i].labels, second[i].labels));
  }
}

}  // namespace
}  // namespace dnn_gating::data
