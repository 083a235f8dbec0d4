#pragma once
/// What the gates decided for single images: the per-image cost of every
/// evaluated image, and the decision maps of the images a user picked.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dnn_gating/layers/gated_layer.h"

namespace dnn_gating::train {

/// One evaluated image's gates: how many outputs of each gated layer were on.
struct ImageCost {
  int64_t index = 0;  ///< in the evaluated split
  int64_t label = 0;
  int64_t predicted = 0;
  /// Open gates per gated layer (Evaluation::layers' order) for this image.
  std::vector<int64_t> layer_on;
  /// Multiply-accumulates of this image, as the report counts them
  /// (`effective_macs` of its layers' on-fractions).
  double effective_macs = 0;

  bool correct() const { return label == predicted; }
};

/// One gated layer's decisions for one image, position by position.
struct LayerMap {
  std::string name;  ///< state-dict prefix, e.g. "layer2.0.conv1"
  layers::GateKind kind = layers::GateKind::kChannel;
  int64_t channels = 0;  ///< output channels C
  int64_t height = 0, width = 0;
  /// Open output channels at each position [height * width], row by row.
  std::vector<int32_t> open;

  /// The share of the C channels open at (y, x), in [0, 1].
  double share(int64_t y, int64_t x) const {
    return static_cast<double>(open[y * width + x]) / static_cast<double>(channels);
  }
  /// The share of all this layer's outputs that are open.
  double on_fraction() const;
};

/// The decision maps of one image: the image itself (uint8 [C, H, W] as
/// stored in the split, before normalisation) and one map per gated layer.
struct ImageMaps {
  ImageCost cost;
  torch::Tensor image;
  std::vector<LayerMap> layers;
};

}  // namespace dnn_gating::train
