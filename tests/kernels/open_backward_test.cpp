// The backward pass over rows holding a nonzero gradient, against LibTorch's
// whole convolution backward.
#include "kernels/open_backward.h"

#include "test_support.h"

namespace ob = dnn_gating::kernels::open_backward;
using dnn_gating::testing::all_close;

namespace {

struct OpenShape {
  int64_t batch, in, out, height, width, kernel, padding;
};

// A gradient whose (image, output row, output channel) rows are nonzero
// with probability `share`, and zero elsewhere, channels-last; within an
// open row about half the positions are zero too, as a gate that opens
// part of a row leaves them.
torch::Tensor row_gradient(int64_t n, int64_t o, int64_t h, int64_t w, double share) {
  const torch::Tensor rows = (torch::rand({n, o, h, 1}) < share).to(torch::kFloat);
  const torch::Tensor positions = (torch::rand({n, o, h, w}) < 0.5).to(torch::kFloat);
  return (torch::randn({n, o, h, w}) * rows * positions)
      .contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace

TEST(OpenBackward, AddsTheWholeBackwardPassFromTheOpenRowsAlone) {
  torch::manual_seed(31);
  const auto cl = at::MemoryFormat::ChannelsLast;
  for (const OpenShape s : {OpenShape{3, 16, 16, 9, 11, 3, 1}, OpenShape{2, 32, 24, 8, 8, 3, 1},
                            OpenShape{2, 64, 8, 5, 7, 3, 0}, OpenShape{2, 16, 5, 6, 6, 1, 0},
                            OpenShape{1, 48, 7, 7, 9, 5, 2}}) {
    for (const double share : {0.0, 0.3, 1.0}) {
      SCOPED_TRACE(testing::Message() << "in " << s.in << " out " << s.out << " kernel "
                                      << s.kernel << " share " << share);
      const torch::Tensor x = torch::randn({s.batch, s.in, s.height, s.width}).contiguous(cl);
      const torch::Tensor weight = torch::randn({s.out, s.in, s.kernel, s.kernel});
      const int64_t oh = s.height + 2 * s.padding - s.kernel + 1;
      const int64_t ow = s.width + 2 * s.padding - s.kernel + 1;
      const torch::Tensor grad = row_gradient(s.batch, s.out, oh, ow, share);
      ASSERT_TRUE(ob::supported(x, weight, grad, {1, 1}, {s.padding, s.padding}));
      auto [gx, gw, unused] = at::convolution_backward(
          grad, x, weight, c10::nullopt, {1, 1}, {s.padding, s.padding}, {1, 1}, false, {0, 0}, 1,
          {true, true, false});
      // Added to what the tensors hold.
      const torch::Tensor before_x = torch::randn_like(x).contiguous(cl);
      const torch::Tensor before_w = torch::randn_like(weight);
      torch::Tensor ours_x = before_x.clone(cl), ours_w = before_w.clone();
      const auto done = ob::add_backward(grad, x, weight, {1, 1}, {s.padding, s.padding}, ours_x,
                                         ours_w);
      EXPECT_TRUE(all_close(ours_x, before_x + gx, 1e-4, 1e-4)) << "input gradient";
      EXPECT_TRUE(all_close(ours_w, before_w + gw, 1e-4, 1e-3)) << "weight gradient";
      EXPECT_EQ(done.rows, s.batch * s.out * oh);
      EXPECT_NEAR(static_cast<double>(done.rows_computed) / static_cast<double>(done.rows),
                  ob::open_row_share(grad), 1e-12);
      EXPECT_NEAR(ob::open_row_share(grad), share, 0.15);
      // Either gradient alone.
      torch::Tensor only_x = torch::zeros_like(x).contiguous(cl);
      ob::add_backward(grad, x, weight, {1, 1}, {s.padding, s.padding}, only_x, {});
      EXPECT_TRUE(all_close(only_x, gx, 1e-4, 1e-4)) << "input gradient alone";
      torch::Tensor only_w = torch::zeros_like(weight);
      ob::add_backward(grad, x, weight, {1, 1}, {s.padding, s.padding}, {}, only_w);
      EXPECT_TRUE(all_close(only_w, gw, 1e-4, 1e-3)) << "weight gradient alone";
    }
  }
}

TEST(OpenBackward, TakesOnlyWhatItComputes) {
  const auto cl = at::MemoryFormat::ChannelsLast;
  const torch::Tensor x = torch::randn({2, 16, 8, 8}).contiguous(cl);
  const torch::Tensor weight = torch::randn({16, 16, 3, 3});
  const torch::Tensor grad = torch::randn({2, 16, 8, 8}).contiguous(cl);
  EXPECT_TRUE(ob::supported(x, weight, grad, {1, 1}, {1, 1}));
  EXPECT_FALSE(ob::supported(x.contiguous(), weight, grad, {1, 1}, {1, 1}));  // NCHW input
  EXPECT_FALSE(ob::supported(x, weight, grad, {2, 2}, {1, 1}));               // stride 2
  EXPECT_FALSE(ob::supported(x, weight, grad.narrow(3, 0, 6), {1, 1}, {1, 1}));  // wrong output
  const torch::Tensor x8 = torch::randn({2, 8, 8, 8}).contiguous(cl);
  EXPECT_FALSE(ob::supported(x8, torch::randn({16, 8, 3, 3}), grad, {1, 1}, {1, 1}));  // 8 channels
  EXPECT_THROW(ob::add_backward(grad, x, weight, {2, 2}, {1, 1}, {}, {}), c10::Error);
}
