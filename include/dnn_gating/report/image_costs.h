#pragma once
/// What every test image cost: the per-image table (CSV), its histogram,
/// the cheapest and most expensive images, and whether misclassified
/// images cost more.

#include <torch/torch.h>

#include <string>
#include <vector>

#include "dnn_gating/job/evaluation.h"
#include "dnn_gating/job/image_gates.h"
#include "dnn_gating/report/png.h"

namespace dnn_gating::train {

/// Summary figures of per-image costs.
struct ImageCostSummary {
  int64_t images = 0;
  double mean = 0, min = 0, max = 0, std = 0;  ///< effective MACs
  int64_t correct = 0, wrong = 0;
  double mean_correct = 0, mean_wrong = 0;
  /// Point-biserial correlation of cost with being misclassified (0 where
  /// either group is empty or every cost is equal).
  double correlation = 0;
};

ImageCostSummary summarise(const std::vector<ImageCost>& costs);

/// The lines the report prints: mean (the report's effective MACs), range,
/// correct against misclassified.
std::vector<std::string> image_cost_lines(const ImageCostSummary& summary, int64_t dense_macs);

/// The table as CSV: index, label, class, predicted, predicted class,
/// correct, effective MACs, share of dense, then each gated layer's on-%.
std::string image_costs_csv(const std::vector<ImageCost>& costs, const Evaluation& evaluation,
                            const std::vector<std::string>& class_names);

/// A histogram of the costs, correct and misclassified images stacked, the
/// mean marked.
Picture cost_histogram(const std::vector<ImageCost>& costs, int64_t dense_macs,
                       const std::string& title);

/// The `count` cheapest and `count` most expensive images with their labels,
/// predictions and costs. `images` is the evaluated split's uint8 [N, C, H, W].
Picture cost_extremes(const std::vector<ImageCost>& costs, const torch::Tensor& images,
                      const std::vector<std::string>& class_names, int64_t count = 8);

}  // namespace dnn_gating::train
