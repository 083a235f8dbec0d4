#pragma once
/// The two original training recipes: optimiser groups, gating-loss form and
/// learning-rate schedule of pg-cifar10.py and cg-cifar10.py, for the
/// trainers, the benchmarks and anyone training a gated model of their own.

#include <cstdint>
#include <vector>

#include "dnn_gating/layers/gating_loss.h"
#include "dnn_gating/train/optimizer.h"

namespace dnn_gating::train {

/// Everything a recipe fixes apart from the model.
struct Recipe {
  SgdSettings sgd;
  layers::GatingLoss gating_loss;
  /// Epochs of a full run (PG 200, CG 250).
  int64_t epochs = 200;
  /// The learning rate drops 10x at these fractions of the epochs (PG 0.5 and
  /// 0.75: epochs 100 and 150 of 200; CG 0.6 and 0.8: 150 and 200 of 250).
  std::vector<double> milestone_fractions;

  /// The milestones (epochs, 1-based boundaries) of a run of `epochs` epochs.
  std::vector<int64_t> milestones(int64_t epochs) const;
};

/// pg-cifar10: SGD lr 0.1, momentum 0.9, weight decay 1e-4 on every
/// parameter; gating loss sigma * sum ||threshold - gtarget||_2.
Recipe pg_recipe(double sigma, double gtarget);

/// cg-cifar10: SGD momentum 0.9, `weight_decay` except on thresholds and 1-D
/// parameters; gating loss 1e-4 * sum (threshold - gtarget)^2.
Recipe cg_recipe(double lr, double weight_decay, double gtarget);

}  // namespace dnn_gating::train
