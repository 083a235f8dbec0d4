#pragma once
/// A batch loader that turns uint8 images into normalised, optionally
/// augmented float batches in one parallel pass, fast enough never to limit a
/// training step.

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "dnn_gating/data/batches.h"
#include "dnn_gating/data/image_set.h"

namespace dnn_gating::data {

/// Serves the batches of an ImageSet epoch by epoch. The random order and
/// per-image augmentation are drawn in start_epoch(), so batch() is const and
/// may be called from several threads and in any order.
class BatchLoader : public Batches {
 public:
  /// Keeps a copy of `set` (its tensors are shared, so this is cheap) and
  /// starts epoch 0. Throws SettingError for a batch size below 1 and
  /// c10::Error for a malformed set.
  BatchLoader(const ImageSet& set, LoaderOptions options);

  /// ceil(N / batch_size); the last batch may be smaller.
  int64_t num_batches() const override;
  /// Number of images per epoch, N.
  int64_t size() const override { return set_.size(); }
  /// The options this loader was built with.
  const LoaderOptions& options() const override { return options_; }

  /// Re-draws the order (if shuffle) and augmentation randomness for epoch
  /// `epoch`; deterministic given seed and epoch.
  void start_epoch(int64_t epoch) override;
  /// Batch `index` (0 <= index < num_batches()) of the current epoch, or
  /// part `part` of `parts` of it (see shard_of): the same images, order and
  /// augmentation as in the whole batch.
  Batch batch(int64_t index, int64_t part = 0, int64_t parts = 1) const override;

 private:
  ImageSet set_;
  LoaderOptions options_;
  std::vector<float> lut_;      // [C][256]: normalised value of each byte per channel
  std::vector<int64_t> order_;  // epoch position -> image index
  std::vector<uint8_t> dy_;     // epoch position -> crop row offset in [0, 2*pad]
  std::vector<uint8_t> dx_;     // epoch position -> crop column offset in [0, 2*pad]
  std::vector<uint8_t> flip_;   // epoch position -> 1 if flipped horizontally
};

}  // namespace dnn_gating::data
