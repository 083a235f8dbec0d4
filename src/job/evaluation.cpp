#include "dnn_gating/job/evaluation.h"

#include "dnn_gating/job/image_gates.h"

namespace dnn_gating::train {

std::vector<LayerGateStats> layer_gate_stats(torch::nn::Module& model) {
  std::vector<LayerGateStats> out;
  for (const auto& [name, layer] : layers::gated_layers(model)) {
    out.push_back({name, layer->gate_kind(), layer->total_counts(), layer->dense_macs_per_image(),
                   layer->gate_cost()});
  }
  return out;
}

double Evaluation::accuracy() const {
  return images == 0 ? 0.0 : 100.0 * static_cast<double>(correct) / static_cast<double>(images);
}

double Evaluation::sparsity() const {
  layers::GateCounts sum;
  for (const auto& layer : layers) sum += layer.counts;
  return sum.num_out == 0 ? 0.0 : 100.0 - 100.0 * sum.on_fraction();
}

double Evaluation::effective_macs(const std::vector<double>& on_fraction) const {
  TORCH_CHECK(on_fraction.size() == layers.size(), "effective_macs: ", on_fraction.size(),
              " on-fractions for ", layers.size(), " gated layers");
  double gated_dense = 0, gated_effective = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const double macs = static_cast<double>(layers[i].dense_macs_per_image);
    gated_dense += macs;
    gated_effective += macs * layers[i].cost.cost_fraction(on_fraction[i]);
  }
  return static_cast<double>(dense_macs) - gated_dense + gated_effective;
}

double Evaluation::effective_macs() const {
  std::vector<double> on_fraction;
  for (const auto& layer : layers) on_fraction.push_back(layer.counts.on_fraction());
  return effective_macs(on_fraction);
}

double LayerMap::on_fraction() const {
  double on = 0;
  for (const int32_t v : open) on += v;
  const double total = static_cast<double>(channels) * static_cast<double>(open.size());
  return total == 0 ? 0.0 : on / total;
}

}  // namespace dnn_gating::train
