// Layer-level golden vectors of the original implementation: forward output,
// input and parameter gradients, gate counters and (CG) BatchNorm statistics.
#include <cmath>
#include <nlohmann/json.hpp>

#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/layers/quantized_conv.h"
#include "dnn_gating/quant/quantize.h"
#include "dnn_gating/setting_error.h"
#include "test_support.h"

namespace dg = dnn_gating;
using dnn_gating::testing::all_close;
using dnn_gating::testing::GoldenCase;

namespace {

int64_t config_int(const GoldenCase& golden, const std::string& key) {
  return nlohmann::json::parse(golden.config).at(key).get<int64_t>();
}

bool config_bool(const GoldenCase& golden, const std::string& key) {
  return nlohmann::json::parse(golden.config).value(key, false);
}

// Loads the initial state on `device`, runs forward + backward there,
// compares everything recorded (see float32_layer_tolerance).
void check_layer(torch::nn::Module& layer, const GoldenCase& golden, const torch::Device& device,
                 const std::function<torch::Tensor(const torch::Tensor&)>& forward) {
  const auto [rtol, atol] = dg::testing::float32_layer_tolerance(device);
  layer.to(device);
  dg::testing::load_state(layer, golden.with_prefix("init__"));
  layer.train(config_bool(golden, "train"));
  torch::Tensor x = golden.at("x").to(device).clone().requires_grad_(true);
  torch::Tensor y = forward(x);
  EXPECT_TRUE(all_close(y, golden.at("y"), rtol, atol)) << "output";
  y.backward(golden.at("grad_y").to(device));
  EXPECT_TRUE(all_close(x.grad(), golden.at("grad_x"), rtol, atol)) << "grad_x";
  for (const auto& [name, grad] : golden.with_prefix("grad__")) {
    EXPECT_TRUE(all_close(layer.named_parameters()[name].grad(), grad, rtol, atol))
        << "grad of " << name;
  }
  auto buffers = layer.named_buffers();
  for (const auto& [name, value] : golden.with_prefix("after__")) {
    if (buffers.contains(name)) {
      EXPECT_TRUE(all_close(buffers[name], value, rtol, atol)) << "after " << name;
    }
  }
}

// The layer a golden case describes.
dg::layers::PGConv2dOptions pg_options(const GoldenCase& golden) {
  return dg::layers::PGConv2dOptions(config_int(golden, "in_channels"),
                                     config_int(golden, "out_channels"),
                                     config_int(golden, "kernel_size"))
      .stride(config_int(golden, "stride"))
      .padding(config_int(golden, "padding"))
      .wbits(config_int(golden, "wbits"))
      .abits(config_int(golden, "abits"))
      .pred_bits(config_int(golden, "pred_bits"))
      .sparse_bp(config_bool(golden, "sparse_bp"));
}

dg::layers::CGConv2dOptions cg_options(const GoldenCase& golden) {
  return dg::layers::CGConv2dOptions(config_int(golden, "in_channels"),
                                     config_int(golden, "out_channels"),
                                     config_int(golden, "kernel_size"))
      .stride(config_int(golden, "stride"))
      .padding(config_int(golden, "padding"))
      .partitions(config_int(golden, "partitions"))
      .use_group(config_bool(golden, "use_group"))
      .shuffle(config_bool(golden, "shuffle"))
      .sparse_bp(config_bool(golden, "sparse_bp"));
}

void check_counts(const dg::layers::GatedLayer& layer, const GoldenCase& golden) {
  EXPECT_EQ(layer.last_counts().num_out, golden.at("num_out").item<int64_t>());
  EXPECT_EQ(layer.last_counts().num_on, golden.at("num_on").item<int64_t>());
}

}  // namespace

class QuantizedConvGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(QuantizedConvGolden, MatchesOriginal) {
  DG_LOAD_GOLDEN_OR_SKIP(GetParam(), golden);
  DG_TEST_DEVICE_OR_SKIP(device);
  dg::layers::QuantizedConv2d conv(
      dg::layers::QuantizedConv2dOptions(config_int(golden, "in_channels"),
                                         config_int(golden, "out_channels"),
                                         config_int(golden, "kernel_size"))
          .stride(config_int(golden, "stride"))
          .padding(config_int(golden, "padding"))
          .wbits(config_int(golden, "wbits"))
          .abits(config_int(golden, "abits")));
  check_layer(*conv, golden, device, [&](const torch::Tensor& x) { return conv(x); });
}
INSTANTIATE_TEST_SUITE_P(Cases, QuantizedConvGolden,
                         ::testing::Values("qconv_w8_a3", "qconv_w1_a2_s2"));

// Both implementations of the gated layers: the fused kernels used by
// default and the original's chain of operations (reference_ops).
class PGConvGolden : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(PGConvGolden, MatchesOriginal) {
  const auto& [name, reference] = GetParam();
  DG_LOAD_GOLDEN_OR_SKIP(name, golden);
  DG_TEST_DEVICE_OR_SKIP(device);
  dg::layers::PGConv2d conv(pg_options(golden).reference_ops(reference));
  check_layer(*conv, golden, device, [&](const torch::Tensor& x) { return conv(x); });
  check_counts(*conv, golden);
  if (reference) return;
  // Channels-last, as the models train: outputs, the input, weight and
  // threshold gradients and the counts through the fused kernels on that
  // layout.
  dg::layers::PGConv2d laid_out(pg_options(golden));
  check_layer(*laid_out, golden, device, [&](const torch::Tensor& x) {
    const torch::Tensor y = laid_out(x.contiguous(at::MemoryFormat::ChannelsLast));
    if (device.is_cpu()) {
      EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast)) << "computed channels-last";
    }
    return y;
  });
  check_counts(*laid_out, golden);
}
INSTANTIATE_TEST_SUITE_P(Cases, PGConvGolden,
                         ::testing::Combine(::testing::Values("pgconv_w8_a3_pb2_sparse",
                                                              "pgconv_w8_a4_pb2_dense_s2"),
                                            ::testing::Bool()));

class CGConvGolden : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(CGConvGolden, MatchesOriginal) {
  const auto& [name, reference] = GetParam();
  DG_LOAD_GOLDEN_OR_SKIP(name, golden);
  DG_TEST_DEVICE_OR_SKIP(device);
  dg::layers::CGConv2d conv(cg_options(golden).reference_ops(reference));
  // The mask is built from the options; it must equal the recorded one.
  EXPECT_TRUE(torch::equal(conv->mask, golden.at("init__mask")));
  check_layer(*conv, golden, device, [&](const torch::Tensor& x) { return conv(x); });
  check_counts(*conv, golden);
  if (reference) return;
  // Channels-last, as the models train: the gate's batch normalisation
  // folded into the gate's kernels.
  dg::layers::CGConv2d laid_out(cg_options(golden));
  check_layer(*laid_out, golden, device, [&](const torch::Tensor& x) {
    return laid_out(x.contiguous(at::MemoryFormat::ChannelsLast));
  });
  check_counts(*laid_out, golden);
}
INSTANTIATE_TEST_SUITE_P(
    Cases, CGConvGolden,
    ::testing::Combine(::testing::Values("cgconv_p4_group_sparse", "cgconv_p2_dense_s2",
                                         "cgconv_p4_group_shuffle", "cgconv_p4_group_eval"),
                       ::testing::Bool()));

// Inference (no gradients) both ways: every output computed then selected,
// and only the open outputs computed. Same outputs, same gate counts. PG in
// float (Integer::kNever), as the original computed them: by default every
// output is computed in integers (integer_test.cpp).
class GatedInferenceGolden
    : public ::testing::TestWithParam<std::tuple<std::string, dg::layers::Skipping>> {};

TEST_P(GatedInferenceGolden, MatchesOriginal) {
  const auto& [name, skipping] = GetParam();
  DG_LOAD_GOLDEN_OR_SKIP(name, golden);
  torch::nn::AnyModule layer =
      name.rfind("pg", 0) == 0
          ? torch::nn::AnyModule(dg::layers::PGConv2d(
                pg_options(golden).skipping(skipping).integer(dg::layers::Integer::kNever)))
          : torch::nn::AnyModule(dg::layers::CGConv2d(cg_options(golden).skipping(skipping)));
  dg::testing::load_state(*layer.ptr(), golden.with_prefix("init__"));
  layer.ptr()->train(config_bool(golden, "train"));
  torch::NoGradGuard no_grad;
  // On the CPU: computing only the open outputs is a CPU kernel.
  const auto [rtol, atol] = dg::testing::float32_layer_tolerance(torch::kCPU);
  EXPECT_TRUE(all_close(layer.forward(golden.at("x")), golden.at("y"), rtol, atol));
  check_counts(*dynamic_cast<dg::layers::GatedLayer*>(layer.ptr().get()), golden);
  if (const auto* pg = dynamic_cast<dg::layers::PGConv2dImpl*>(layer.ptr().get())) {
    EXPECT_FALSE(pg->computed_in_integers());
  }
}
INSTANTIATE_TEST_SUITE_P(
    Cases, GatedInferenceGolden,
    ::testing::Combine(::testing::Values("pgconv_w8_a3_pb2_sparse", "pgconv_w8_a4_pb2_dense_s2",
                                         "cgconv_p4_group_sparse", "cgconv_p2_dense_s2",
                                         "cgconv_p4_group_shuffle", "cgconv_p4_group_eval"),
                       ::testing::Values(dg::layers::Skipping::kNever,
                                         dg::layers::Skipping::kAlways,
                                         dg::layers::Skipping::kFastest)));

TEST(LayerOptions, RejectInvalidSettingsWithClearMessages) {
  auto message_of = [](const std::function<void()>& make) -> std::string {
    try {
      make();
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    } catch (const dg::SettingError& e) {  // bit widths: one range, checked by the quantizers
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message_of([] {
              dg::layers::PGConv2d(dg::layers::PGConv2dOptions(4, 4, 3).abits(3).pred_bits(3));
            }).find("0 < pred_bits < abits, got pred_bits=3 abits=3"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              dg::layers::CGConv2d(dg::layers::CGConv2dOptions(6, 8, 3).partitions(4));
            }).find("partitions=4 must divide"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              dg::layers::CGConv2d(dg::layers::CGConv2dOptions(8, 8, 3).partitions(0));
            }).find("at least 1, got 0"),
            std::string::npos);
  EXPECT_NE(message_of([] {
              dg::layers::QuantizedConv2d(dg::layers::QuantizedConv2dOptions(4, 4, 3).wbits(-2));
            }).find("wbits must be between 0"),
            std::string::npos);
}

TEST(CGConv, MaskPatterns) {
  dg::layers::CGConv2d grouped(dg::layers::CGConv2dOptions(4, 4, 1).partitions(2).use_group(true));
  EXPECT_TRUE(torch::equal(grouped->mask.view({4, 4}), torch::tensor({{1.f, 1.f, 0.f, 0.f},
                                                                      {1.f, 1.f, 0.f, 0.f},
                                                                      {0.f, 0.f, 1.f, 1.f},
                                                                      {0.f, 0.f, 1.f, 1.f}})));
  dg::layers::CGConv2d first(dg::layers::CGConv2dOptions(4, 2, 1).partitions(2));
  EXPECT_TRUE(torch::equal(first->mask.view({2, 4}),
                           torch::tensor({{1.f, 1.f, 0.f, 0.f}, {1.f, 1.f, 0.f, 0.f}})));
}

TEST(CGConv, ChannelShuffleInterleavesGroups) {
  torch::Tensor x = torch::arange(6, torch::kFloat).view({1, 6, 1, 1});
  EXPECT_TRUE(torch::equal(dg::layers::channel_shuffle(x, 2).flatten(),
                           torch::tensor({0.f, 3.f, 1.f, 4.f, 2.f, 5.f})));
}

// Without a backward pass the gated layers decide their gates from the logit
// alone, without the sigmoid. Their decisions must equal the float sigmoid's,
// including logits a few ulps above zero, where the float sigmoid rounds to
// exactly 0.5 for some magnitudes and not for others. The expected values are
// the original's chain of ATen operations on the inference path's own
// convolutions (PG: the MSB and LSB convolutions of a batch of N; CG: the
// channels-last base path and full convolution).
namespace {

// Sets threshold[c] to one ulp below gate_input[0, c, 1, 1] for even c (a
// logit just above zero) and to that value itself for odd c (a logit of 0).
void thresholds_at(torch::Tensor threshold, const torch::Tensor& gate_input) {
  torch::NoGradGuard no_grad;
  for (int64_t c = 0; c < threshold.size(1); ++c) {
    const float v = gate_input[0][c][1][1].item<float>();
    threshold[0][c][0][0] = c % 2 == 0 ? std::nextafter(v, -INFINITY) : v;
  }
}

// Runs `layer` without gradients both ways and compares with y = expensive *
// open + cheap * (1 - open) (CG) or cheap + open * expensive (PG), open where
// float sigmoid(alpha (gate_input - threshold)) > 0.5.
template <typename Layer>
void expect_decided_like_sigmoid(Layer& layer, const torch::Tensor& x,
                                 const torch::Tensor& gate_input, double alpha,
                                 const std::function<torch::Tensor(const torch::Tensor&)>& mix) {
  torch::NoGradGuard no_grad;
  const torch::Tensor open =
      (torch::sigmoid(alpha * (gate_input - layer->threshold())) > 0.5).to(torch::kFloat);
  ASSERT_GT(open.sum().item<int64_t>(), 0);
  ASSERT_LT(open.sum().item<int64_t>(), open.numel());
  const torch::Tensor expected = mix(open);
  for (const auto skipping : {dg::layers::Skipping::kNever, dg::layers::Skipping::kAlways}) {
    SCOPED_TRACE(dg::layers::to_string(skipping));
    layer->set_skipping(skipping);
    const torch::Tensor y = layer(x);
    EXPECT_EQ(layer->last_counts().num_on, open.sum().item<int64_t>());
    if (skipping == dg::layers::Skipping::kNever) {
      EXPECT_TRUE(torch::equal(y, expected));
    } else {  // the expensive part summed by another kernel
      EXPECT_TRUE(all_close(y, expected, 1e-5, 1e-6));
    }
  }
}

}  // namespace

TEST(GatedInference, PGDecidesLikeTheSigmoidNearThreshold) {
  torch::manual_seed(7);
  const torch::Tensor x = torch::randn({6, 8, 9, 9}).relu();
  for (double scale : {1.0, 0.05}) {
    // In float: the thresholds sit on float32 sums of the float way (the
    // integer way's exact sums are tested in integer_test.cpp).
    dg::layers::PGConv2d conv(
        dg::layers::PGConv2dOptions(8, 8, 3).padding(1).wbits(8).abits(3).pred_bits(2).integer(
            dg::layers::Integer::kNever));
    conv->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor wq = dg::layers::quantize_weight(conv->weight, 8);
    const torch::Tensor parts = dg::quant::split_msb_lsb(x * scale, 3, 2);
    const torch::Tensor msb = torch::conv2d(parts[0], wq, {}, 1, 1);
    const torch::Tensor lsb = torch::conv2d(parts[1], wq, {}, 1, 1);
    thresholds_at(conv->threshold(), msb);
    expect_decided_like_sigmoid(conv, x * scale, msb, conv->options.alpha(),
                                [&](const torch::Tensor& open) { return msb + open * lsb; });
  }
}

TEST(GatedInference, CGDecidesLikeTheSigmoidNearThreshold) {
  torch::manual_seed(8);
  const torch::Tensor x = torch::randn({6, 8, 9, 9}).relu();
  for (double scale : {1.0, 0.05}) {
    dg::layers::CGConv2d conv(dg::layers::CGConv2dOptions(8, 8, 3).padding(1).partitions(2));
    conv->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor xc = (x * scale).contiguous(at::MemoryFormat::ChannelsLast);
    const torch::Tensor partial =
        torch::conv2d(xc.narrow(1, 0, 4), conv->weight.narrow(1, 0, 4), {}, 1, 1);
    const torch::Tensor full = torch::conv2d(xc, conv->weight, {}, 1, 1);
    const torch::Tensor gate_input = conv->bn(partial);
    thresholds_at(conv->threshold(), gate_input);
    expect_decided_like_sigmoid(
        conv, x * scale, gate_input, conv->options.alpha(),
        [&](const torch::Tensor& open) { return full * open + partial * (1 - open); });
  }
}
