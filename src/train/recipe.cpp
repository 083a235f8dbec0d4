#include "dnn_gating/train/recipe.h"

#include <cmath>

namespace dnn_gating::train {

std::vector<int64_t> Recipe::milestones(int64_t run_epochs) const {
  std::vector<int64_t> out;
  for (double fraction : milestone_fractions) {
    out.push_back(static_cast<int64_t>(std::ceil(static_cast<double>(run_epochs) * fraction)));
  }
  return out;
}

Recipe pg_recipe(double sigma, double gtarget) {
  Recipe recipe;
  recipe.sgd = SgdSettings{0.1, 0.9, 1e-4, /*exempt_thresholds_and_1d=*/false};
  recipe.gating_loss = layers::GatingLoss{layers::GatingLossForm::kNorm, sigma, gtarget};
  recipe.epochs = 200;
  recipe.milestone_fractions = {0.5, 0.75};
  return recipe;
}

Recipe cg_recipe(double lr, double weight_decay, double gtarget) {
  Recipe recipe;
  recipe.sgd = SgdSettings{lr, 0.9, weight_decay, /*exempt_thresholds_and_1d=*/true};
  recipe.gating_loss = layers::GatingLoss{layers::GatingLossForm::kSquaredSum, 1e-4, gtarget};
  recipe.epochs = 250;
  recipe.milestone_fractions = {0.6, 0.8};
  return recipe;
}

}  // namespace dnn_gating::train
