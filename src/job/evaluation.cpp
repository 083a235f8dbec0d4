#include "dnn_gating/job/evaluation.h"

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

}  // namespace dnn_gating::train
