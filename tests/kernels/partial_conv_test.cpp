// The one-pass convolution and block-diagonal partial sums (partial_conv)
// against LibTorch's convolutions, and a CG layer that uses it against the
// original's computation.
#include "kernels/partial_conv.h"

#include "dnn_gating/layers/cg_conv.h"
#include "test_support.h"

namespace pc = dnn_gating::kernels::partial_conv;
using dnn_gating::testing::all_close;

namespace {

// The CG layer's mask: diagonal blocks of `groups` input and output groups,
// or the first input group for every output.
torch::Tensor cg_mask(int64_t out, int64_t in, int64_t groups, bool use_group) {
  torch::Tensor m = torch::zeros({out, in, 3, 3});
  const int64_t ic = in / groups, oc = out / groups;
  if (!use_group) {
    m.narrow(1, 0, ic).fill_(1);
    return m;
  }
  for (int64_t i = 0; i < groups; ++i) m.narrow(0, i * oc, oc).narrow(1, i * ic, ic).fill_(1);
  return m;
}

struct Case {
  int64_t in, out, stride, padding, groups, size;
  bool use_group;
};

}  // namespace

TEST(PartialConv, FullAndPartialSumsAsTwoConvolutions) {
  const std::vector<Case> cases{
      {16, 16, 1, 1, 4, 9, true},  {16, 32, 2, 1, 4, 11, true}, {32, 32, 1, 1, 2, 8, true},
      {64, 64, 1, 1, 4, 5, true},  {16, 16, 1, 1, 2, 7, false}, {32, 64, 2, 1, 8, 9, true},
      {16, 48, 1, 0, 1, 6, false}, {64, 16, 2, 1, 16, 7, true}, {32, 16, 1, 2, 2, 7, true},
      {16, 16, 2, 1, 4, 3, true},  {16, 16, 1, 1, 4, 37, true}, {32, 32, 2, 0, 4, 20, true},
  };
  torch::manual_seed(3);
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.in) + "->" + std::to_string(c.out) + " stride " +
                 std::to_string(c.stride) + " groups " + std::to_string(c.groups));
    const torch::Tensor x =
        torch::randn({3, c.in, c.size, c.size}).contiguous(at::MemoryFormat::ChannelsLast);
    const torch::Tensor w = torch::randn({c.out, c.in, 3, 3});
    const torch::Tensor mask = cg_mask(c.out, c.in, c.groups, c.use_group);
    const auto blocks = pc::group_blocks(mask, c.groups);
    ASSERT_EQ(static_cast<int64_t>(blocks.size()), c.out);
    ASSERT_TRUE(pc::supported(w, c.groups, {c.stride, c.stride}));
    const auto [full, partial] =
        pc::full_and_partial(x, w, blocks, {c.stride, c.stride}, {c.padding, c.padding});
    EXPECT_TRUE(full.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(all_close(full, torch::conv2d(x, w, {}, c.stride, c.padding), 1e-5, 1e-4));
    EXPECT_TRUE(
        all_close(partial, torch::conv2d(x, w * mask, {}, c.stride, c.padding), 1e-5, 1e-4));
  }
}

TEST(PartialConv, TakesOnlyBlockMasksAndItsShapes) {
  EXPECT_FALSE(pc::group_blocks(torch::rand({16, 16, 3, 3}), 4).size());
  EXPECT_FALSE(pc::group_blocks(cg_mask(16, 16, 4, true) * 2, 4).size());
  EXPECT_FALSE(pc::group_blocks(cg_mask(16, 16, 4, true), 3).size());
  EXPECT_EQ(pc::group_blocks(cg_mask(16, 16, 4, true), 4).size(), 16U);
  EXPECT_EQ(pc::group_blocks(cg_mask(16, 16, 4, false), 4).size(), 16U);
  torch::Tensor two_groups = cg_mask(16, 16, 4, true);
  two_groups[0].narrow(0, 4, 4).fill_(1);
  EXPECT_FALSE(pc::group_blocks(two_groups, 4).size());
  EXPECT_FALSE(pc::supported(torch::zeros({16, 16, 5, 5}), 4, {1, 1}));
  EXPECT_FALSE(pc::supported(torch::zeros({12, 16, 3, 3}), 4, {1, 1}));
  EXPECT_FALSE(pc::supported(torch::zeros({16, 24, 3, 3}), 4, {1, 1}));
  EXPECT_FALSE(pc::supported(torch::zeros({16, 16, 3, 3}), 4, {1, 3}));
  EXPECT_FALSE(pc::supported(torch::zeros({16, 16, 3, 3}, torch::kDouble), 4, {1, 1}));
}

// A CG layer whose inference takes the one-pass kernel (16 channels in four
// groups) against the original's masked convolutions and float sigmoid: the
// same outputs wherever both open or both close a gate, and gates flipped by
// the summation order's rounding no more than a handful.
TEST(PartialConv, CGLayerInferenceMatchesTheOriginal) {
  for (const int64_t p : {4, 2}) {
    SCOPED_TRACE("partitions " + std::to_string(p));
    torch::manual_seed(4);
    namespace dl = dnn_gating::layers;
    dl::CGConv2d fast(dl::CGConv2dOptions(16, 32, 3).padding(1).partitions(p).use_group(true));
    dl::CGConv2d reference(
        dl::CGConv2dOptions(16, 32, 3).padding(1).partitions(p).use_group(true).reference_ops(
            true));
    {
      torch::NoGradGuard no_grad;
      reference->weight.copy_(fast->weight);
      fast->threshold().uniform_(-0.5, 0.5);
      reference->threshold().copy_(fast->threshold());
    }
    fast->eval();
    reference->eval();
    const torch::Tensor x =
        torch::randn({4, 16, 12, 12}).contiguous(at::MemoryFormat::ChannelsLast);
    torch::NoGradGuard no_grad;
    for (const auto mode : {dl::Skipping::kNever, dl::Skipping::kAlways}) {
      fast->set_skipping(mode);
      const torch::Tensor y = fast->forward(x);
      const torch::Tensor expected = reference->forward(x);
      const int64_t on = fast->last_counts().num_on, on_ref = reference->last_counts().num_on;
      EXPECT_GT(on, 0);
      EXPECT_LT(on, y.numel());
      EXPECT_LE(std::abs(on - on_ref), 3) << on << " vs " << on_ref;
      const torch::Tensor agree = ((y - expected).abs() <= 1e-4 + 1e-4 * expected.abs());
      EXPECT_GE(agree.sum().item<int64_t>(), y.numel() - 3);
    }
  }
}

// What follows a CG layer in a block (an evaluation-mode BatchNorm, a ReLU)
// applied in the layer's last pass: the values of the two passes after it,
// on the one-pass kernel and on the library's way (skipping always).
TEST(PartialConv, CGLayerAppliesTheNextBatchNormAndReLU) {
  namespace dl = dnn_gating::layers;
  for (const auto mode : {dl::Skipping::kFastest, dl::Skipping::kAlways}) {
    for (const int64_t in : {16, 64}) {
      const bool relu = in == 16;
      SCOPED_TRACE(std::to_string(in) + " input channels, " + dl::to_string(mode));
      torch::manual_seed(5);
      dl::CGConv2d layer(
          dl::CGConv2dOptions(in, 32, 3).padding(1).partitions(4).use_group(true).skipping(mode));
      torch::nn::BatchNorm2d next(32);
      {
        torch::NoGradGuard no_grad;
        layer->threshold().uniform_(-0.5, 0.5);
        next->weight.uniform_(-2, 2);  // negative scales too
        next->bias.uniform_(-1, 1);
        next->running_mean.uniform_(-1, 1);
        next->running_var.uniform_(0.5, 2);
      }
      layer->eval();
      next->eval();
      const torch::Tensor x =
          torch::randn({4, in, 10, 10}).contiguous(at::MemoryFormat::ChannelsLast);
      torch::NoGradGuard no_grad;
      const torch::Tensor normalised = next->forward(layer->forward(x));
      const torch::Tensor expected = relu ? torch::relu(normalised) : normalised;
      const int64_t on = layer->last_counts().num_on;
      const torch::Tensor y = layer->forward_then(x, next, relu);
      EXPECT_EQ(layer->last_counts().num_on, on);
      EXPECT_TRUE(all_close(y, expected, 1e-5, 1e-5));
      if (relu) EXPECT_GT((y == 0).sum().item<int64_t>(), y.numel() / 8);
    }
  }
}

// A CG layer training on channels-last input takes the one-pass sums forward
// and its own backward pass (the base path dense below 8 channels per group,
// grouped above), the gate's batch normalisation folded into the gate's
// kernels: its outputs and the gradients of the input, weights and threshold
// and the running statistics against the original's chain of operations.
// Gates all closed, then all open, so that each sum's gradient is checked
// alone (the gate's own slope vanishes so far from the threshold), then
// about half open, through the gate's slope and the normalisation.
TEST(PartialConv, CGLayerTrainsLikeTheOriginal) {
  namespace dl = dnn_gating::layers;
  const std::vector<Case> cases{
      {16, 16, 1, 1, 4, 8, true}, {16, 32, 2, 1, 2, 9, true}, {32, 32, 1, 1, 4, 6, true}};
  int checked = 0;
  for (const Case& c : cases) {
    for (const double threshold : {100.0, -100.0, 0.0}) {
      SCOPED_TRACE(std::to_string(c.in) + "->" + std::to_string(c.out) + " groups " +
                   std::to_string(c.groups) + " threshold " + std::to_string(threshold));
      // A gate on its threshold may fall the other way in another summation
      // order; then the outputs are compared and another seed is drawn, so
      // that every case has its gradients compared once.
      bool compared = false;
      for (int seed = 6; seed < 16 && !compared; ++seed) {
        torch::manual_seed(seed);
        const auto options = dl::CGConv2dOptions(c.in, c.out, 3)
                                 .stride(c.stride)
                                 .padding(c.padding)
                                 .partitions(c.groups)
                                 .use_group(true)
                                 .ginit(threshold);
        dl::CGConv2d fast(options);
        dl::CGConv2d reference(dl::CGConv2dOptions(options).reference_ops(true));
        {
          torch::NoGradGuard no_grad;
          reference->weight.copy_(fast->weight);
        }
        const torch::Tensor x =
            torch::randn({3, c.in, c.size, c.size}).contiguous(at::MemoryFormat::ChannelsLast);
        const torch::Tensor x_fast = x.clone().requires_grad_(true);
        const torch::Tensor x_ref = x.clone().requires_grad_(true);
        const torch::Tensor y = fast->forward(x_fast);
        const torch::Tensor expected = reference->forward(x_ref);
        const torch::Tensor g = torch::randn_like(expected);
        (y * g).sum().backward();
        (expected * g).sum().backward();
        const int64_t on = fast->last_counts().num_on;
        if (threshold != 0.0) EXPECT_EQ(on, threshold > 0 ? 0 : y.numel());
        if (threshold == 0.0) EXPECT_TRUE(on > y.numel() / 4 && on < y.numel() * 3 / 4) << on;
        ASSERT_LE(std::abs(on - reference->last_counts().num_on), 2);
        const torch::Tensor agree = (y - expected).abs() <= 1e-4 + 1e-5 * expected.abs();
        EXPECT_GE(agree.sum().item<int64_t>(), y.numel() - 2);
        if (on != reference->last_counts().num_on) continue;
        compared = true;
        ++checked;
        EXPECT_TRUE(all_close(y, expected, 1e-5, 1e-4));
        EXPECT_TRUE(all_close(x_fast.grad(), x_ref.grad(), 1e-4, 1e-4));
        EXPECT_TRUE(all_close(fast->weight.grad(), reference->weight.grad(), 1e-4, 1e-4));
        EXPECT_TRUE(all_close(fast->threshold().grad(), reference->threshold().grad(), 1e-4, 1e-4));
        EXPECT_GT(fast->weight.grad().abs().sum().item<double>(), 0.0);
        EXPECT_TRUE(all_close(fast->bn->running_mean, reference->bn->running_mean, 1e-5, 1e-5));
        EXPECT_TRUE(all_close(fast->bn->running_var, reference->bn->running_var, 1e-5, 1e-5));
      }
      EXPECT_TRUE(compared) << "no seed gave gates that agree: gradients never compared";
    }
  }
  EXPECT_EQ(checked, static_cast<int>(cases.size()) * 3) << "cases whose gradients were compared";
}
