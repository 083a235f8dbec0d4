#pragma once
/// CIFAR-10, binary version (https://www.cs.toronto.edu/~kriz/cifar.html).

#include <torch/torch.h>

#include <string>

#include "dnn_gating/data/image_set.h"

namespace dnn_gating::data {

/// Reads the CIFAR-10 binary files in `dir`: data_batch_1.bin .. data_batch_5.bin
/// for kTrain, test_batch.bin for kTest. Each file holds any non-zero whole
/// number of 3073-byte records (label byte, then 1024 R, 1024 G, 1024 B bytes).
/// Throws std::runtime_error naming the file when one is missing, has a size
/// that is not a whole number of records, or holds a label outside 0-9.
ImageSet read_cifar10(const std::string& dir, Split split);

/// CIFAR-10 as a `torch::data` dataset: example i is the normalised float
/// image [3, 32, 32] and its int64 label (a scalar tensor).
class Cifar10 : public torch::data::datasets::Dataset<Cifar10> {
 public:
  /// Reads `split` from `dir` with `read_cifar10`.
  Cifar10(const std::string& dir, Split split);
  /// Wraps an already read set (tensors are shared, not copied).
  explicit Cifar10(ImageSet set);

  /// The normalised image and label of example `index`.
  torch::data::Example<> get(size_t index) override;
  /// Number of examples.
  torch::optional<size_t> size() const override;

  /// The underlying bytes, labels and normalisation constants.
  const ImageSet& set() const { return set_; }

 private:
  ImageSet set_;
  torch::Tensor mean_;  // [C, 1, 1] float, so get() is one broadcast expression
  torch::Tensor std_;
};

}  // namespace dnn_gating::data
