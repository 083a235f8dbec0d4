#pragma once
/// Dense multiply-accumulates, counted by the layers themselves from the
/// shapes of their last forward pass: the network's cost has no second,
/// hand-written description of its shape.

#include <torch/torch.h>

#include <cstdint>

namespace dnn_gating::layers {

/// Multiply-accumulates per image of a dense convolution or linear layer:
/// every output element (of one image of `output_shape`, batch first) costs
/// one weight row, `weight`[0].numel() (in/groups x kh x kw, or in_features).
int64_t dense_macs_per_image(const torch::Tensor& weight, torch::IntArrayRef output_shape);

/// Mixin of a module that counts the dense multiply-accumulates per image of
/// its last forward pass (0 before any).
class CountsMacs {
 public:
  virtual ~CountsMacs() = default;
  /// Dense multiply-accumulates per image of the last forward pass.
  int64_t dense_macs_per_image() const { return dense_macs_; }

 protected:
  void record_macs(int64_t macs_per_image) { dense_macs_ = macs_per_image; }

 private:
  int64_t dense_macs_ = 0;
};

/// Sum of the last forward pass's counts over every counting module of a
/// tree: a whole network's dense cost per image at the last input size.
int64_t total_dense_macs(torch::nn::Module& root);

}  // namespace dnn_gating::layers
