// Whole gated models evaluated both ways in float32: every output computed
// then selected (Skipping::kNever) and only the open outputs computed
// (kAlways), from the golden cases' weights and inputs. Same gate decisions
// in every layer, logits equal to float rounding. Float32 is pinned
// (Integer::kNever): by default a PG layer computing every output does so in
// integers (integer_test.cpp compares those with float).
#include <nlohmann/json.hpp>

#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/models/resnet.h"
#include "golden_models.h"
#include "test_support.h"

namespace dg = dnn_gating;
using dg::layers::Skipping;
using dnn_gating::testing::all_close;

namespace {

struct Evaluated {
  torch::Tensor logits;
  std::vector<dg::layers::GateCounts> counts;
};

Evaluated evaluate(const dg::testing::GoldenCase& golden, Skipping skipping) {
  const auto config = nlohmann::json::parse(golden.config);
  dg::models::ResNet model(dg::testing::golden_model_options(config).skipping(skipping).integer(
      dg::layers::Integer::kNever));
  dg::testing::load_state(*model, golden.with_prefix("sd__"));
  model->eval();
  torch::NoGradGuard no_grad;
  Evaluated out;
  out.logits = model->forward(golden.at("x").to(torch::kFloat));
  for (const auto& [name, layer] : dg::layers::gated_layers(*model)) {
    out.counts.push_back(layer->last_counts());
    if (const auto* pg = dynamic_cast<const dg::layers::PGConv2dImpl*>(layer)) {
      EXPECT_FALSE(pg->computed_in_integers()) << name << " computed in integers";
    }
  }
  return out;
}

}  // namespace

class SkippingModel : public ::testing::TestWithParam<std::string> {};

TEST_P(SkippingModel, SameDecisionsAndLogitsBothWays) {
  DG_LOAD_GOLDEN_OR_SKIP(GetParam(), golden);
  const Evaluated dense = evaluate(golden, Skipping::kNever);
  const Evaluated sparse = evaluate(golden, Skipping::kAlways);
  ASSERT_EQ(dense.counts.size(), sparse.counts.size());
  ASSERT_FALSE(dense.counts.empty());
  int64_t on = 0, total = 0;
  for (size_t i = 0; i < dense.counts.size(); ++i) {
    EXPECT_EQ(sparse.counts[i].num_on, dense.counts[i].num_on) << "gated layer " << i;
    EXPECT_EQ(sparse.counts[i].num_out, dense.counts[i].num_out) << "gated layer " << i;
    on += dense.counts[i].num_on;
    total += dense.counts[i].num_out;
  }
  EXPECT_GT(on, 0);
  EXPECT_LT(on, total);
  EXPECT_TRUE(all_close(sparse.logits, dense.logits, 1e-4, 1e-4));
}

INSTANTIATE_TEST_SUITE_P(Cases, SkippingModel,
                         ::testing::Values("resnet20_cg_p4_group_spbp",
                                           "resnet20_cg_postact_p2_group",
                                           "resnet20_pg_w8_a3_pb2_pact_spbp"));
