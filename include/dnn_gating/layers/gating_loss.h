#pragma once
/// Regularisers that pull every gate threshold towards a target, which sets
/// how many outputs take the expensive path.

#include <torch/torch.h>

namespace dnn_gating::layers {

/// The two forms used by the original trainers.
enum class GatingLossForm {
  kNorm,        ///< PG: weight * sum_t ||t - target||_2 (the L2 norm, not squared)
  kSquaredSum,  ///< CG: weight * sum_t sum((t - target)^2)
};

/// A gating loss: form, weight (PG: sigma; CG: 1e-4) and threshold target.
struct GatingLoss {
  GatingLossForm form = GatingLossForm::kNorm;
  double weight = 0.001;
  double target = 0.0;

  /// The loss over the threshold of every gated layer in `model` (see
  /// gated_layers; other parameters, whatever their names, are not gate
  /// thresholds). A zero scalar when the model has no gated layer.
  torch::Tensor operator()(torch::nn::Module& model) const;
};

/// PG gating loss of any module tree: sigma * sum ||threshold - gtarget||_2.
torch::Tensor pg_gating_loss(torch::nn::Module& model, double sigma, double gtarget);
/// CG gating loss of any module tree: weight * sum (threshold - gtarget)^2.
torch::Tensor cg_gating_loss(torch::nn::Module& model, double gtarget, double weight = 1e-4);

}  // namespace dnn_gating::layers
