#include "dnn_gating/layers/gated_layer.h"

namespace dnn_gating::layers {

void GatedLayer::record_gate(const torch::Tensor& mask, int64_t in_channels_per_group,
                             int64_t kernel_elements) {
  record_gate(mask.gt(0).sum().item<int64_t>(), mask.sizes(), in_channels_per_group,
              kernel_elements);
}

void GatedLayer::record_gate(int64_t num_on, torch::IntArrayRef shape,
                             int64_t in_channels_per_group, int64_t kernel_elements) {
  const int64_t num_out = c10::multiply_integers(shape);
  last_ = {num_out, num_on};
  total_ += last_;
  const int64_t per_image = shape[0] == 0 ? 0 : num_out / shape[0];
  dense_macs_ = per_image * in_channels_per_group * kernel_elements;
}

std::vector<std::pair<std::string, GatedLayer*>> gated_layers(torch::nn::Module& root) {
  std::vector<std::pair<std::string, GatedLayer*>> out;
  for (const auto& item : root.named_modules(/*name_prefix=*/"", /*include_self=*/true)) {
    if (auto* gated = dynamic_cast<GatedLayer*>(item.value().get())) {
      out.emplace_back(item.key(), gated);
    }
  }
  return out;
}

GateCounts total_counts(torch::nn::Module& root) {
  GateCounts sum;
  for (const auto& [name, layer] : gated_layers(root)) sum += layer->total_counts();
  return sum;
}

void reset_counts(torch::nn::Module& root) {
  for (const auto& [name, layer] : gated_layers(root)) layer->reset_counts();
}

}  // namespace dnn_gating::layers
