#pragma once
/// A labelled image split held in memory as bytes, and the reader that picks
/// a data set by name.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dnn_gating::data {

/// Which split of a data set.
enum class Split { kTrain, kTest };

/// A labelled image split held in memory as bytes. Kept as uint8 (a quarter of
/// the float size) and normalised per batch by `BatchLoader`.
struct ImageSet {
  torch::Tensor images;                  ///< uint8 [N, C, 32, 32], contiguous
  torch::Tensor labels;                  ///< int64 [N]
  std::vector<std::string> class_names;  ///< 10 names
  std::vector<float> mean;               ///< per-channel normalisation mean (C values, [0,1] scale)
  std::vector<float> std;                ///< per-channel std (C values, [0,1] scale)
  std::string name;                      ///< "CIFAR-10" / "Fashion-MNIST"

  /// Number of images N.
  int64_t size() const;
  /// Number of channels C.
  int64_t channels() const;
  /// The first n images (n >= size(): all). Used by --train-limit/--test-limit.
  /// Shares storage with this set.
  ImageSet first(int64_t n) const;
};

/// Reads a split of a named data set ("cifar10" or "fashion-mnist") from dir;
/// throws SettingError (of `dataset`) on an unknown name.
ImageSet read_dataset(const std::string& dataset, const std::string& dir, Split split);

}  // namespace dnn_gating::data
