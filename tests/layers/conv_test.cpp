// Models build their convolutions by kind and ask any of them whether it
// folds the BatchNorm and ReLU after it: the layers answer both.
#include "dnn_gating/layers/conv.h"

#include <gtest/gtest.h>

#include <limits>

#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/layers/quantized_conv.h"
#include "test_support.h"

namespace dg = dnn_gating;
using dg::layers::ConvKind;
using dg::layers::ConvOptions;

TEST(MakeConv, BuildsEachKindWithItsSettings) {
  const auto options = [](ConvKind kind) {
    return ConvOptions(kind, 16, 32, 3)
        .stride(2)
        .padding(1)
        .wbits(8)
        .abits(3)
        .pred_bits(2)
        .pg_alpha(4.0)
        .partitions(2)
        .ginit(0.5)
        .cg_alpha(3.0)
        .use_group(true);
  };
  auto pg =
      dg::layers::make_conv(options(ConvKind::kPrecisionGated)).ptr<dg::layers::PGConv2dImpl>();
  ASSERT_NE(pg, nullptr);
  EXPECT_EQ(pg->options.wbits(), 8);
  EXPECT_EQ(pg->options.abits(), 3);
  EXPECT_EQ(pg->options.pred_bits(), 2);
  EXPECT_EQ(pg->options.alpha(), 4.0);
  EXPECT_EQ((*pg->options.stride())[0], 2);

  auto cg = dg::layers::make_conv(options(ConvKind::kChannelGated)).ptr<dg::layers::CGConv2dImpl>();
  ASSERT_NE(cg, nullptr);
  EXPECT_EQ(cg->options.partitions(), 2);
  EXPECT_EQ(cg->options.ginit(), 0.5);
  EXPECT_EQ(cg->options.alpha(), 3.0);
  EXPECT_TRUE(cg->options.use_group());

  auto quantized =
      dg::layers::make_conv(options(ConvKind::kQuantized)).ptr<dg::layers::QuantizedConv2dImpl>();
  ASSERT_NE(quantized, nullptr);
  EXPECT_EQ(quantized->options.wbits(), 8);
  EXPECT_EQ(quantized->options.abits(), 3);

  // A float convolution ignores the bit widths it is given.
  auto plain =
      dg::layers::make_conv(options(ConvKind::kFloat)).ptr<dg::layers::QuantizedConv2dImpl>();
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->options.wbits(), 0);
  EXPECT_EQ(plain->options.abits(), 0);
}

TEST(MakeConv, EveryConvolutionFoldsWhatFollows) {
  for (const ConvKind kind : {ConvKind::kFloat, ConvKind::kQuantized, ConvKind::kPrecisionGated,
                              ConvKind::kChannelGated}) {
    const auto conv = dg::layers::make_conv(ConvOptions(kind, 16, 16, 3).abits(4).pred_bits(2));
    // (A float convolution is a QuantizedConv2d of 0 bits: it folds in float.)
    EXPECT_NE(std::dynamic_pointer_cast<dg::layers::FusesNext>(conv.ptr()), nullptr);
  }
}

// A plain convolution's BatchNorm and activation folded in evaluation (a
// model's stem): the modules' values to float rounding; nothing where the
// fold would not compute the same function.
TEST(FoldedConv, GivesTheModulesValuesOrNothing) {
  torch::manual_seed(13);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 16, 3).padding(1).bias(false));
  torch::nn::BatchNorm2d bn = dg::testing::evaluation_batch_norm(16);
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({4, 3, 9, 9});
  const torch::Tensor normalised = bn->forward(conv->forward(x));
  const auto relu = dg::layers::folded_conv(*conv, *bn, std::numeric_limits<double>::infinity(), x);
  ASSERT_TRUE(relu.has_value());
  EXPECT_TRUE(torch::allclose(*relu, torch::relu(normalised), 1e-5, 1e-5));
  const auto clipped = dg::layers::folded_conv(*conv, *bn, 0.5, x);
  ASSERT_TRUE(clipped.has_value());
  EXPECT_TRUE(torch::allclose(*clipped, torch::clamp(normalised, 0, 0.5), 1e-5, 1e-5));
  EXPECT_FALSE(dg::layers::folded_conv(*conv, *bn, 0.5, x.to(torch::kDouble)).has_value());
  torch::nn::Conv2d biased(torch::nn::Conv2dOptions(3, 16, 3).padding(1));
  EXPECT_FALSE(dg::layers::folded_conv(*biased, *bn, 0.5, x).has_value());
  torch::nn::Conv2d dilated(torch::nn::Conv2dOptions(3, 16, 3).padding(2).dilation(2).bias(false));
  EXPECT_FALSE(dg::layers::folded_conv(*dilated, *bn, 0.5, x).has_value());
  bn->train();
  EXPECT_FALSE(dg::layers::folded_conv(*conv, *bn, 0.5, x).has_value());
}
