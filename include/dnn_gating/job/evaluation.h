#pragma once
/// What an evaluation of a split measured: accuracy, the confusion matrix
/// and each gated layer's counts, as the runner computes them and the
/// report, the metrics files and the data-parallel sums read them.

#include <cstdint>
#include <string>
#include <vector>

#include "dnn_gating/layers/gated_layer.h"

namespace dnn_gating::train {

/// Gate counts of one layer over an evaluation.
struct LayerGateStats {
  std::string name;  ///< state-dict prefix, e.g. "layer2.0.conv1"
  layers::GateKind kind = layers::GateKind::kPrecision;
  layers::GateCounts counts;  ///< summed over every evaluated image
  int64_t dense_macs_per_image = 0;
  layers::GateCost cost;
};

/// The gate counts of every gated layer of `model` since its counts were
/// last reset, with each layer's dense cost, in forward order.
std::vector<LayerGateStats> layer_gate_stats(torch::nn::Module& model);

/// Accuracy (overall and per class) and gate statistics over a whole split.
struct Evaluation {
  int64_t images = 0;
  int64_t correct = 0;
  std::vector<int64_t> class_correct;
  std::vector<int64_t> class_total;
  std::vector<LayerGateStats> layers;
  /// Dense multiply-accumulates per image of the whole network, as its layers
  /// counted them at the evaluated image size.
  int64_t dense_macs = 0;
  /// The confusion matrix: rows are true classes, columns predictions.
  std::vector<std::vector<int64_t>> confusion;

  /// Test accuracy in percent.
  double accuracy() const;
  /// Update-phase sparsity in percent: 100 - 100 * sum(num_on) / sum(num_out)
  /// over all gated layers (0 for a model without gates).
  double sparsity() const;
  /// Multiply-accumulates per image at the given on-fraction of each gated
  /// layer (in `layers`' order): the ungated layers' dense MACs plus each
  /// gated layer's dense MACs times its cost fraction (SPEC: C_l).
  double effective_macs(const std::vector<double>& on_fraction) const;
  /// The same at the layers' measured on-fractions (the report's figure).
  double effective_macs() const;
};

}  // namespace dnn_gating::train
