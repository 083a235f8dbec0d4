// The float model as users evaluate it: each BatchNorm folded into its
// convolution, channels-last, against the original's chain of operations
// (reference_ops: convolution, BatchNorm, ReLU, NCHW) with the same weights.
#include <gtest/gtest.h>

#include "dnn_gating/models/resnet.h"

namespace dg = dnn_gating;

TEST(FloatEvaluation, FoldedChannelsLastGivesTheOriginalsLogits) {
  using dg::models::ConvKind;
  using dg::models::ResNetOptions;
  torch::manual_seed(11);
  dg::models::ResNet fast(ResNetOptions(ConvKind::kFloat));
  dg::models::ResNet original(ResNetOptions(ConvKind::kFloat).reference_ops(true));
  {
    torch::NoGradGuard no_grad;
    // BatchNorm statistics and affine parameters other than the initial ones.
    for (int i = 0; i < 3; ++i) fast->forward(torch::randn({16, 3, 32, 32}));
    for (const auto& item : fast->named_modules()) {
      if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(item.value().get())) {
        bn->weight.uniform_(0.5, 1.5);
        bn->bias.uniform_(-0.3, 0.3);
      }
    }
    const auto from = fast->named_parameters();
    for (auto& item : original->named_parameters()) item.value().copy_(from[item.key()]);
    const auto buffers = fast->named_buffers();
    for (auto& item : original->named_buffers()) item.value().copy_(buffers[item.key()]);
  }
  fast->eval();
  original->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({32, 3, 32, 32});
  const torch::Tensor got = fast->forward(x);
  const torch::Tensor want = original->forward(x);
  EXPECT_FALSE(torch::equal(got, want)) << "the same operations: nothing was folded";
  const double largest = (got - want).abs().max().item<double>();
  EXPECT_LT(largest, 1e-4 * std::max(1.0, want.abs().max().item<double>()))
      << "logits differ by " << largest;
  EXPECT_TRUE(torch::equal(got.argmax(1), want.argmax(1))) << "predictions differ";
}

// A block evaluated on a tensor its caller holds writes its sum into fresh
// memory: only an input handed over (moved in, as ResNet's forward hands
// each block's output to the next) may take the output.
TEST(FloatEvaluation, BlocksLeaveTheirCallersInputAsItWas) {
  using dg::models::ConvKind;
  using dg::models::ResNetOptions;
  for (const auto& options : {ResNetOptions(ConvKind::kFloat),
                              ResNetOptions(ConvKind::kQuantized).wbits(8).abits(3).pact(true)}) {
    torch::manual_seed(12);
    dg::models::BasicBlock block(options, 16, 16, 1);
    block->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor x =
        torch::relu(torch::randn({4, 16, 8, 8})).contiguous(at::MemoryFormat::ChannelsLast);
    const torch::Tensor before = x.clone();
    const torch::Tensor y = block->forward(x);
    EXPECT_TRUE(torch::equal(x, before));
    EXPECT_NE(y.data_ptr(), x.data_ptr());
    const torch::Tensor again = block->forward_activation({x.clone(), {}}, 0).value;
    EXPECT_TRUE(torch::equal(again, y));
  }
}
