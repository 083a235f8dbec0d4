// Gate thresholds are found through the gated layers themselves, never by
// parameter name: a user's own parameter called `threshold` is neither pulled
// by the gating loss nor exempted from weight decay.
#include "dnn_gating/layers/gating_loss.h"

#include <gtest/gtest.h>

#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/train/optimizer.h"

namespace dg = dnn_gating;

namespace {

// A model of one's own: a PG and a CG layer, and a parameter of its own
// that happens to be called "threshold" (with a 2-D shape, so that only its
// name could exempt it from weight decay).
struct OwnModelImpl : torch::nn::Module {
  OwnModelImpl()
      : pg(register_module("pg", dg::layers::PGConv2d(
                                     dg::layers::PGConv2dOptions(4, 4, 3).abits(4).pred_bits(2)))),
        cg(register_module(
            "cg", dg::layers::CGConv2d(dg::layers::CGConv2dOptions(4, 4, 3).partitions(2)))),
        threshold(register_parameter("threshold", torch::full({2, 2}, 5.0))) {}
  dg::layers::PGConv2d pg;
  dg::layers::CGConv2d cg;
  torch::Tensor threshold;
};
TORCH_MODULE(OwnModel);

}  // namespace

TEST(GatedLayers, ExposeTheirThresholdAndKind) {
  OwnModel model;
  const auto layers = dg::layers::gated_layers(*model);
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0].second->gate_kind(), dg::layers::GateKind::kPrecision);
  EXPECT_EQ(layers[1].second->gate_kind(), dg::layers::GateKind::kChannel);
  EXPECT_TRUE(layers[0].second->threshold().is_same(model->pg->named_parameters()["threshold"]));
  EXPECT_TRUE(layers[1].second->threshold().is_same(model->cg->named_parameters()["threshold"]));
}

TEST(GatingLoss, PullsOnlyTheGatedLayersThresholds) {
  OwnModel model;
  torch::NoGradGuard no_grad;
  model->pg->named_parameters()["threshold"].fill_(0.5);  // 4 channels
  model->cg->named_parameters()["threshold"].fill_(-1.0);
  // PG form: sigma * (||0.5 - 1|| + ||-1 - 1||) over 4 values each.
  const double norm = dg::layers::pg_gating_loss(*model, 0.1, 1.0).item<double>();
  EXPECT_NEAR(norm, 0.1 * (std::sqrt(4 * 0.25) + std::sqrt(4 * 4.0)), 1e-6);
  // CG form: weight * sum of squares.
  const double squares = dg::layers::cg_gating_loss(*model, 1.0, 1e-4).item<double>();
  EXPECT_NEAR(squares, 1e-4 * (4 * 0.25 + 4 * 4.0), 1e-9);
}

TEST(WeightDecay, ExemptsGateThresholdsNotNames) {
  OwnModel model;
  auto sgd = dg::train::make_sgd(*model, {0.1, 0.9, 1e-4, /*exempt_thresholds_and_1d=*/true});
  const auto& groups = sgd->param_groups();
  ASSERT_EQ(groups.size(), 2u);
  auto holds = [](const torch::optim::OptimizerParamGroup& group, const torch::Tensor& t) {
    for (const auto& p : group.params()) {
      if (p.is_same(t)) return true;
    }
    return false;
  };
  EXPECT_TRUE(holds(groups[0], model->threshold)) << "the user's own 'threshold' is decayed";
  EXPECT_TRUE(holds(groups[1], model->pg->threshold()));
  EXPECT_TRUE(holds(groups[1], model->cg->threshold()));
  EXPECT_TRUE(holds(groups[0], model->pg->weight));
}
