#pragma once
// What follows a layer's output in a block during evaluation, as one map per
// channel: an evaluation-mode BatchNorm (y * scale + shift), then a ReLU.
// Kernels that write the output apply it as they store it.
#include <torch/torch.h>

#include <limits>
#include <optional>

namespace dnn_gating::kernels {

/// y * scale + shift per channel (one value each per channel), then a ReLU if `relu`,
/// then (with a ReLU) a clip at `upper` where finite: PACT's clamp(y, 0, upper).
struct Affine {
  torch::Tensor scale, shift;
  bool relu = false;
  float upper = std::numeric_limits<float>::infinity();
};

/// `bn` as an Affine, followed by a ReLU if relu; none where bn is not a
/// fixed map (training mode, or no running statistics). ATen's own
/// arithmetic: scale = weight / sqrt(var + eps), shift = bias - mean * scale.
std::optional<Affine> as_affine(const torch::nn::BatchNorm2dImpl& bn, bool relu);

/// An Affine's activation of one value z: z, or with `relu` a ReLU clipped
/// at `upper` (ATen's relu, then clamp_max where upper is finite).
inline float activated(float z, bool relu, float upper) {
  const float r = relu && z < 0.0f ? 0.0f : z;
  return relu && r > upper ? upper : r;
}

/// The same on a whole tensor in place (the ReLU): ATen's relu, or
/// clamp(., 0, upper) where upper is finite. Returns y.
torch::Tensor activate_in_place(torch::Tensor y, double upper);

/// Applies `affine` to y in place: a float [N, C, H, W], contiguous or
/// channels-last (otherwise ATen's operations do it).
void apply_in_place(const Affine& affine, torch::Tensor& y);

/// y + residual, then a ReLU clipped at `upper` where that is finite
/// (PACT's clamp(., 0, upper)), in place on y: ATen's add, relu and clamp.
torch::Tensor add_activated(torch::Tensor y, const torch::Tensor& residual, double upper);

/// affine(conv2d(x, weight)) with the map folded into the convolution:
/// weight * scale per output channel, shift as the bias, then the ReLU (and
/// clip) in place. The same values to float rounding, in one convolution.
torch::Tensor folded_conv2d(const torch::Tensor& x, const torch::Tensor& weight,
                            const Affine& affine, torch::IntArrayRef stride,
                            torch::IntArrayRef padding);

}  // namespace dnn_gating::kernels
