#pragma once
/// Keeps, image by image, what the gated layers decided during an
/// evaluation: every image's cost and the decision maps of chosen images.

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <vector>

#include "dnn_gating/data/image_set.h"
#include "dnn_gating/job/evaluation.h"
#include "dnn_gating/job/image_gates.h"

namespace dnn_gating::train {

/// Observes an evaluation (`evaluate`'s BatchObserver): from construction to
/// destruction every gated layer of the model keeps its decisions, and after
/// each batch the recorder reads them.
class GateRecorder {
 public:
  /// `images` is the evaluated split (the pixels of the maps), `map_images`
  /// the indices in it whose maps are kept.
  GateRecorder(torch::nn::Module& model, const data::ImageSet& images,
               std::vector<int64_t> map_images);
  ~GateRecorder();
  GateRecorder(const GateRecorder&) = delete;
  GateRecorder& operator=(const GateRecorder&) = delete;

  /// Reads the decisions of the batch whose first image is `first_image`.
  void observe(int64_t first_image, const torch::Tensor& labels, const torch::Tensor& predicted);

  /// The cost of every observed image, by index, with its effective MACs as
  /// `evaluation` (of the same pass) counts them.
  std::vector<ImageCost> costs(const Evaluation& evaluation) const;
  /// The maps of the chosen images, in the order they were asked for.
  std::vector<ImageMaps> maps(const Evaluation& evaluation) const;

 private:
  torch::nn::Module& model_;
  data::ImageSet images_;
  std::vector<int64_t> map_images_;
  std::map<int64_t, ImageCost> costs_;
  std::map<int64_t, ImageMaps> maps_;
};

}  // namespace dnn_gating::train
