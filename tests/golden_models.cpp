#include "golden_models.h"

namespace dnn_gating::testing {

models::ResNetOptions golden_model_options(const nlohmann::json& c) {
  using models::BlockLayout;
  using models::ConvKind;
  if (c.value("cg", false)) {
    const bool postact = c.at("model") == "resnet20_postact";
    return models::ResNetOptions(ConvKind::kChannelGated,
                                 postact ? BlockLayout::kPostActivated : BlockLayout::kStandard)
        .partitions(c.at("partitions"))
        .cg_alpha(c.at("alpha"))
        .use_group(c.at("use_group"))
        .shuffle(c.at("shuffle"))
        .sparse_bp(c.at("sparse_bp"));
  }
  return models::ResNetOptions(c.at("pg") ? ConvKind::kPrecisionGated : ConvKind::kQuantized)
      .wbits(c.at("wbits"))
      .abits(c.at("abits"))
      .pact(c.at("pact"))
      .pred_bits(c.value("pred_bits", 4))
      .sparse_bp(c.value("sparse_bp", false));
}

train::Recipe golden_recipe(const nlohmann::json& c) {
  const double gtarget = c.at("gtarget");
  train::Recipe recipe = c.value("cg", false)
                             ? train::cg_recipe(c.at("lr"), c.at("weight_decay"), gtarget)
                             : train::pg_recipe(c.at("sigma"), gtarget);
  recipe.sgd.lr = c.at("lr");
  recipe.sgd.momentum = c.at("momentum");
  recipe.sgd.weight_decay = c.at("weight_decay");
  return recipe;
}

}  // namespace dnn_gating::testing
