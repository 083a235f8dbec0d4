#include "dnn_gating/layers/gated_layer.h"

#include <array>
#include <stdexcept>

namespace dnn_gating::layers {
namespace {

constexpr std::array<std::pair<Skipping, const char*>, 3> kSkippingNames{{
    {Skipping::kFastest, "fastest"},
    {Skipping::kNever, "never"},
    {Skipping::kAlways, "always"},
}};

}  // namespace

std::string to_string(Skipping skipping) {
  for (const auto& [value, name] : kSkippingNames) {
    if (value == skipping) return name;
  }
  return "fastest";
}

std::ostream& operator<<(std::ostream& out, Skipping skipping) {
  return out << to_string(skipping);
}

Skipping skipping_from_string(const std::string& name) {
  for (const auto& [value, known] : kSkippingNames) {
    if (name == known) return value;
  }
  throw std::invalid_argument("skipping must be fastest, never or always, got '" + name + "'");
}

void GatedLayer::record_gate(const torch::Tensor& mask, const torch::Tensor& weight) {
  record_gate(mask.gt(0).sum().item<int64_t>(), mask.sizes(), weight);
}

void GatedLayer::record_gate(int64_t num_on, torch::IntArrayRef shape,
                             const torch::Tensor& weight) {
  last_ = {c10::multiply_integers(shape), num_on};
  total_ += last_;
  record_macs(layers::dense_macs_per_image(weight, shape));
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

void set_skipping(torch::nn::Module& root, Skipping skipping) {
  for (const auto& [name, layer] : gated_layers(root)) layer->set_skipping(skipping);
}

}  // namespace dnn_gating::layers
