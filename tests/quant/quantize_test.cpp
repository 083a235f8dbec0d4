#include "dnn_gating/quant/quantize.h"

#include <limits>

#include "dnn_gating/quant/gate.h"
#include "dnn_gating/quant/pact.h"
#include "dnn_gating/setting_error.h"
#include "test_support.h"

namespace dg = dnn_gating;
using dnn_gating::testing::all_close;

namespace {

// Runs `op` on `device` on the golden input with the golden upstream
// gradient and checks output and input gradient. Element-wise operations
// round alike on every device: the CPU's tolerance holds on CUDA too.
template <typename Op>
void check_op(const dg::testing::GoldenCase& golden, const torch::Device& device, Op op) {
  torch::Tensor x = golden.at("x").to(device).clone().requires_grad_(true);
  torch::Tensor y = op(x);
  EXPECT_TRUE(all_close(y, golden.at("y"), 1e-5, 1e-6));
  y.backward(golden.at("grad_y").to(device));
  EXPECT_TRUE(all_close(x.grad(), golden.at("grad_x"), 1e-5, 1e-6));
}

}  // namespace

class QuantizeGolden : public ::testing::TestWithParam<int> {};

TEST_P(QuantizeGolden, MatchesOriginal) {
  const int bits = GetParam();
  DG_LOAD_GOLDEN_OR_SKIP("quantize_b" + std::to_string(bits), golden);
  DG_TEST_DEVICE_OR_SKIP(device);
  check_op(golden, device, [&](const torch::Tensor& x) { return dg::quant::quantize(x, bits); });
  EXPECT_TRUE(torch::equal(dg::quant::reference::quantize(golden.at("x"), bits), golden.at("y")));
}
INSTANTIATE_TEST_SUITE_P(Bits, QuantizeGolden, ::testing::Values(1, 3, 8));

TEST(TruncateGolden, MatchesOriginal) {
  DG_TEST_DEVICE_OR_SKIP(device);
  for (auto [b, bh] : {std::pair{3, 2}, std::pair{8, 4}}) {
    DG_LOAD_GOLDEN_OR_SKIP("truncate_b" + std::to_string(b) + "_bh" + std::to_string(bh), golden);
    check_op(golden, device,
             [&, b = b, bh = bh](const torch::Tensor& x) { return dg::quant::truncate(x, b, bh); });
  }
}

TEST(PactGolden, MatchesOriginalIncludingBoundGradient) {
  DG_LOAD_GOLDEN_OR_SKIP("pact_ub1.5", golden);
  DG_TEST_DEVICE_OR_SKIP(device);
  dg::quant::PactReLU pact(dg::quant::PactReLUOptions().upper_bound(1.5));
  pact->to(device);
  torch::Tensor x = golden.at("x").to(device).clone().requires_grad_(true);
  torch::Tensor y = pact(x);
  EXPECT_TRUE(all_close(y, golden.at("y"), 1e-5, 1e-6));
  y.backward(golden.at("grad_y").to(device));
  EXPECT_TRUE(all_close(x.grad(), golden.at("grad_x"), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(pact->upper_bound.grad(), golden.at("grad__upper_bound"), 1e-5, 1e-6));
}

// The fused kernels must reproduce the ATen reference bit for bit: a value
// that moves across a rounding boundary would change a quantized activation.
TEST(QuantizeFused, BitIdenticalToReference) {
  torch::manual_seed(3);
  // Even and odd sizes, so that every kernel's vector body and scalar tail run.
  const std::vector<std::vector<int64_t>> shapes{{64, 16, 9, 9}, {7, 3, 5, 11}, {13}};
  for (int trial = 0; trial < 6; ++trial) {
    const auto& shape = shapes[trial % shapes.size()];
    torch::Tensor x = torch::randn(shape) * (trial + 0.5);
    x.index_put_({torch::rand(shape) < 0.1}, 0.0);
    for (int bits : {1, 2, 3, 4, 8}) {
      EXPECT_TRUE(
          torch::equal(dg::quant::quantize(x, bits), dg::quant::reference::quantize(x, bits)))
          << "bits=" << bits;
    }
    for (auto [b, bh] : {std::pair{3, 2}, std::pair{4, 2}, std::pair{8, 4}}) {
      torch::Tensor msb = dg::quant::reference::truncate(x, b, bh);
      EXPECT_TRUE(torch::equal(dg::quant::truncate(x, b, bh), msb));
      torch::Tensor parts = dg::quant::split_msb_lsb(x, b, bh);
      EXPECT_TRUE(torch::equal(parts[0], msb));
      EXPECT_TRUE(torch::equal(parts[1], dg::quant::reference::quantize(x, b) - msb));
    }
  }
}

TEST(Quantize, HandDerivedValues) {
  // m = 1 + 1e-7; 2 bits: levels {0, 1/3, 2/3, 1} * m. 0.5 / m is just
  // below 0.5, so 0.5 * 3 rounds to 1, not 2; 0.6 / m * 3 rounds to 2.
  torch::Tensor x = torch::tensor({-1.0f, -0.5f, 0.0f, 0.2f, 0.6f, 1.0f});
  torch::Tensor y = dg::quant::quantize(x, 2);
  const float m = 1.0f + 1e-7f;
  torch::Tensor expected = torch::tensor({-m, -1.0f / 3 * m, 0.0f, 1.0f / 3 * m, 2.0f / 3 * m, m});
  EXPECT_TRUE(all_close(y, expected, 1e-6, 1e-7));
  // Binarisation: x = 0 rounds (0 + 1) / 2 = 0.5 to 0, giving -1.
  EXPECT_TRUE(torch::equal(dg::quant::quantize(torch::tensor({-3.0f, 0.0f, 0.4f, 2.0f}), 1),
                           torch::tensor({-1.0f, -1.0f, 1.0f, 1.0f})));
}

TEST(Quantize, StraightThroughGradientZeroOnlyAtZero) {
  torch::Tensor x = torch::tensor({-2.0f, 0.0f, 0.3f, 5.0f}, torch::requires_grad());
  dg::quant::quantize(x, 3).backward(torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}));
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({1.0f, 0.0f, 3.0f, 4.0f})));
  torch::Tensor z = torch::tensor({-2.0f, 0.0f, 5.0f}, torch::requires_grad());
  dg::quant::quantize(z, 1).backward(torch::tensor({1.0f, 2.0f, 3.0f}));
  EXPECT_TRUE(torch::equal(z.grad(), torch::tensor({1.0f, 2.0f, 3.0f})));
}

TEST(Quantize, FusedStraightThroughGradientMatchesMaskedFill) {
  torch::manual_seed(4);
  for (const auto& shape : {std::vector<int64_t>{32, 16, 8, 8}, std::vector<int64_t>{5, 7, 3}}) {
    torch::Tensor x = torch::randn(shape);
    x.index_put_({torch::rand(shape) < 0.3}, 0.0);
    const torch::Tensor g = torch::randn(shape);
    EXPECT_TRUE(torch::equal(dg::quant::ste_gradient(g, x), g.masked_fill(x == 0, 0)));
    // A non-contiguous gradient (a transposed view) gives the same result.
    const torch::Tensor gt = g.transpose(0, 1).contiguous().transpose(0, 1);
    EXPECT_TRUE(torch::equal(dg::quant::ste_gradient(gt, x), g.masked_fill(x == 0, 0)));
    // quantize's own backward, which keeps a one-byte mask instead of x.
    torch::Tensor xr = x.clone().requires_grad_(true);
    torch::Tensor y = dg::quant::quantize(xr, 3);
    EXPECT_TRUE(torch::equal(y, dg::quant::reference::quantize(x, 3)));
    y.backward(g);
    EXPECT_TRUE(torch::equal(xr.grad(), g.masked_fill(x == 0, 0)));
  }
}

TEST(Pact, FusedPassesMatchClampAndItsGradient) {
  torch::manual_seed(5);
  for (const auto& shape : {std::vector<int64_t>{64, 16, 16, 16}, std::vector<int64_t>{3, 5, 7}}) {
    const torch::Tensor x0 = torch::randn(shape) * 2;
    const torch::Tensor g = torch::randn(shape);
    torch::Tensor x = x0.clone().requires_grad_(true);
    dg::quant::PactReLU pact(dg::quant::PactReLUOptions().upper_bound(1.5));
    const torch::Tensor y = pact(x);
    EXPECT_TRUE(torch::equal(y, torch::clamp(x0, 0, 1.5)));
    y.backward(g);
    const torch::Tensor above = x0 > 1.5;
    EXPECT_TRUE(torch::equal(x.grad(), g.masked_fill(above.logical_or(x0 < 0), 0)));
    const torch::Tensor expected_bound =
        g.to(torch::kDouble).masked_fill(above.logical_not(), 0).sum().to(torch::kFloat);
    EXPECT_TRUE(all_close(pact->upper_bound.grad(), expected_bound, 1e-5, 1e-5));
  }
}

// PACT and the quantizer in one pass give the chain's values and gradients:
// inputs below 0, at exactly 0 (where the quantizer's gradient stops and
// the clip's does not), inside and above the bound, channels-last and flat.
TEST(Pact, QuantizedInOnePassMatchesTheChain) {
  torch::manual_seed(6);
  const std::vector<std::vector<int64_t>> shapes{{16, 16, 9, 9}, {3, 5, 7}};
  for (size_t s = 0; s < shapes.size(); ++s) {
    torch::Tensor x0 = torch::randn(shapes[s]) * 2;
    if (s == 0) x0 = x0.contiguous(at::MemoryFormat::ChannelsLast);
    x0.index_put_({torch::rand(shapes[s]) < 0.1}, 0.0);
    const torch::Tensor gq = torch::randn(shapes[s]);
    const torch::Tensor gy = torch::randn(shapes[s]);
    for (const int64_t bits : {2, 3, 8}) {
      for (const bool keep : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "shape " << s << " bits " << bits << " keep " << keep);
        const torch::Tensor u = torch::full({}, 1.5, torch::requires_grad());
        torch::Tensor x = x0.clone().requires_grad_(true);
        const auto both = dg::quant::pact_quantize(x, u, bits, keep);
        const torch::Tensor u_ref = torch::full({}, 1.5, torch::requires_grad());
        torch::Tensor x_ref = x0.clone().requires_grad_(true);
        const torch::Tensor y_ref = torch::clamp(x_ref, torch::zeros_like(u_ref), u_ref);
        const torch::Tensor q_ref = dg::quant::quantize(y_ref, bits);
        EXPECT_TRUE(torch::equal(both.quantized, q_ref));
        EXPECT_TRUE(
            torch::equal(both.quantized, dg::quant::reference::quantize(y_ref.detach(), bits)));
        EXPECT_EQ(both.clipped.defined(), keep);
        if (keep) {
          EXPECT_TRUE(torch::equal(both.clipped, y_ref));
          torch::autograd::backward({both.quantized, both.clipped}, {gq, gy});
          torch::autograd::backward({q_ref, y_ref}, {gq, gy});
        } else {
          both.quantized.backward(gq);
          q_ref.backward(gq);
        }
        EXPECT_TRUE(torch::equal(x.grad(), x_ref.grad()));
        EXPECT_TRUE(all_close(u.grad(), u_ref.grad(), 1e-5, 1e-5));
      }
    }
  }
  // Values at the edges, against the chain the model ran before (PACT's own
  // function, then the quantizer), NaNs of either sign included: a NaN
  // makes the scale, so every output, NaN in both.
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<std::vector<float>> edges{
      {-1.0f, -0.0f, 0.0f, 0.3f, 1.5f, 2.0f, inf, -inf}, {0.5f, nan, 1.0f}, {0.5f, -nan, 1.0f}};
  for (const auto& values : edges) {
    const torch::Tensor e0 = torch::tensor(values);
    const torch::Tensor g =
        torch::arange(1, static_cast<int64_t>(values.size()) + 1).to(torch::kFloat);
    const torch::Tensor u_fused = torch::full({}, 1.5, torch::requires_grad());
    torch::Tensor e = e0.clone().requires_grad_(true);
    const auto both = dg::quant::pact_quantize(e, u_fused, 3, true);
    const torch::Tensor u_chain = torch::full({}, 1.5, torch::requires_grad());
    torch::Tensor e_chain = e0.clone().requires_grad_(true);
    const torch::Tensor clipped = dg::quant::pact_relu(e_chain, u_chain);
    const torch::Tensor quantized = dg::quant::quantize(clipped, 3);
    EXPECT_TRUE(torch::equal(both.quantized.isnan(), quantized.isnan()));
    EXPECT_TRUE(torch::equal(both.quantized.nan_to_num(7), quantized.nan_to_num(7)));
    EXPECT_TRUE(torch::equal(both.clipped.nan_to_num(7), clipped.nan_to_num(7)));
    torch::autograd::backward({both.quantized, both.clipped}, {g, 2 * g});
    torch::autograd::backward({quantized, clipped}, {g, 2 * g});
    EXPECT_TRUE(torch::equal(e.grad(), e_chain.grad()));
    EXPECT_TRUE(torch::equal(u_fused.grad(), u_chain.grad()));
  }
  // A bound that is not positive takes the chain.
  torch::Tensor v = torch::randn({8}).requires_grad_(true);
  const auto chained = dg::quant::pact_quantize(v, torch::full({}, -1.0), 3, false);
  EXPECT_TRUE(torch::equal(chained.quantized,
                           dg::quant::quantize(dg::quant::pact_relu(v, torch::full({}, -1.0)), 3)));

  // No positive input: the scale is the quantizer's epsilon alone, all 0.
  torch::Tensor negative = (-torch::rand({4, 8, 3, 3}) - 0.1).requires_grad_(true);
  const torch::Tensor u = torch::full({}, 2.0, torch::requires_grad());
  const auto none = dg::quant::pact_quantize(negative, u, 3, true);
  EXPECT_EQ(none.quantized.abs().max().item<float>(), 0.0f);
}

TEST(Quantize, RejectsBadBitWidths) {
  torch::Tensor x = torch::randn({4});
  EXPECT_THROW(dg::quant::quantize(x, -1), dg::SettingError);
  EXPECT_THROW(dg::quant::quantize(x, dg::quant::kMaxBits + 1), dg::SettingError);
  EXPECT_THROW(dg::quant::truncate(x, 3, 3), c10::Error);
  EXPECT_THROW(dg::quant::truncate(x, 3, 0), c10::Error);
  try {
    dg::quant::truncate(x, 2, 4);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("bits=2 high_bits=4"),
              std::string::npos);
  }
}

TEST(GateStep, SparseBackpropZeroesClosedGates) {
  torch::Tensor x = torch::tensor({0.2f, 0.5f, 0.7f}, torch::requires_grad());
  torch::Tensor y = dg::quant::gate_step(x, 0.5, /*sparse_bp=*/true);
  EXPECT_TRUE(torch::equal(y, torch::tensor({0.0f, 0.0f, 1.0f})));
  y.backward(torch::tensor({1.0f, 2.0f, 3.0f}));
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({0.0f, 2.0f, 3.0f})));
  torch::Tensor z = torch::tensor({0.2f, 0.7f}, torch::requires_grad());
  dg::quant::gate_step(z, 0.5, /*sparse_bp=*/false).backward(torch::tensor({1.0f, 3.0f}));
  EXPECT_TRUE(torch::equal(z.grad(), torch::tensor({1.0f, 3.0f})));
}
