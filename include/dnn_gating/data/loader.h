#pragma once
/// A batch loader that turns uint8 images into normalised, optionally
/// augmented float batches in one parallel pass, fast enough never to limit a
/// training step.

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "dnn_gating/data/image_set.h"

namespace dnn_gating::data {

/// Options for BatchLoader.
struct LoaderOptions {
  /// `batch_size` images per batch (the last batch of an epoch may be smaller).
  explicit LoaderOptions(int64_t batch_size) : batch_size_(batch_size) {}

  /// Images per batch; must be positive.
  TORCH_ARG(int64_t, batch_size);
  /// Random crop of the 4-pixel zero-padded image back to its size, then a
  /// horizontal flip with p=0.5 (torchvision's RandomCrop(32, padding=4) +
  /// RandomHorizontalFlip()).
  TORCH_ARG(bool, augment) = false;
  /// A new random order every epoch.
  TORCH_ARG(bool, shuffle) = false;
  /// Seed of the order and augmentation draws; with the epoch number it
  /// determines every batch.
  TORCH_ARG(uint64_t, seed) = 0;
  /// Batches in page-locked (pinned) memory, from which a CUDA device copies
  /// asynchronously (`to(device, /*non_blocking=*/true)`). Needs a LibTorch
  /// with CUDA; the trainers set it when they train on a CUDA device.
  TORCH_ARG(bool, pin_memory) = false;
};

/// One batch: normalised float images [B,C,H,W] and int64 labels [B].
struct Batch {
  torch::Tensor images;  ///< float [B, C, H, W], (byte/255 - mean[c]) / std[c]
  torch::Tensor labels;  ///< int64 [B]
};

/// Serves the batches of an ImageSet epoch by epoch. The random order and
/// per-image augmentation are drawn in start_epoch(), so batch() is const and
/// may be called from several threads and in any order.
class BatchLoader {
 public:
  /// Keeps a copy of `set` (its tensors are shared, so this is cheap) and
  /// starts epoch 0. Throws SettingError for a batch size below 1 and
  /// c10::Error for a malformed set.
  BatchLoader(const ImageSet& set, LoaderOptions options);

  /// ceil(N / batch_size); the last batch may be smaller.
  int64_t num_batches() const;
  /// Number of images per epoch, N.
  int64_t size() const { return set_.size(); }
  /// The options this loader was built with.
  const LoaderOptions& options() const { return options_; }

  /// Re-draws the order (if shuffle) and augmentation randomness for epoch
  /// `epoch`; deterministic given seed and epoch.
  void start_epoch(int64_t epoch);
  /// Batch `index` (0 <= index < num_batches()) of the current epoch, or
  /// part `part` of `parts` of it (see shard_of): the same images, order and
  /// augmentation as in the whole batch.
  Batch batch(int64_t index, int64_t part = 0, int64_t parts = 1) const;

 private:
  ImageSet set_;
  LoaderOptions options_;
  std::vector<float> lut_;      // [C][256]: normalised value of each byte per channel
  std::vector<int64_t> order_;  // epoch position -> image index
  std::vector<uint8_t> dy_;     // epoch position -> crop row offset in [0, 2*pad]
  std::vector<uint8_t> dx_;     // epoch position -> crop column offset in [0, 2*pad]
  std::vector<uint8_t> flip_;   // epoch position -> 1 if flipped horizontally
};

/// The part of `count` items that part `part` of `parts` takes: {first,
/// size}, contiguous, sizes differing by at most one.
std::pair<int64_t, int64_t> shard_of(int64_t count, int64_t part, int64_t parts);

}  // namespace dnn_gating::data
