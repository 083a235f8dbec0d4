// Twenty SGD steps of the original's PG and CG ResNet-20 (float64), replayed
// through the trainer's own step, optimiser groups and gating loss. One step
// cannot show a difference in momentum, BatchNorm running statistics or
// threshold drift; twenty do, and the original is not chaotic over them (see
// ../shared/golden/README.md), so every step's losses hold to 1e-6, its open
// gates exactly, and the end state to 1e-6.
#include <nlohmann/json.hpp>

#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/models/resnet.h"
#include "dnn_gating/train/step.h"
#include "golden_models.h"
#include "test_support.h"

namespace dg = dnn_gating;
using dnn_gating::testing::all_close;

namespace {

constexpr double kTol = 1e-6;

struct TrajectoryCase {
  std::string name;
  bool reference_ops;  ///< CG: the original's dense masked base path
};

std::string case_name(const ::testing::TestParamInfo<TrajectoryCase>& info) {
  return info.param.name + (info.param.reference_ops ? "_reference_ops" : "");
}

int64_t open_gates(torch::nn::Module& model) {
  int64_t open = 0;
  for (const auto& [name, layer] : dg::layers::gated_layers(model)) {
    open += layer->last_counts().num_on;
  }
  return open;
}

}  // namespace

class TrajectoryGolden : public ::testing::TestWithParam<TrajectoryCase> {};

TEST_P(TrajectoryGolden, TwentySgdStepsMatchTheOriginal) {
  DG_LOAD_GOLDEN_OR_SKIP(GetParam().name, golden);
  DG_TEST_DEVICE_OR_SKIP(device);
  const nlohmann::json config = nlohmann::json::parse(golden.config);
  ASSERT_EQ(config.at("dtype"), "float64");
  dg::models::ResNet model(
      dg::testing::golden_model_options(config).reference_ops(GetParam().reference_ops));
  model->to(device, torch::kDouble);
  dg::testing::load_state(*model, golden.with_prefix("sd__"));

  const dg::train::Recipe recipe = dg::testing::golden_recipe(config);
  auto optimizer = dg::train::make_sgd(*model, recipe.sgd);
  const dg::train::Classifier classifier{
      model.ptr(), [&](const torch::Tensor& in) { return model->forward(in); }};

  const torch::Tensor& images = golden.at("traj_x");
  const torch::Tensor& labels = golden.at("traj_y");
  const torch::Tensor& ce = golden.at("traj_ce");
  const torch::Tensor& gating = golden.at("traj_gating");
  const torch::Tensor& num_on = golden.at("traj_num_on");
  const int64_t steps = config.at("steps");
  ASSERT_EQ(images.size(0), steps);
  for (int64_t i = 0; i < steps; ++i) {
    const auto step = dg::train::train_step(classifier, *optimizer, recipe.gating_loss,
                                            images[i].to(device), labels[i].to(device));
    const double expected_ce = ce[i].item<double>();
    const double expected_gating = gating[i].item<double>();
    EXPECT_NEAR(step.ce_loss, expected_ce, kTol + kTol * std::abs(expected_ce)) << "step " << i;
    EXPECT_NEAR(step.gating_loss, expected_gating, kTol + kTol * std::abs(expected_gating))
        << "step " << i;
    EXPECT_EQ(open_gates(*model), num_on[i].item<int64_t>()) << "open gates at step " << i;
  }

  auto params = model->named_parameters();
  auto buffers = model->named_buffers();
  const auto end = golden.with_prefix("end__");
  EXPECT_EQ(end.size(), params.size() + buffers.size());
  for (const auto& [key, expected] : end) {
    const torch::Tensor* actual = params.find(key);
    if (actual == nullptr) actual = buffers.find(key);
    ASSERT_NE(actual, nullptr) << key;
    EXPECT_TRUE(all_close(*actual, expected, kTol, kTol)) << "after " << steps << " steps: " << key;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, TrajectoryGolden,
                         ::testing::Values(TrajectoryCase{"traj_pg_w8_a3_pb2_pact_spbp", false},
                                           TrajectoryCase{"traj_cg_p4_group_spbp", false},
                                           TrajectoryCase{"traj_cg_p4_group_spbp", true}),
                         case_name);
