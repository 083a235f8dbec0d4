#include "dnn_gating/layers/dense_macs.h"

namespace dnn_gating::layers {

int64_t dense_macs_per_image(const torch::Tensor& weight, torch::IntArrayRef output_shape) {
  if (output_shape.empty() || output_shape[0] == 0 || weight.size(0) == 0) return 0;
  const int64_t outputs_per_image = c10::multiply_integers(output_shape) / output_shape[0];
  return outputs_per_image * (weight.numel() / weight.size(0));
}

int64_t total_dense_macs(torch::nn::Module& root) {
  int64_t total = 0;
  for (const auto& module : root.modules(/*include_self=*/true)) {
    if (const auto* counting = dynamic_cast<const CountsMacs*>(module.get())) {
      total += counting->dense_macs_per_image();
    }
  }
  return total;
}

}  // namespace dnn_gating::layers
