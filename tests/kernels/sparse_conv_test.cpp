// The kernel behind gated inference that skips work, against LibTorch's own
// convolution: the convolution restricted to open outputs.
#include "kernels/sparse_conv.h"

#include <cmath>
#include <cstring>

#include "kernels/gate_decision.h"
#include "kernels/gates.h"
#include "test_support.h"

namespace sc = dnn_gating::kernels::sparse_conv;
using dnn_gating::testing::all_close;

namespace {

// A random [N, C, H, W] on/off pattern as OpenOutputs, and the same as a float mask.
std::pair<sc::OpenOutputs, torch::Tensor> random_open(torch::IntArrayRef shape, double fraction) {
  const torch::Tensor mask = (torch::rand(shape) < fraction).to(torch::kFloat);
  sc::OpenOutputs open = sc::OpenOutputs::none(shape);
  auto* words = reinterpret_cast<uint64_t*>(open.words.data_ptr<int64_t>());
  const auto m = mask.accessor<float, 4>();
  const int64_t per = open.words_per_position();
  for (int64_t n = 0; n < shape[0]; ++n)
    for (int64_t c = 0; c < shape[1]; ++c)
      for (int64_t h = 0; h < shape[2]; ++h)
        for (int64_t w = 0; w < shape[3]; ++w) {
          if (m[n][c][h][w] == 0) continue;
          words[((n * shape[2] + h) * shape[3] + w) * per + c / 64] |= uint64_t{1} << (c % 64);
          ++open.count;
        }
  return {open, mask};
}

struct ConvShape {
  int64_t batch, in, out, height, width, kh, kw, stride, padding;
};

}  // namespace

TEST(SparseConv, AddsTheConvolutionAtOpenOutputsOnly) {
  const std::vector<ConvShape> shapes{
      {2, 16, 16, 8, 8, 3, 3, 1, 1}, {3, 5, 7, 9, 11, 3, 3, 1, 1},   {2, 20, 70, 7, 6, 3, 3, 2, 1},
      {1, 64, 64, 8, 8, 3, 3, 1, 1}, {2, 12, 10, 10, 9, 3, 5, 2, 2}, {2, 8, 8, 5, 5, 1, 1, 1, 0},
      {2, 32, 32, 6, 7, 3, 3, 2, 1}, {2, 16, 70, 5, 5, 3, 3, 1, 1},  {2, 64, 20, 9, 9, 3, 3, 2, 1},
      {1, 32, 8, 4, 4, 3, 3, 1, 0},
  };
  torch::manual_seed(0);
  for (const auto& s : shapes) {
    for (const bool channels_last : {false, true}) {
      SCOPED_TRACE(std::to_string(s.in) + "->" + std::to_string(s.out) +
                   (channels_last ? " channels-last" : ""));
      torch::Tensor x = torch::randn({s.batch, s.in, s.height, s.width});
      if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
      const torch::Tensor w = torch::randn({s.out, s.in, s.kh, s.kw});
      const torch::Tensor full = torch::conv2d(x, w, {}, s.stride, s.padding).contiguous();
      const auto [open, mask] = random_open(full.sizes(), 0.3);
      const torch::Tensor base = torch::randn(full.sizes());
      torch::Tensor y = base.clone();
      if (channels_last) y = y.contiguous(at::MemoryFormat::ChannelsLast);
      sc::add_at_open(x, w, {s.stride, s.stride}, {s.padding, s.padding}, open, y);
      EXPECT_TRUE(all_close(y, base + mask * full, 1e-5, 1e-4));
      EXPECT_NEAR(open.on_fraction(), 0.3, 0.1);
    }
  }
}

// A CG layer's rest: the weights of its own input group are zero, and the
// kernel skips them; every output group sees the others' channels.
TEST(SparseConv, RestOfBlockDiagonalWeights) {
  torch::manual_seed(2);
  for (const int64_t channels : {16, 32, 64}) {
    for (const int64_t p : {2, 4}) {
      SCOPED_TRACE(std::to_string(channels) + " channels, p=" + std::to_string(p));
      const torch::Tensor x =
          torch::randn({2, channels, 7, 6}).contiguous(at::MemoryFormat::ChannelsLast);
      torch::Tensor w = torch::randn({channels, channels, 3, 3});
      const int64_t g = channels / p;
      for (int64_t i = 0; i < p; ++i) w.narrow(0, i * g, g).narrow(1, i * g, g).zero_();
      const torch::Tensor full = torch::conv2d(x, w, {}, 1, 1).contiguous();
      const auto [open, mask] = random_open(full.sizes(), 0.5);
      torch::Tensor y = torch::zeros(full.sizes()).contiguous(at::MemoryFormat::ChannelsLast);
      sc::add_at_open(x, w, {1, 1}, {1, 1}, open, y);
      EXPECT_TRUE(all_close(y, mask * full, 1e-5, 1e-4));
    }
  }
}

TEST(SparseConv, NoneAndAllOpen) {
  const sc::OpenOutputs none = sc::OpenOutputs::none({2, 70, 3, 4});
  const sc::OpenOutputs all = sc::OpenOutputs::all({2, 70, 3, 4});
  EXPECT_EQ(none.count, 0);
  EXPECT_EQ(all.count, 2 * 70 * 3 * 4);
  EXPECT_EQ(all.num_outputs(), 2 * 70 * 3 * 4);
  EXPECT_DOUBLE_EQ(all.on_fraction(), 1.0);
  const torch::Tensor x = torch::randn({2, 5, 3, 4});
  const torch::Tensor w = torch::randn({70, 5, 3, 3});
  torch::Tensor y = torch::zeros({2, 70, 3, 4});
  sc::add_at_open(x, w, {1, 1}, {1, 1}, all, y);
  EXPECT_TRUE(all_close(y, torch::conv2d(x, w, {}, 1, 1), 1e-5, 1e-4));
  sc::add_at_open(x, w, {1, 1}, {1, 1}, none, y);
  EXPECT_TRUE(all_close(y, torch::conv2d(x, w, {}, 1, 1), 1e-5, 1e-4));
}

// The gate opens where ATen's float sigmoid of the logit exceeds 0.5; the
// kernels decide it with one comparison. Every float logit in [0, 1e-5]
// (where the roundings decide), in both layouts, and the values around it.
TEST(GateDecision, EveryFloatLogitDecidesLikeTheSigmoid) {
  const float top = 1e-5f;
  int32_t last_bits = 0;
  std::memcpy(&last_bits, &top, sizeof(top));
  const torch::Tensor zero = torch::zeros({1, 64, 1, 1});
  constexpr int64_t kChunk = int64_t{1} << 22;  // [1, 64, 256, 256]
#ifdef __SANITIZE_ADDRESS__
  // Every eighth chunk: the sanitizers look at memory, which every chunk
  // touches alike; the normal build sweeps them all.
  constexpr int64_t kStep = 8 * kChunk;
#else
  constexpr int64_t kStep = kChunk;
#endif
  for (int64_t first = 0; first <= last_bits; first += kStep) {
    const torch::Tensor logits = torch::arange(first, first + kChunk, torch::kInt)
                                     .view(torch::kFloat)
                                     .view({1, 64, 256, 256});
    const int64_t expected = (torch::sigmoid(logits) > 0.5).sum().item<int64_t>();
    for (const bool cl : {false, true}) {
      const torch::Tensor z = cl ? logits.contiguous(at::MemoryFormat::ChannelsLast) : logits;
      ASSERT_EQ(dnn_gating::kernels::gates::open_outputs(z, zero, 1.0).count, expected)
          << "logits from bits " << first << (cl ? ", channels-last" : "");
    }
  }
  const torch::Tensor around =
      torch::tensor({-1.0f, -1e-30f, 0.0f, 1e-5f, 1.1e-5f, 1e-3f, 1.0f, 30.0f, NAN, INFINITY})
          .view({1, 10, 1, 1});
  EXPECT_EQ(
      dnn_gating::kernels::gates::open_outputs(around, torch::zeros({1, 10, 1, 1}), 1.0).count,
      (torch::sigmoid(around) > 0.5).sum().item<int64_t>());
}

// Under sparse_bp the gate's gradient is cut where ATen's float sigmoid of
// the logit is below 0.5; the training kernels decide it with one
// comparison, without the sigmoid stored. Every float logit in
// [-1e-5, -1e-8] (where the roundings decide), and values around it.
TEST(GateDecision, EveryNegativeFloatLogitIsCutLikeTheSigmoid) {
  namespace gd = dnn_gating::kernels::gate_decision;
  const float low = 1e-8f, top = 1e-5f;
  int32_t first_bits = 0, last_bits = 0;
  std::memcpy(&first_bits, &low, sizeof(low));
  std::memcpy(&last_bits, &top, sizeof(top));
  constexpr int64_t kChunk = int64_t{1} << 22;
  for (int64_t first = first_bits; first <= last_bits; first += kChunk) {
    const torch::Tensor logits =
        -torch::arange(first, first + kChunk, torch::kInt).view(torch::kFloat);
    const int64_t expected = (torch::sigmoid(logits) < 0.5).sum().item<int64_t>();
    const float* z = logits.data_ptr<float>();
    int64_t cut = 0;
    for (int64_t i = 0; i < kChunk; ++i) cut += gd::sigmoid_below_half(z[i]) ? 1 : 0;
    ASSERT_EQ(cut, expected) << "logits from bits " << first;
  }
  const std::vector<float> around{-1.0f,  -1e-4f, -1.1e-5f, -1e-9f, -1e-30f,  0.0f,
                                  1e-30f, 1e-7f,  1.0f,     -30.0f, -INFINITY};
  for (const float z : around) {
    const float s = torch::sigmoid(torch::tensor({z})).item<float>();
    EXPECT_EQ(gd::sigmoid_below_half(z), s < 0.5f) << z;
    EXPECT_EQ(gd::sigmoid_above_half(z), s > 0.5f) << z;
  }
}

// The sigmoid the training kernels compute for the gradient factor
// s (1 - s): within a few float roundings of ATen's; the factor within an
// absolute 1e-7 (1 - s loses digits as s nears 1, in ATen's chain too).
TEST(GateDecision, SigmoidOfTheGradientIsATensOwnWithinRounding) {
  const torch::Tensor z = torch::linspace(-40.0, 40.0, 1 << 20);
  const torch::Tensor expected = torch::sigmoid(z);
  torch::Tensor ours = torch::empty_like(z);
  const float* zp = z.data_ptr<float>();
  float* op = ours.data_ptr<float>();
  for (int64_t i = 0; i < z.numel(); ++i)
    op[i] = dnn_gating::kernels::gate_decision::sigmoid(zp[i]);
  EXPECT_TRUE(all_close(ours, expected, 5e-7, 1e-30));
  const torch::Tensor factor = ours * (1 - ours), aten_factor = expected * (1 - expected);
  EXPECT_TRUE(all_close(factor, aten_factor, 1e-6, 1e-7));
}
