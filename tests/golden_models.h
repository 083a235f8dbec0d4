#pragma once
// The model and training recipe a whole-model golden case describes (its
// JSON config), shared by the one-step and the trajectory tests.
#include <nlohmann/json.hpp>

#include "dnn_gating/models/resnet.h"
#include "dnn_gating/train/recipe.h"

namespace dnn_gating::testing {

/// ResNet options of a golden model config ("cg", "model", "pg", bits, ...).
models::ResNetOptions golden_model_options(const nlohmann::json& config);

/// The trainer's recipe with the config's lr, momentum, weight decay, sigma
/// and gtarget: the PG recipe for PG and quantized models, the CG one for CG.
train::Recipe golden_recipe(const nlohmann::json& config);

}  // namespace dnn_gating::testing
