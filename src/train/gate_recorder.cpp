#include "dnn_gating/train/gate_recorder.h"

#include <algorithm>
#include <utility>

#include "dnn_gating/layers/gated_layer.h"

namespace dnn_gating::train {
namespace {

// Costs with effective MACs from `evaluation`'s layers.
ImageCost priced(ImageCost cost, const Evaluation& evaluation) {
  std::vector<double> on_fraction;
  for (size_t l = 0; l < evaluation.layers.size(); ++l) {
    const auto& counts = evaluation.layers[l].counts;
    const double images = static_cast<double>(std::max<int64_t>(evaluation.images, 1));
    const double per_image = static_cast<double>(counts.num_out) / images;
    on_fraction.push_back(per_image == 0 ? 0.0 : static_cast<double>(cost.layer_on[l]) / per_image);
  }
  cost.effective_macs = evaluation.effective_macs(on_fraction);
  return cost;
}

}  // namespace

GateRecorder::GateRecorder(torch::nn::Module& model, const data::ImageSet& images,
                           std::vector<int64_t> map_images)
    : model_(model), images_(images), map_images_(std::move(map_images)) {
  layers::keep_decisions(model_, true);
}

GateRecorder::~GateRecorder() { layers::keep_decisions(model_, false); }

void GateRecorder::observe(int64_t first_image, const torch::Tensor& labels,
                           const torch::Tensor& predicted) {
  const torch::Tensor label = labels.cpu(), guess = predicted.cpu();
  const int64_t batch = label.size(0);
  const auto gated = layers::gated_layers(model_);
  // Open gates per image of each layer: [layers, B].
  std::vector<torch::Tensor> open;
  for (const auto& [name, layer] : gated) {
    const torch::Tensor& d = layer->last_decisions();
    TORCH_CHECK(d.defined() && d.size(0) == batch, "GateRecorder: layer ", name,
                " kept no decisions for this batch");
    open.push_back(d.sum({1, 2, 3}, /*keepdim=*/false, torch::kLong).cpu());
  }
  for (int64_t i = 0; i < batch; ++i) {
    ImageCost cost;
    cost.index = first_image + i;
    cost.label = label[i].item<int64_t>();
    cost.predicted = guess[i].item<int64_t>();
    for (const torch::Tensor& o : open) cost.layer_on.push_back(o[i].item<int64_t>());
    if (std::find(map_images_.begin(), map_images_.end(), cost.index) != map_images_.end()) {
      ImageMaps maps;
      maps.cost = cost;
      maps.image = images_.images[cost.index].clone();
      for (const auto& [name, layer] : gated) {
        const torch::Tensor per_position =
            layer->last_decisions()[i].sum(0, /*keepdim=*/false, torch::kInt).contiguous().cpu();
        LayerMap map;
        map.name = name;
        map.kind = layer->gate_kind();
        map.channels = layer->last_decisions().size(1);
        map.height = per_position.size(0);
        map.width = per_position.size(1);
        const int32_t* p = per_position.data_ptr<int32_t>();
        map.open.assign(p, p + per_position.numel());
        maps.layers.push_back(std::move(map));
      }
      maps_[cost.index] = std::move(maps);
    }
    costs_[cost.index] = std::move(cost);
  }
}

std::vector<ImageCost> GateRecorder::costs(const Evaluation& evaluation) const {
  std::vector<ImageCost> out;
  out.reserve(costs_.size());
  for (const auto& [index, cost] : costs_) out.push_back(priced(cost, evaluation));
  return out;
}

std::vector<ImageMaps> GateRecorder::maps(const Evaluation& evaluation) const {
  std::vector<ImageMaps> out;
  for (const int64_t index : map_images_) {
    const auto found = maps_.find(index);
    if (found == maps_.end()) continue;
    ImageMaps maps = found->second;
    maps.cost = priced(maps.cost, evaluation);
    out.push_back(std::move(maps));
  }
  return out;
}

}  // namespace dnn_gating::train
