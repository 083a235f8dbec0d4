#pragma once
/// What a training loop asks of any source of batches: in-memory sets
/// (BatchLoader) and image folders decoded on the fly (FolderLoader).

#include <torch/torch.h>

#include <cstdint>

namespace dnn_gating::data {

/// Options for a source of batches.
struct LoaderOptions {
  /// `batch_size` images per batch (the last batch of an epoch may be smaller).
  explicit LoaderOptions(int64_t batch_size) : batch_size_(batch_size) {}
  /// Images per batch; must be positive.
  TORCH_ARG(int64_t, batch_size);
  /// Training augmentation: for in-memory sets a random crop of the 4-pixel
  /// zero-padded image back to its size, then a horizontal flip with p=0.5
  /// (torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip()); for
  /// image folders RandomResizedCrop + RandomHorizontalFlip.
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

/// Serves the batches of a split epoch by epoch. The random order and
/// per-image augmentation are drawn in start_epoch(), so that batch() gives
/// the same images whenever, on whichever thread, and in whatever order it
/// is asked.
class Batches {
 public:
  virtual ~Batches() = default;
  /// ceil(N / batch_size); the last batch may be smaller.
  virtual int64_t num_batches() const = 0;
  /// Number of images per epoch, N.
  virtual int64_t size() const = 0;
  /// The options this source was built with.
  virtual const LoaderOptions& options() const = 0;
  /// Re-draws the order (if shuffle) and augmentation randomness for epoch
  /// `epoch`; deterministic given seed and epoch.
  virtual void start_epoch(int64_t epoch) = 0;
  /// Batch `index` (0 <= index < num_batches()) of the current epoch, or
  /// part `part` of `parts` of it (see shard_of): the same images, order and
  /// augmentation as in the whole batch.
  virtual Batch batch(int64_t index, int64_t part = 0, int64_t parts = 1) const = 0;
};

/// The part of `count` items that part `part` of `parts` takes: {first,
/// size}, contiguous, sizes differing by at most one.
std::pair<int64_t, int64_t> shard_of(int64_t count, int64_t part, int64_t parts);

}  // namespace dnn_gating::data
