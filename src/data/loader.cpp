#include "dnn_gating/data/loader.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "dnn_gating/setting_error.h"

namespace dnn_gating::data {
namespace {

constexpr int64_t kPad = 4;  // RandomCrop(32, padding=4)

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Uniform in [0, n). Written out (not std::uniform_int_distribution, whose
/// algorithm the standard leaves open) so a seed gives the same epochs with
/// every standard library.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // reject the biased tail
  uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % n;
}

}  // namespace

BatchLoader::BatchLoader(const ImageSet& set, LoaderOptions options)
    : set_(set), options_(std::move(options)) {
  check_setting(
      options_.batch_size() > 0, "batch_size",
      "BatchLoader: {batch_size} must be positive, got " + std::to_string(options_.batch_size()));
  TORCH_CHECK(
      set_.images.defined() && set_.images.dim() == 4 && set_.images.scalar_type() == torch::kUInt8,
      "BatchLoader: images must be uint8 [N, C, H, W]");
  TORCH_CHECK(set_.images.size(2) >= 2 * kPad && set_.images.size(3) >= 2 * kPad,
              "BatchLoader: images must be at least ", 2 * kPad, "x", 2 * kPad, ", got ",
              set_.images.size(2), "x", set_.images.size(3));
  TORCH_CHECK(set_.labels.defined() && set_.labels.dim() == 1 && set_.labels.size(0) == set_.size(),
              "BatchLoader: need one label per image (", set_.size(), " images)");
  const int64_t channels = set_.channels();
  TORCH_CHECK(static_cast<int64_t>(set_.mean.size()) == channels &&
                  static_cast<int64_t>(set_.std.size()) == channels,
              "BatchLoader: need one mean and std per channel (", channels, "), got ",
              set_.mean.size(), " and ", set_.std.size());
  // batch() reads raw pointers, so hold contiguous int64 labels and bytes.
  set_.images = set_.images.contiguous();
  set_.labels = set_.labels.to(torch::kLong).contiguous();

  // A byte has only 256 values per channel: look the normalised float up
  // rather than compute it per pixel. Same float arithmetic as
  // (x.float() / 255 - mean) / std in torch.
  lut_.resize(static_cast<size_t>(channels) * 256);
  for (int64_t c = 0; c < channels; ++c) {
    TORCH_CHECK(set_.std[c] > 0, "BatchLoader: std of channel ", c, " must be positive, got ",
                set_.std[c]);
    for (int b = 0; b < 256; ++b) {
      lut_[c * 256 + b] = (static_cast<float>(b) / 255.0f - set_.mean[c]) / set_.std[c];
    }
  }
  start_epoch(0);
}

int64_t BatchLoader::num_batches() const {
  return (set_.size() + options_.batch_size() - 1) / options_.batch_size();
}

void BatchLoader::start_epoch(int64_t epoch) {
  const int64_t n = set_.size();
  std::mt19937_64 rng(splitmix64(options_.seed() ^ splitmix64(static_cast<uint64_t>(epoch))));
  order_.resize(n);
  std::iota(order_.begin(), order_.end(), 0);
  if (options_.shuffle()) {
    for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
      std::swap(order_[i], order_[uniform_below(rng, static_cast<uint64_t>(i) + 1)]);
    }
  }
  if (options_.augment()) {
    dy_.resize(n);
    dx_.resize(n);
    flip_.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      dy_[i] = static_cast<uint8_t>(uniform_below(rng, 2 * kPad + 1));
      dx_[i] = static_cast<uint8_t>(uniform_below(rng, 2 * kPad + 1));
      flip_[i] = static_cast<uint8_t>(rng() >> 63);
    }
  }
}

std::pair<int64_t, int64_t> shard_of(int64_t count, int64_t part, int64_t parts) {
  const int64_t base = count / parts, extra = count % parts;
  return {part * base + std::min(part, extra), base + (part < extra ? 1 : 0)};
}

Batch BatchLoader::batch(int64_t index, int64_t part, int64_t parts) const {
  TORCH_CHECK(index >= 0 && index < num_batches(), "BatchLoader: batch index ", index,
              " out of range [0, ", num_batches(), ")");
  TORCH_CHECK(parts >= 1 && part >= 0 && part < parts, "BatchLoader: part ", part, " of ", parts);
  const int64_t whole =
      std::min(options_.batch_size(), set_.size() - index * options_.batch_size());
  const auto [first, count] = shard_of(whole, part, parts);
  const int64_t begin = index * options_.batch_size() + first;
  const int64_t channels = set_.channels();
  const int64_t height = set_.images.size(2);
  const int64_t width = set_.images.size(3);
  const int64_t plane = height * width;

  Batch out;
  const auto in_memory = torch::TensorOptions().pinned_memory(options_.pin_memory());
  out.images = torch::empty({count, channels, height, width}, in_memory.dtype(torch::kFloat));
  out.labels = torch::empty({count}, in_memory.dtype(torch::kLong));
  const uint8_t* source = set_.images.data_ptr<uint8_t>();
  const int64_t* labels = set_.labels.data_ptr<int64_t>();
  float* target = out.images.data_ptr<float>();
  int64_t* target_labels = out.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) target_labels[i] = labels[order_[begin + i]];

  const bool augment = options_.augment();
  at::parallel_for(0, count, /*grain_size=*/8, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      const int64_t position = begin + i;
      // Output (y, x) takes padded (y + dy, x' + dx) with x' = x, or W-1-x
      // after a flip; in unpadded coordinates that is (y + dy - pad, x' + dx - pad).
      const int64_t dy = augment ? dy_[position] : kPad;
      const int64_t dx = augment ? dx_[position] : kPad;
      const bool flip = augment && flip_[position] != 0;
      const int64_t x0 = flip ? width - 1 + dx - kPad : dx - kPad;  // source column of x = 0
      // Output columns whose source column lies inside the image.
      const int64_t x_lo =
          flip ? std::max<int64_t>(0, x0 - (width - 1)) : std::max<int64_t>(0, -x0);
      const int64_t x_hi =
          flip ? std::min<int64_t>(width, x0 + 1) : std::min<int64_t>(width, width - x0);
      const uint8_t* image = source + order_[position] * channels * plane;
      float* result = target + i * channels * plane;
      for (int64_t c = 0; c < channels; ++c) {
        const float* lut = lut_.data() + c * 256;
        const float zero = lut[0];  // padding is byte 0, normalised like any pixel
        for (int64_t y = 0; y < height; ++y) {
          float* row = result + c * plane + y * width;
          const int64_t sy = y + dy - kPad;
          if (sy < 0 || sy >= height) {
            std::fill(row, row + width, zero);
            continue;
          }
          const uint8_t* source_row = image + c * plane + sy * width;
          std::fill(row, row + x_lo, zero);
          if (flip) {
            for (int64_t x = x_lo; x < x_hi; ++x) row[x] = lut[source_row[x0 - x]];
          } else {
            for (int64_t x = x_lo; x < x_hi; ++x) row[x] = lut[source_row[x0 + x]];
          }
          std::fill(row + x_hi, row + width, zero);
        }
      }
    }
  });
  return out;
}

}  // namespace dnn_gating::data
