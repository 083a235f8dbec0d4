#pragma once
// The float ResNet as a fast inference engine would run it: every
// BatchNorm folded into the convolution before it (weight and bias), the
// ReLU after, activations channels-last. The fair baseline for gated
// inference, whose kernels fold the same and use the same layout: what a
// gated model saves beyond it is what gating saves.
#include <torch/torch.h>

#include <vector>

#include "dnn_gating/models/resnet.h"

namespace dnn_gating::bench {

class FoldedFloatResNet {
 public:
  /// Folds a float, standard-layout `model` in evaluation mode.
  explicit FoldedFloatResNet(models::ResNet& model);
  /// Logits of `x` (any layout; computed channels-last). Without gradients.
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  struct Conv {
    torch::Tensor weight, bias;
    int64_t stride;
  };
  struct Block {
    Conv conv1, conv2;
    int64_t in_planes, planes, stride;
  };
  Conv stem_;
  std::vector<Block> blocks_;
  torch::Tensor linear_weight_, linear_bias_;
};

}  // namespace dnn_gating::bench
