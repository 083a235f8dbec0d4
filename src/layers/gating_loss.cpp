#include "dnn_gating/layers/gating_loss.h"

#include "dnn_gating/layers/gated_layer.h"

namespace dnn_gating::layers {

torch::Tensor GatingLoss::operator()(torch::nn::Module& model) const {
  torch::Tensor total;
  for (const auto& [name, layer] : gated_layers(model)) {
    const torch::Tensor diff = layer->threshold() - target;
    const torch::Tensor term =
        weight * (form == GatingLossForm::kNorm ? diff.norm() : diff.pow(2).sum());
    total = total.defined() ? total + term : term;
  }
  if (!total.defined()) {
    auto params = model.parameters();
    return params.empty() ? torch::zeros({}) : torch::zeros({}, params.front().options());
  }
  return total;
}

torch::Tensor pg_gating_loss(torch::nn::Module& model, double sigma, double gtarget) {
  return GatingLoss{GatingLossForm::kNorm, sigma, gtarget}(model);
}

torch::Tensor cg_gating_loss(torch::nn::Module& model, double gtarget, double weight) {
  return GatingLoss{GatingLossForm::kSquaredSum, weight, gtarget}(model);
}

}  // namespace dnn_gating::layers
