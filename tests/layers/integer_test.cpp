// Quantized and PG layers computed in integers (uint8 codes x int8 weight
// codes, int32 sums, one scale) against the same layers in float.
#include "dnn_gating/layers/integer.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>

#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/layers/quantized_conv.h"
#include "dnn_gating/models/resnet.h"
#include "dnn_gating/quant/quantize.h"
#include "dnn_gating/setting_error.h"
#include "kernels/int8_conv.h"
#include "test_support.h"

namespace dg = dnn_gating;
using dg::layers::Integer;
using dnn_gating::testing::all_close;
using dnn_gating::testing::evaluation_batch_norm;

namespace {

// Skips where the build has no integer convolution; fails under CI, whose
// setup installs it.
#define DG_INTEGER_OR_SKIP()                                                          \
  if (!dg::layers::integer_available()) {                                             \
    if (std::getenv("CI") != nullptr) FAIL() << "no integer convolution (CI is set)"; \
    GTEST_SKIP() << "built without oneDNN (libdnnl-dev): no integer inference";       \
  }

dg::layers::QuantizedConv2d quantized_layer(int64_t in, int64_t out, int64_t stride, int64_t wbits,
                                            int64_t abits, Integer integer) {
  return dg::layers::QuantizedConv2d(dg::layers::QuantizedConv2dOptions(in, out, 3)
                                         .stride(stride)
                                         .padding(1)
                                         .wbits(wbits)
                                         .abits(abits)
                                         .integer(integer));
}

// The same layer computed in double: the float path's quantized values,
// summed in double (what exact integer sums times the scales give).
torch::Tensor in_double(const dg::layers::QuantizedConv2d& layer, const torch::Tensor& x) {
  const auto& o = layer->options;
  return torch::conv2d(dg::quant::quantize(x, o.abits()).to(torch::kDouble),
                       dg::layers::quantize_weight(layer->weight, o.wbits()).to(torch::kDouble), {},
                       *o.stride(), *o.padding());
}

}  // namespace

TEST(IntegerConv, SplitsWeightsOutsideInt8AndBoundsExactInputs) {
  DG_INTEGER_OR_SKIP();
  namespace ic = dg::kernels::int8_conv;
  ic::Geometry g;
  g.out_channels = 2;
  g.in_channels = 1;
  g.kernel_h = g.kernel_w = 1;
  const std::vector<int16_t> small{-127, 127};
  const std::vector<int16_t> large{-255, 255};
  const ic::Convolution a(g, small.data());
  const ic::Convolution b(g, large.data());
  EXPECT_FALSE(a.doubles_input());
  EXPECT_TRUE(b.doubles_input());
  EXPECT_EQ(a.max_exact_input_code(), 32767 / (2 * 127));
  EXPECT_EQ(b.max_exact_input_code(), 32767 / (2 * 128) / 2);
  // One pixel of code 7: doubled, [14, 7]; the sums are -255 * 7 and 255 * 7.
  const std::vector<uint8_t> src{14, 7};
  std::vector<float> dst(2);
  b.run(src.data(), 1, 1, 1, 0.5f, dst.data());
  EXPECT_EQ(dst[0], -255 * 7 * 0.5f);
  EXPECT_EQ(dst[1], 255 * 7 * 0.5f);
  EXPECT_FALSE(b.implementation().empty());
}

// Every weight and activation width the integer way takes, both layouts,
// stride 1 and 2: as the float way within float32 rounding, and at least as
// close to the sums in double.
TEST(IntegerConv, QuantizedLayerComputesTheFloatLayersValues) {
  DG_INTEGER_OR_SKIP();
  torch::manual_seed(3);
  torch::NoGradGuard no_grad;
  for (const int64_t wbits : {2, 5, 8}) {
    for (const int64_t abits : {2, 3, 4}) {
      for (const int64_t stride : {1, 2}) {
        for (const bool channels_last : {false, true}) {
          SCOPED_TRACE("w" + std::to_string(wbits) + " a" + std::to_string(abits) + " stride " +
                       std::to_string(stride) + (channels_last ? " channels-last" : ""));
          auto integer = quantized_layer(12, 20, stride, wbits, abits, Integer::kAlways);
          auto in_float = quantized_layer(12, 20, stride, wbits, abits, Integer::kNever);
          in_float->weight.copy_(integer->weight);
          torch::Tensor x = torch::relu(torch::randn({3, 12, 9, 10}));
          if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
          const torch::Tensor y = integer->forward(x);
          EXPECT_TRUE(integer->computed_in_integers());
          EXPECT_FALSE(in_float->computed_in_integers());
          const torch::Tensor expected = in_float->forward(x);
          EXPECT_TRUE(all_close(y, expected, 1e-5, 1e-6));
          const torch::Tensor exact = in_double(integer, x);
          const double integer_error = (y.to(torch::kDouble) - exact).abs().max().item<double>();
          const double float_error =
              (expected.to(torch::kDouble) - exact).abs().max().item<double>();
          EXPECT_LE(integer_error, std::max(float_error, 1e-6 * exact.abs().max().item<double>()));
        }
      }
    }
  }
}

// What the integer way does not take computes in float: negative inputs
// (no unsigned code), 8-bit activations (sums not exact without VNNI),
// binary weights, gradients, double precision.
TEST(IntegerConv, ComputesInFloatWhereIntegersDoNotApply) {
  DG_INTEGER_OR_SKIP();
  torch::manual_seed(4);
  const auto check = [](dg::layers::QuantizedConv2d& layer, const torch::Tensor& x,
                        bool expect_integers) {
    layer->forward(x);
    EXPECT_EQ(layer->computed_in_integers(), expect_integers);
  };
  const torch::Tensor x = torch::relu(torch::randn({2, 8, 6, 6}));
  {
    torch::NoGradGuard no_grad;
    auto layer = quantized_layer(8, 8, 1, 8, 3, Integer::kAlways);
    check(layer, x, true);
    check(layer, torch::randn({2, 8, 6, 6}), false);  // negative values
    torch::Tensor with_nan = x.clone();
    with_nan[0][0][0][0] = std::numeric_limits<float>::quiet_NaN();
    check(layer, with_nan, false);
    EXPECT_TRUE(layer->forward(with_nan).isnan().any().item<bool>());
    // A mismatched input is the float convolution's to refuse.
    EXPECT_THROW(layer->forward(torch::rand({2, 5, 6, 6})), c10::Error);
    auto in_double = quantized_layer(8, 8, 1, 8, 3, Integer::kAlways);
    in_double->to(torch::kDouble);
    check(in_double, x.to(torch::kDouble), false);
    auto eight = quantized_layer(8, 8, 1, 8, 8, Integer::kAlways);
    check(eight, x, false);
    auto binary = quantized_layer(8, 8, 1, 1, 3, Integer::kAlways);
    check(binary, x, false);
  }
  auto layer = quantized_layer(8, 8, 1, 8, 3, Integer::kAlways);
  check(layer, x, false);  // gradients enabled: training computes in float
}

// The weight codes are prepared once and again after the weight changes.
TEST(IntegerConv, FollowsWeightUpdates) {
  DG_INTEGER_OR_SKIP();
  torch::manual_seed(5);
  torch::NoGradGuard no_grad;
  auto integer = quantized_layer(8, 8, 1, 8, 3, Integer::kAlways);
  auto in_float = quantized_layer(8, 8, 1, 8, 3, Integer::kNever);
  const torch::Tensor x = torch::relu(torch::randn({2, 8, 6, 6}));
  for (int step = 0; step < 3; ++step) {
    in_float->weight.copy_(integer->weight);
    EXPECT_TRUE(all_close(integer->forward(x), in_float->forward(x), 1e-5, 1e-6)) << step;
    integer->weight.add_(torch::randn_like(integer->weight) * 0.3);  // in place, as SGD
  }
  auto copy = std::dynamic_pointer_cast<dg::layers::QuantizedConv2dImpl>(integer->clone());
  copy->weight.mul_(-1);
  in_float->weight.copy_(copy->weight);
  EXPECT_TRUE(all_close(copy->forward(x), in_float->forward(x), 1e-5, 1e-6));
}

// A BatchNorm, ReLU or PACT clip after a quantized convolution applied as
// the integer sums are written: the values of the float way's separate
// passes.
TEST(IntegerConv, FoldsTheBatchNormAndClipThatFollow) {
  DG_INTEGER_OR_SKIP();
  torch::manual_seed(8);
  torch::nn::BatchNorm2d bn = evaluation_batch_norm(16);
  auto integer = quantized_layer(8, 16, 1, 8, 3, Integer::kAlways);
  auto in_float = quantized_layer(8, 16, 1, 8, 3, Integer::kNever);
  torch::NoGradGuard no_grad;
  in_float->weight.copy_(integer->weight);
  const torch::Tensor x = torch::relu(torch::randn({3, 8, 7, 7}));
  const torch::Tensor normalised = bn->forward(in_float->forward(x));
  EXPECT_TRUE(all_close(integer->forward_then(x, bn, false), normalised, 1e-5, 1e-5));
  EXPECT_TRUE(integer->computed_in_integers());
  EXPECT_TRUE(all_close(integer->forward_then(x, bn, true), torch::relu(normalised), 1e-5, 1e-5));
  const torch::Tensor clipped = integer->forward_then_clipped(x, bn, 0.75);
  EXPECT_TRUE(integer->computed_in_integers());
  EXPECT_TRUE(all_close(clipped, torch::clamp(normalised, 0, 0.75), 1e-5, 1e-5));
  EXPECT_EQ(clipped.max().item<float>(), 0.75f);
  EXPECT_TRUE(all_close(in_float->forward_then_clipped(x, bn, 0.75), clipped, 1e-5, 1e-5));

  // A residual block's sum and activation too, written into the residual
  // where nothing else holds it, never into one the caller keeps.
  const torch::Tensor residual =
      torch::randn({3, 16, 7, 7}).contiguous(at::MemoryFormat::ChannelsLast);
  const torch::Tensor kept = residual.clone();
  const double inf = std::numeric_limits<double>::infinity();
  for (const double upper : {inf, 0.75}) {
    SCOPED_TRACE(upper);
    const torch::Tensor summed = normalised + residual;
    const torch::Tensor expected =
        std::isfinite(upper) ? torch::clamp(summed, 0, upper) : torch::relu(summed);
    const torch::Tensor y = integer->forward_then_added(x, bn, residual, upper);
    EXPECT_TRUE(integer->computed_in_integers());
    EXPECT_TRUE(all_close(y, expected, 1e-5, 1e-5));
    EXPECT_TRUE(torch::equal(residual, kept));  // the caller's residual is left as it was
    EXPECT_TRUE(all_close(in_float->forward_then_added(x, bn, residual, upper), y, 1e-5, 1e-5));
    torch::Tensor mine = residual.clone();
    const void* memory = mine.data_ptr();
    const torch::Tensor handed_over = integer->forward_then_added(x, bn, std::move(mine), upper);
    EXPECT_TRUE(all_close(handed_over, expected, 1e-5, 1e-5));
    EXPECT_EQ(handed_over.data_ptr(), memory);  // written where the residual was
  }
}

// PG's BatchNorm and ReLU or clip applied as its selection writes the
// outputs, in integers and in float, against the layer then the ops.
TEST(IntegerConv, PrecisionGatedLayerFoldsTheBatchNormAndClipThatFollow) {
  DG_INTEGER_OR_SKIP();
  torch::manual_seed(9);
  torch::nn::BatchNorm2d bn = evaluation_batch_norm(24);
  torch::NoGradGuard no_grad;
  const torch::Tensor x =
      torch::relu(torch::randn({4, 16, 9, 9})).contiguous(at::MemoryFormat::ChannelsLast);
  for (const Integer integer : {Integer::kAlways, Integer::kNever}) {
    SCOPED_TRACE(integer == Integer::kAlways ? "integers" : "float");
    torch::manual_seed(10);
    dg::layers::PGConv2d layer(
        dg::layers::PGConv2dOptions(16, 24, 3).padding(1).wbits(8).abits(3).pred_bits(2).integer(
            integer));
    layer->threshold().normal_(0, 0.2);
    const torch::Tensor normalised = bn->forward(layer->forward(x));
    const int64_t open = layer->last_counts().num_on;
    EXPECT_TRUE(all_close(layer->forward_then(x, bn, false), normalised, 1e-5, 1e-5));
    EXPECT_TRUE(all_close(layer->forward_then(x, bn, true), torch::relu(normalised), 1e-5, 1e-5));
    const torch::Tensor clipped = layer->forward_then_clipped(x, bn, 0.5);
    EXPECT_EQ(layer->computed_in_integers(), integer == Integer::kAlways);
    EXPECT_EQ(layer->last_counts().num_on, open);
    EXPECT_GT(open, 0);
    EXPECT_TRUE(all_close(clipped, torch::clamp(normalised, 0, 0.5), 1e-5, 1e-5));
    EXPECT_EQ(clipped.max().item<float>(), 0.5f);
  }
}

// PG in integers: the MSB and LSB convolutions on codes, the gate on the
// first. Gate decisions are those of the float way; where a float32 sum
// lies on the threshold and the two differ, the integer one is the exact one.
TEST(IntegerConv, PrecisionGatedLayerDecidesAsTheFloatLayer) {
  DG_INTEGER_OR_SKIP();
  torch::manual_seed(6);
  torch::NoGradGuard no_grad;
  struct Case {
    int64_t abits, pred_bits, stride;
  };
  for (const Case c : {Case{3, 2, 1}, Case{4, 2, 2}, Case{5, 1, 1}}) {
    SCOPED_TRACE("a" + std::to_string(c.abits) + " pb" + std::to_string(c.pred_bits));
    const auto options = dg::layers::PGConv2dOptions(16, 24, 3)
                             .stride(c.stride)
                             .padding(1)
                             .wbits(8)
                             .abits(c.abits)
                             .pred_bits(c.pred_bits);
    dg::layers::PGConv2d integer(dg::layers::PGConv2dOptions(options).integer(Integer::kAlways));
    dg::layers::PGConv2d in_float(dg::layers::PGConv2dOptions(options).integer(Integer::kNever));
    integer->threshold().normal_(0, 0.2);
    in_float->weight.copy_(integer->weight);
    in_float->threshold().copy_(integer->threshold());
    integer->keep_decisions(true);
    in_float->keep_decisions(true);
    const torch::Tensor x = torch::relu(torch::randn({4, 16, 10, 10}));
    const torch::Tensor y = integer->forward(x);
    EXPECT_TRUE(integer->computed_in_integers());
    const torch::Tensor expected = in_float->forward(x);
    const torch::Tensor a = integer->last_decisions().to(torch::kBool);
    const torch::Tensor b = in_float->last_decisions().to(torch::kBool);
    const torch::Tensor differ = a.ne(b);
    if (differ.any().item<bool>()) {
      // The MSB output in double from the same codes decides as integers do.
      const torch::Tensor msb = torch::conv2d(
          dg::quant::truncate(x, c.abits, c.pred_bits).to(torch::kDouble),
          dg::layers::quantize_weight(integer->weight, 8).to(torch::kDouble), {}, c.stride, 1);
      const torch::Tensor exact = msb.gt(integer->threshold().to(torch::kDouble));
      EXPECT_TRUE(a.masked_select(differ).equal(exact.masked_select(differ)))
          << differ.sum().item<int64_t>() << " decisions differ";
      ADD_FAILURE() << "float32 ties: " << differ.sum().item<int64_t>()
                    << " decisions differ (the integer ones are exact)";
    }
    EXPECT_EQ(integer->last_counts().num_on, in_float->last_counts().num_on);
    EXPECT_GT(integer->last_counts().num_on, 0);
    EXPECT_LT(integer->last_counts().num_on, integer->last_counts().num_out);
    EXPECT_TRUE(all_close(y, expected, 1e-5, 1e-6));
  }
}

// Whole networks: the quantized and PG ResNet-20 (w8 a3, PACT) evaluated in
// integers, every block convolution in integers. Not bit for bit the float
// way's logits: a quantizer input within a float32 rounding of a 3-bit
// boundary takes the other code in one of the two, a step of 1/7 of the
// range, and such a difference grows through the next quantizers. So the
// two agree in their predictions and gate counts, not to float rounding.
TEST(IntegerConv, QuantizedAndPrecisionGatedResNetsEvaluateAlike) {
  DG_INTEGER_OR_SKIP();
  for (const auto kind :
       {dg::layers::ConvKind::kQuantized, dg::layers::ConvKind::kPrecisionGated}) {
    torch::manual_seed(7);
    const auto options = dg::models::ResNetOptions(kind).wbits(8).abits(3).pred_bits(2).pact(true);
    dg::models::ResNet integer(dg::models::ResNetOptions(options).integer(Integer::kAlways));
    dg::models::ResNet in_float(dg::models::ResNetOptions(options).integer(Integer::kNever));
    {
      torch::NoGradGuard no_grad;
      const auto source = integer->named_parameters();
      for (auto& item : in_float->named_parameters()) item.value().copy_(source[item.key()]);
    }
    integer->eval();
    in_float->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::randn({16, 3, 32, 32});
    const torch::Tensor a = integer->forward(x);
    const torch::Tensor b = in_float->forward(x);
    EXPECT_GE(a.argmax(1).eq(b.argmax(1)).sum().item<int64_t>(), 14);
    EXPECT_LT((a - b).abs().mean().item<double>(), 0.05 * b.abs().mean().item<double>());
    int64_t integer_layers = 0;
    for (const auto& module : integer->modules()) {
      if (const auto* q = dynamic_cast<const dg::layers::QuantizedConv2dImpl*>(module.get())) {
        integer_layers += q->computed_in_integers();
      }
      if (const auto* p = dynamic_cast<const dg::layers::PGConv2dImpl*>(module.get())) {
        integer_layers += p->computed_in_integers();
      }
    }
    EXPECT_EQ(integer_layers, 18);  // every block convolution; the stem stays float
    if (kind == dg::layers::ConvKind::kPrecisionGated) {
      const double on_a = dg::layers::total_counts(*integer).on_fraction();
      const double on_b = dg::layers::total_counts(*in_float).on_fraction();
      EXPECT_NEAR(on_a, on_b, 0.005);
      EXPECT_GT(on_b, 0.01);
    }
  }
}

// The original's recorded PG and quantized layer cases, evaluated in
// integers. Where the recorded input has negative values (it does: the
// layers were recorded on randn), the integer way does not take it and the
// layer computes the recorded output in float; on the input's magnitudes,
// the same weights and thresholds give the float way's outputs and gate
// decisions (or, at a float32 tie, the exact one).
TEST(IntegerConv, GoldenLayerCasesBothWays) {
  DG_INTEGER_OR_SKIP();
  for (const std::string name :
       {"pgconv_w8_a3_pb2_sparse", "pgconv_w8_a4_pb2_dense_s2", "qconv_w8_a3"}) {
    SCOPED_TRACE(name);
    DG_LOAD_GOLDEN_OR_SKIP(name, golden);
    const auto config = nlohmann::json::parse(golden.config);
    const auto at = [&](const char* key) { return config.at(key).get<int64_t>(); };
    const bool pg = name.rfind("pg", 0) == 0;
    const auto make = [&](Integer integer) -> torch::nn::AnyModule {
      if (pg) {
        return torch::nn::AnyModule(dg::layers::PGConv2d(
            dg::layers::PGConv2dOptions(at("in_channels"), at("out_channels"), at("kernel_size"))
                .stride(at("stride"))
                .padding(at("padding"))
                .wbits(at("wbits"))
                .abits(at("abits"))
                .pred_bits(at("pred_bits"))
                .integer(integer)));
      }
      return torch::nn::AnyModule(
          dg::layers::QuantizedConv2d(dg::layers::QuantizedConv2dOptions(
                                          at("in_channels"), at("out_channels"), at("kernel_size"))
                                          .stride(at("stride"))
                                          .padding(at("padding"))
                                          .wbits(at("wbits"))
                                          .abits(at("abits"))
                                          .integer(integer)));
    };
    const auto in_integers = [&](const torch::nn::AnyModule& m) {
      if (const auto p = std::dynamic_pointer_cast<dg::layers::PGConv2dImpl>(m.ptr())) {
        return p->computed_in_integers();
      }
      return std::dynamic_pointer_cast<dg::layers::QuantizedConv2dImpl>(m.ptr())
          ->computed_in_integers();
    };
    torch::nn::AnyModule integer = make(Integer::kAlways);
    torch::nn::AnyModule in_float = make(Integer::kNever);
    dg::testing::load_state(*integer.ptr(), golden.with_prefix("init__"));
    dg::testing::load_state(*in_float.ptr(), golden.with_prefix("init__"));
    integer.ptr()->eval();
    in_float.ptr()->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor& x = golden.at("x");
    {  // the recorded input (forward values as in training: no BatchNorm here)
      const torch::Tensor y = integer.forward(x);
      EXPECT_EQ(in_integers(integer), (x >= 0).all().item<bool>());
      EXPECT_TRUE(all_close(y, golden.at("y"), 1e-5, 1e-6));
    }
    const torch::Tensor magnitudes = x.abs();
    const torch::Tensor a = integer.forward(magnitudes);
    EXPECT_TRUE(in_integers(integer));
    const torch::Tensor b = in_float.forward(magnitudes);
    EXPECT_TRUE(all_close(a, b, 1e-5, 1e-6));
    if (pg) {
      const auto* ga = dynamic_cast<dg::layers::GatedLayer*>(integer.ptr().get());
      const auto* gb = dynamic_cast<dg::layers::GatedLayer*>(in_float.ptr().get());
      EXPECT_EQ(ga->last_counts().num_on, gb->last_counts().num_on);
      EXPECT_GT(ga->last_counts().num_on, 0);
    }
  }
}

// kFastest times both ways on a shape's first pass and keeps the faster:
// either way, the float way's values, and the same way on later passes.
TEST(IntegerConv, FastestKeepsTheWayItTimed) {
  DG_INTEGER_OR_SKIP();
  torch::manual_seed(9);
  torch::NoGradGuard no_grad;
  auto fastest = quantized_layer(16, 16, 1, 8, 3, Integer::kFastest);
  auto in_float = quantized_layer(16, 16, 1, 8, 3, Integer::kNever);
  in_float->weight.copy_(fastest->weight);
  const torch::Tensor x = torch::relu(torch::randn({4, 16, 12, 12}));
  EXPECT_TRUE(all_close(fastest->forward(x), in_float->forward(x), 1e-5, 1e-6));
  const bool chosen = fastest->computed_in_integers();
  for (int pass = 0; pass < 3; ++pass) {
    EXPECT_TRUE(all_close(fastest->forward(x), in_float->forward(x), 1e-5, 1e-6));
    EXPECT_EQ(fastest->computed_in_integers(), chosen);
  }
}

TEST(IntegerConv, NamesItsModes) {
  EXPECT_EQ(dg::layers::integer_from_string("never"), Integer::kNever);
  EXPECT_EQ(dg::layers::to_string(Integer::kAlways), "always");
  EXPECT_THROW(dg::layers::integer_from_string("sometimes"), dg::SettingError);
}
