// The default CG inference path (the one-pass kernel with the next BatchNorm
// and ReLU folded in) against a float64 reference written here from the
// layer's formula (SPEC.md): partial sums over the mask, the gate
// [bn(partial) > threshold], the full sum where it is open, then the next
// BatchNorm and ReLU. Layers of 16, 32 and 64 channels, grouped (with and
// without channel shuffle) and not, with BatchNorm statistics gathered over
// batches in training mode, about half the gates open. A decision may differ
// only where the gate input lies within float rounding of the threshold.
#include <gtest/gtest.h>

#include <cmath>

#include "dnn_gating/layers/cg_conv.h"

namespace dg = dnn_gating;
using dg::layers::InferenceWay;

namespace {

struct OnePassCase {
  int64_t channels, partitions, size;
  bool group, shuffle;
  int64_t stride = 1, batch = 4;
  // How the layer evaluates (kNever: the one pass; kAlways: partial sums,
  // then the rest over open tiles) and the share of gates to open.
  dg::layers::Skipping skipping = dg::layers::Skipping::kNever;
  double open_share = 0.5;
};

std::string describe(const OnePassCase& c) {
  return std::to_string(c.channels) + "ch p" + std::to_string(c.partitions) + " " +
         std::to_string(c.size) + "x" + std::to_string(c.size) + (c.group ? " grouped" : "") +
         (c.shuffle ? " shuffled" : "") + " stride " + std::to_string(c.stride) + " batch " +
         std::to_string(c.batch) +
         (c.skipping == dg::layers::Skipping::kAlways ? " tiles" : " one pass") + " open " +
         std::to_string(c.open_share);
}

// Inference-mode BatchNorm in double.
torch::Tensor normalise(const torch::Tensor& y, const torch::Tensor& mean, const torch::Tensor& var,
                        double eps) {
  const auto v = [](const torch::Tensor& t) { return t.to(torch::kDouble).view({1, -1, 1, 1}); };
  return (y - v(mean)) / torch::sqrt(v(var) + eps);
}

void expect_matches_reference(const OnePassCase& c) {
  SCOPED_TRACE(describe(c));
  torch::manual_seed(c.channels + c.partitions + (c.group ? 1 : 0) + (c.shuffle ? 2 : 0));
  dg::layers::CGConv2d layer(dg::layers::CGConv2dOptions(c.channels, c.channels, 3)
                                 .padding(1)
                                 .stride(c.stride)
                                 .skipping(c.skipping)
                                 .partitions(c.partitions)
                                 .use_group(c.group)
                                 .shuffle(c.shuffle));
  torch::nn::BatchNorm2d next(c.channels);
  const auto input = [&] {
    return torch::relu(torch::randn({c.batch, c.channels, c.size, c.size}));
  };
  {
    // Statistics as training gathers them: the gate's and the next layer's.
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 20; ++i) next->forward(layer->forward(input()));
    // Thresholds around the gate input's quantile that opens about
    // open_share of the gates, spread so that channels differ.
    const double centre =
        std::sqrt(2.0) * torch::erfinv(torch::tensor(1.0 - 2.0 * c.open_share)).item<double>();
    layer->named_parameters()["threshold"].uniform_(centre - 0.7, centre + 0.7);
    next->weight.uniform_(0.5, 1.5);
    next->bias.uniform_(-0.3, 0.3);
  }
  layer->eval();
  next->eval();
  const torch::Tensor x = input();
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = layer->forward_then(x, next, /*relu=*/true).to(torch::kDouble);
  }
  ASSERT_EQ(layer->last_way(), c.skipping == dg::layers::Skipping::kAlways
                                   ? InferenceWay::kOpenTiles
                                   : InferenceWay::kOnePass)
      << "not the way asked for";
  const int64_t open = layer->last_counts().num_on;

  // The reference, in double.
  torch::NoGradGuard no_grad;
  torch::Tensor xd = x.to(torch::kDouble);
  if (c.shuffle) {
    const int64_t n = xd.size(0), ch = xd.size(1), g = c.partitions;
    xd = xd.reshape({n, g, ch / g, c.size, c.size}).transpose(1, 2).reshape(xd.sizes());
  }
  const torch::Tensor w = layer->weight.to(torch::kDouble);
  torch::Tensor mask = torch::zeros_like(w);
  const int64_t block = c.channels / c.partitions;
  for (int64_t i = 0; i < c.partitions; ++i) {
    if (c.group) {
      mask.narrow(0, i * block, block).narrow(1, i * block, block).fill_(1);
    } else if (i == 0) {
      mask.narrow(1, 0, block).fill_(1);
    }
  }
  const torch::Tensor partial = torch::conv2d(xd, w * mask, {}, c.stride, 1);
  const torch::Tensor full = torch::conv2d(xd, w, {}, c.stride, 1);
  const torch::Tensor gate = normalise(partial, layer->bn->running_mean, layer->bn->running_var,
                                       layer->bn->options.eps()) -
                             layer->named_parameters()["threshold"].to(torch::kDouble);
  const auto after = [&](const torch::Tensor& t) {
    return torch::relu(normalise(t, next->running_mean, next->running_var, next->options.eps()) *
                           next->weight.to(torch::kDouble).view({1, -1, 1, 1}) +
                       next->bias.to(torch::kDouble).view({1, -1, 1, 1}));
  };
  const torch::Tensor if_open = after(full);
  const torch::Tensor if_closed = after(partial);
  const torch::Tensor is_open = gate > 0;
  const torch::Tensor expected = torch::where(is_open, if_open, if_closed);
  const torch::Tensor near = gate.abs() < 1e-4;

  const int64_t total = y.numel();
  const int64_t expected_open = is_open.sum().item<int64_t>();
  const double share = static_cast<double>(expected_open) / static_cast<double>(total);
  EXPECT_GT(share, c.open_share / 3) << "too few open gates to test anything";
  EXPECT_LT(share, 1 - (1 - c.open_share) / 3) << "too few closed gates to test anything";
  EXPECT_LE(std::abs(open - expected_open), near.sum().item<int64_t>()) << "open gates";
  const auto close_to = [&](const torch::Tensor& want) {
    return (y - want).abs() <= 1e-4 + 1e-4 * want.abs();
  };
  // Near the threshold, the other decision's output is as right.
  const torch::Tensor flipped = torch::where(is_open, if_closed, if_open);
  const torch::Tensor agrees = close_to(expected) | (near & close_to(flipped));
  EXPECT_EQ(agrees.logical_not().sum().item<int64_t>(), 0)
      << "largest difference " << (y - expected).abs().max().item<double>();
}

}  // namespace

TEST(CGOnePass, MatchesADoubleReferenceWithTheNextBatchNormAndReLU) {
  for (const OnePassCase& c : std::vector<OnePassCase>{{16, 4, 32, true, true},
                                                       {16, 4, 32, false, false},
                                                       {32, 4, 16, true, false},
                                                       {32, 2, 16, false, false},
                                                       {64, 4, 8, true, true},
                                                       {64, 2, 8, true, false},
                                                       {64, 4, 8, false, false}}) {
    expect_matches_reference(c);
  }
}

// The tile way (partial sums, decisions, then the rest over tiles of
// positions holding an open gate) at every stage's shape, grouped and not,
// shuffled, stride 2, odd sizes (a last tile that is not whole), batch 1,
// and gates mostly closed, about half open and mostly open.
TEST(CGOnePass, TheTileWayMatchesTheReferenceToo) {
  using dg::layers::Skipping;
  std::vector<OnePassCase> cases;
  for (const double share : {0.05, 0.5, 0.95}) {
    for (OnePassCase c : std::vector<OnePassCase>{{16, 4, 32, true, true},
                                                  {16, 4, 13, false, false},
                                                  {32, 4, 16, true, false},
                                                  {32, 2, 11, false, false},
                                                  {64, 4, 8, true, true},
                                                  {64, 4, 9, false, false},
                                                  {16, 4, 17, true, false, 2},
                                                  {32, 4, 16, true, false, 2, 1},
                                                  {64, 2, 7, true, false, 1, 1}}) {
      c.skipping = Skipping::kAlways;
      c.open_share = share;
      cases.push_back(c);
    }
  }
  for (const OnePassCase& c : cases) expect_matches_reference(c);
}

// Under the default way, a layer takes the tile way after a batch with few
// open gates and the one pass after one with many.
TEST(CGOnePass, TheDefaultWayFollowsTheOnFractionItJustSaw) {
  torch::manual_seed(5);
  dg::layers::CGConv2d layer(
      dg::layers::CGConv2dOptions(32, 32, 3).padding(1).partitions(4).use_group(true));
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::relu(torch::randn({2, 32, 16, 16}));
  for (int i = 0; i < 5; ++i) layer->forward(x);
  layer->eval();
  const auto threshold = layer->named_parameters()["threshold"];
  threshold.fill_(100.0);  // every gate closed
  layer->forward(x);
  layer->forward(x);
  EXPECT_EQ(layer->last_way(), InferenceWay::kOpenTiles);
  EXPECT_EQ(layer->last_counts().num_on, 0);
  EXPECT_EQ(layer->last_tiles().first, 0);
  threshold.fill_(-100.0);  // every gate open
  layer->forward(x);
  layer->forward(x);
  EXPECT_EQ(layer->last_way(), InferenceWay::kOnePass);
  EXPECT_EQ(layer->last_counts().num_on, layer->last_counts().num_out);
}
