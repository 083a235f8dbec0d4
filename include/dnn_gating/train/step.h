#pragma once
/// One optimisation step and one evaluation pass of a classifier.

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "dnn_gating/data/loader.h"
#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/gating_loss.h"

namespace dnn_gating::train {

/// The model as the loop sees it: its module tree and its forward function.
struct Classifier {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
};

/// What one training step computed.
struct StepResult {
  torch::Tensor logits;  ///< training-mode logits (detached)
  double ce_loss = 0;
  double gating_loss = 0;
  int64_t correct = 0;
};

/// Forward in training mode, cross entropy + gating loss, backward, optimiser step.
/// Called between the backward pass and the optimiser step (data-parallel
/// training averages the gradients over its processes there).
using GradientHook = std::function<void(torch::nn::Module&)>;

StepResult train_step(const Classifier& model, torch::optim::Optimizer& optimizer,
                      const layers::GatingLoss& gating_loss, const torch::Tensor& images,
                      const torch::Tensor& labels, const GradientHook& before_step = nullptr);

/// Gate counts of one layer over an evaluation.
struct LayerGateStats {
  std::string name;  ///< state-dict prefix, e.g. "layer2.0.conv1"
  layers::GateKind kind = layers::GateKind::kPrecision;
  layers::GateCounts counts;  ///< summed over every evaluated image
  int64_t dense_macs_per_image = 0;
  layers::GateCost cost;
};

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
};

/// Evaluates in eval mode without gradients over every batch of `loader`;
/// gate counters are reset first, so the counts cover exactly this split.
/// With `parts` > 1 only the batches b with b % parts == part are evaluated
/// (one process's share of a data-parallel evaluation; whole batches, so
/// that per-batch quantization scales stay those of a single process).
Evaluation evaluate(const Classifier& model, const data::BatchLoader& loader,
                    const torch::Device& device, int64_t num_classes, int64_t part = 0,
                    int64_t parts = 1);

}  // namespace dnn_gating::train
