// The cost figures a report prints, against SPEC section 6 computed by hand
// for models with known gate counts: PG average bits B = pb + f (b - pb),
// CG cost C = F (1/p + (1 - 1/p) f), the FLOP reduction and effective MACs,
// and the per-layer table's columns. The layers' own GateCost is used, so a
// wrong cost in a layer fails here too.
#include "dnn_gating/report/report.h"

#include <gtest/gtest.h>

#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/pg_conv.h"

namespace dg = dnn_gating;
namespace dtr = dnn_gating::train;

namespace {

dtr::LayerGateStats layer(const std::string& name, const dg::layers::GatedLayer& gated,
                          int64_t dense_macs, int64_t num_out, int64_t num_on) {
  dtr::LayerGateStats stats;
  stats.name = name;
  stats.kind = gated.gate_kind();
  stats.counts.num_out = num_out;
  stats.counts.num_on = num_on;
  stats.dense_macs_per_image = dense_macs;
  stats.cost = gated.gate_cost();
  return stats;
}

}  // namespace

TEST(CostFigures, PrecisionGatingAverageBitsAndEffectiveMacs) {
  // abits 3, pred_bits 2: B = 2 + f.
  dg::layers::PGConv2d pg(dg::layers::PGConv2dOptions(8, 8, 3).wbits(8).abits(3).pred_bits(2));
  dtr::Evaluation e;
  e.dense_macs = 10000;  // 6000 of them in ungated layers
  e.layers = {layer("a", *pg, 1000, 400, 100), layer("b", *pg, 3000, 800, 400)};
  const dtr::CostFigures costs = dtr::cost_figures(e);
  ASSERT_TRUE(costs.has_pg);
  EXPECT_FALSE(costs.has_cg);
  // (1000 * 2.25 + 3000 * 2.5) / 4000
  EXPECT_NEAR(costs.pg_average_bits, 2.4375, 1e-9);
  EXPECT_EQ(costs.pg_full_bits, 3);
  // 6000 + 1000 * 2.25 / 3 + 3000 * 2.5 / 3
  EXPECT_NEAR(costs.effective_macs, 9250.0, 1e-9);
  EXPECT_EQ(costs.dense_macs, 10000);
  // 100 - 100 * 500 / 1200
  EXPECT_NEAR(costs.sparsity, 100.0 - 100.0 * 500.0 / 1200.0, 1e-9);
  const auto lines = dtr::gate_report_lines(e, costs);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[1], "a                         400   25.00         1000            750");
  EXPECT_EQ(lines[2], "b                         800   50.00         3000           2500");
  EXPECT_EQ(lines[3], "Dense MACs per image: 10000, effective: 9250 (gate overhead not counted)");
  EXPECT_EQ(lines[4], "PG average activation bits: 2.44 (of 3)");
}

TEST(CostFigures, ChannelGatingFlopReduction) {
  // p = 4: C = F (0.25 + 0.75 f), whatever use_group.
  for (const bool group : {false, true}) {
    dg::layers::CGConv2d cg(dg::layers::CGConv2dOptions(8, 8, 3).partitions(4).use_group(group));
    dtr::Evaluation e;
    e.dense_macs = 10000;  // 4000 ungated
    e.layers = {layer("a", *cg, 2000, 1000, 100), layer("b", *cg, 4000, 1000, 600)};
    const dtr::CostFigures costs = dtr::cost_figures(e);
    ASSERT_TRUE(costs.has_cg);
    EXPECT_FALSE(costs.has_pg);
    // 4000 + 2000 * 0.325 + 4000 * 0.7
    EXPECT_NEAR(costs.effective_macs, 7450.0, 1e-9);
    EXPECT_NEAR(costs.cg_flop_reduction, 10000.0 / 7450.0, 1e-9);
    EXPECT_NEAR(costs.sparsity, 65.0, 1e-9);
    const auto lines = dtr::gate_report_lines(e, costs);
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines[1], "a                        1000   10.00         2000            650");
    EXPECT_EQ(lines[2], "b                        1000   60.00         4000           2800");
    EXPECT_EQ(lines[4], "CG FLOP reduction: 1.34x (gate overhead not counted)");
  }
  // p = 2, every gate closed: half of the gated layer's MACs.
  dg::layers::CGConv2d half(dg::layers::CGConv2dOptions(8, 8, 3).partitions(2));
  dtr::Evaluation e;
  e.dense_macs = 3000;
  e.layers = {layer("c", *half, 2000, 50, 0)};
  const dtr::CostFigures costs = dtr::cost_figures(e);
  EXPECT_NEAR(costs.effective_macs, 2000.0, 1e-9);
  EXPECT_NEAR(costs.cg_flop_reduction, 1.5, 1e-9);
  EXPECT_NEAR(costs.sparsity, 100.0, 1e-9);
}

TEST(CostFigures, UngatedModelCostsItsDenseMacs) {
  dtr::Evaluation e;
  e.dense_macs = 4096;
  const dtr::CostFigures costs = dtr::cost_figures(e);
  EXPECT_FALSE(costs.has_pg || costs.has_cg);
  EXPECT_NEAR(costs.effective_macs, 4096.0, 1e-9);
  EXPECT_NEAR(costs.cg_flop_reduction, 1.0, 1e-9);
  EXPECT_TRUE(dtr::gate_report_lines(e, costs).empty());
}

// --timing's lines: the time ratio and the realisation of the counted
// saving, (1 - 0.8) / (1 - 0.6) = 50 %, from figures set by hand.
TEST(TimingLines, RatioFloorAndRealisation) {
  dtr::GatingTiming timing;
  timing.has_gates = true;
  timing.images = 1000;
  timing.gated_correct = timing.dense_correct = 900;
  timing.gated_seconds = 0.8;
  timing.dense_seconds = 1.0;
  timing.batch_size = 128;
  timing.repeats = 3;
  timing.machine = "2 threads, avx2 kernels";
  dtr::CostFigures costs;
  costs.dense_macs = 1000;
  costs.effective_macs = 600;
  EXPECT_DOUBLE_EQ(costs.mac_fraction(), 0.6);
  EXPECT_DOUBLE_EQ(timing.time_ratio(), 0.8);
  ASSERT_TRUE(timing.realisation(costs.mac_fraction()).has_value());
  EXPECT_NEAR(*timing.realisation(costs.mac_fraction()), 0.5, 1e-12);
  const std::vector<std::string> expected{
      "timing: gated 1250 img/s, dense 1000 img/s, gated/dense time 0.80x (batch 128, 2 threads, "
      "avx2 kernels)",
      "timing: accuracy gated 90.00 %, dense 90.00 % over 1000 test images; best of 3 passes "
      "each, data loading excluded",
      "floor: effective/dense MACs 0.60 (the least the gated model can cost); realisation 50% of "
      "the counted saving turned into time"};
  EXPECT_EQ(dtr::timing_lines(timing, costs), expected);

  // Nothing counted as saved: no realisation; a slower gated way barely
  // slower prints 0 %, not -0 %.
  costs.effective_macs = 1000;
  EXPECT_FALSE(timing.realisation(costs.mac_fraction()).has_value());
  EXPECT_NE(dtr::timing_lines(timing, costs)[2].find("realisation n/a"), std::string::npos);
  costs.effective_macs = 600;
  timing.gated_seconds = 1.001;
  EXPECT_NE(dtr::timing_lines(timing, costs)[2].find("realisation 0% "), std::string::npos);

  // Without gates: one line.
  timing.has_gates = false;
  timing.dense_seconds = 0;
  const auto lines = dtr::timing_lines(timing, costs);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "timing: gated 999 img/s (batch 128, 2 threads, avx2 kernels); no gated layers: "
            "nothing to skip");
}
