// The decisions a gated layer keeps (keep_decisions) are the ones its
// forward pass took, whichever way computed it: as many as it counted, and
// the output is the full (high-precision) result exactly where they are 1.
#include <torch/torch.h>

#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/layers/quantized_conv.h"
#include "dnn_gating/quant/quantize.h"
#include "test_support.h"

namespace dg = dnn_gating;
using dg::layers::InferenceWay;
using dg::layers::Skipping;
using dnn_gating::testing::all_close;

namespace {

// Checks the kept decisions of `layer`'s last pass against its count and
// against the output: y = full where on, partial elsewhere.
template <typename Layer>
void expect_decisions_explain(Layer& layer, const torch::Tensor& y, const torch::Tensor& full,
                              const torch::Tensor& partial) {
  const torch::Tensor& d = layer->last_decisions();
  ASSERT_TRUE(d.defined());
  EXPECT_EQ(d.scalar_type(), torch::kByte);
  EXPECT_EQ(d.sizes(), y.sizes());
  const int64_t on = d.sum().template item<int64_t>();
  EXPECT_EQ(on, layer->last_counts().num_on);
  EXPECT_GT(on, y.numel() / 20) << "too few open gates to test anything";
  EXPECT_LT(on, y.numel() - y.numel() / 20) << "too few closed gates to test anything";
  EXPECT_TRUE(all_close(y.detach(), torch::where(d.to(torch::kBool), full, partial), 1e-4, 1e-4));
}

}  // namespace

TEST(KeptDecisions, OffByDefaultAndWhenTurnedOff) {
  torch::manual_seed(1);
  dg::layers::CGConv2d layer(dg::layers::CGConv2dOptions(16, 16, 3).padding(1).use_group(true));
  layer->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::rand({2, 16, 8, 8});
  layer->forward(x);
  EXPECT_FALSE(layer->last_decisions().defined());
  layer->keep_decisions(true);
  layer->forward(x);
  EXPECT_TRUE(layer->last_decisions().defined());
  layer->keep_decisions(false);
  EXPECT_FALSE(layer->last_decisions().defined());
  layer->forward(x);
  EXPECT_FALSE(layer->last_decisions().defined());
}

// Every way of a CG layer: the one-pass kernel (16 and 32 channels), the
// open outputs only, every output then select (24 channels), the
// original's operations, and training mode with gradients.
TEST(KeptDecisions, ChannelGatedEveryWay) {
  struct Way {
    int64_t channels;
    Skipping skipping;
    bool reference, training, stride2;
    InferenceWay expected;
  };
  const std::vector<Way> ways{
      {16, Skipping::kNever, false, false, false, InferenceWay::kOnePass},
      {32, Skipping::kFastest, false, false, true, InferenceWay::kOnePass},
      {16, Skipping::kAlways, false, false, false, InferenceWay::kOpenTiles},
      {24, Skipping::kAlways, false, false, false, InferenceWay::kOpenOutputs},
      {24, Skipping::kNever, false, false, false, InferenceWay::kEveryOutput},
      {16, Skipping::kNever, true, false, false, InferenceWay::kEveryOutput},
      {16, Skipping::kNever, false, true, false, InferenceWay::kEveryOutput},
  };
  for (const Way& w : ways) {
    SCOPED_TRACE(std::to_string(w.channels) + " channels, way " +
                 std::to_string(static_cast<int>(w.expected)) + (w.reference ? " reference" : "") +
                 (w.training ? " training" : ""));
    torch::manual_seed(11);
    dg::layers::CGConv2d layer(dg::layers::CGConv2dOptions(w.channels, w.channels, 3)
                                   .padding(1)
                                   .stride(w.stride2 ? 2 : 1)
                                   .partitions(4)
                                   .use_group(true)
                                   .reference_ops(w.reference)
                                   .skipping(w.skipping));
    {
      torch::NoGradGuard no_grad;
      layer->named_parameters()["threshold"].uniform_(-0.5, 0.5);
      layer->named_buffers()["bn.running_mean"].uniform_(0.0, 1.0);
    }
    if (!w.training) layer->eval();
    layer->keep_decisions(true);
    const torch::Tensor x = torch::rand({3, w.channels, 10, 10});
    torch::Tensor y;
    if (w.training) {
      y = layer->forward(x.requires_grad_());
    } else {
      torch::NoGradGuard no_grad;
      y = layer->forward(x);
    }
    EXPECT_EQ(layer->last_way(), w.expected);
    torch::NoGradGuard no_grad;
    const torch::Tensor weight = layer->named_parameters()["weight"];
    const torch::Tensor mask = layer->named_buffers()["mask"];
    const auto stride = w.stride2 ? 2 : 1;
    const torch::Tensor full = torch::conv2d(x, weight, {}, stride, 1);
    const torch::Tensor partial = torch::conv2d(x, weight * mask, {}, stride, 1);
    expect_decisions_explain(layer, y, full, partial);
  }
}

TEST(KeptDecisions, PrecisionGatedEveryWay) {
  struct Way {
    Skipping skipping;
    bool reference, training;
  };
  for (const Way& w : {Way{Skipping::kNever, false, false}, Way{Skipping::kAlways, false, false},
                       Way{Skipping::kNever, true, false}, Way{Skipping::kNever, false, true}}) {
    SCOPED_TRACE(dg::layers::to_string(w.skipping) + (w.reference ? " reference" : "") +
                 (w.training ? " training" : ""));
    torch::manual_seed(12);
    dg::layers::PGConv2d layer(dg::layers::PGConv2dOptions(16, 32, 3)
                                   .padding(1)
                                   .wbits(8)
                                   .abits(4)
                                   .pred_bits(2)
                                   .reference_ops(w.reference)
                                   .skipping(w.skipping));
    {
      torch::NoGradGuard no_grad;
      layer->named_parameters()["threshold"].uniform_(0.0, 1.0);
    }
    if (!w.training) layer->eval();
    layer->keep_decisions(true);
    const torch::Tensor x = torch::rand({3, 16, 9, 9}) * 2;
    torch::Tensor y;
    if (w.training) {
      y = layer->forward(x.clone().requires_grad_());
    } else {
      torch::NoGradGuard no_grad;
      y = layer->forward(x);
    }
    if (!w.training && !w.reference) {
      EXPECT_EQ(layer->last_way(), w.skipping == Skipping::kAlways ? InferenceWay::kOpenOutputs
                                                                   : InferenceWay::kEveryOutput);
    }
    torch::NoGradGuard no_grad;
    const torch::Tensor wq = dg::layers::quantize_weight(layer->named_parameters()["weight"], 8);
    const torch::Tensor parts = dg::quant::split_msb_lsb(x, 4, 2);
    const torch::Tensor msb = torch::conv2d(parts[0], wq, {}, 1, 1);
    const torch::Tensor lsb = torch::conv2d(parts[1], wq, {}, 1, 1);
    expect_decisions_explain(layer, y, msb + lsb, msb);
  }
}
