// Gated inference that computes only the open outputs (Skipping::kAlways)
// against computing every output and selecting (kNever): same outputs to
// float rounding and the same gate decisions, over shapes that exercise the
// kernel's edges (channel counts off the vector width, more than 64 output
// channels, strides, paddings, non-square kernels, batch 1). PG layers are
// held to float (Integer::kNever): by default computing every output they
// would do so in integers, another way (integer_test.cpp).
#include <type_traits>

#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/pg_conv.h"
#include "test_support.h"

namespace dg = dnn_gating;
using dg::layers::Skipping;
using dnn_gating::testing::all_close;

namespace {

struct Shape {
  int64_t in, out, kh, kw, stride, padding, batch, height, width;
};

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> all{
      {16, 16, 3, 3, 1, 1, 4, 12, 12}, {16, 32, 3, 3, 2, 1, 3, 16, 16},
      {12, 20, 3, 3, 1, 1, 2, 9, 11},  {64, 96, 3, 3, 1, 1, 2, 8, 8},
      {8, 8, 1, 1, 1, 0, 2, 7, 7},     {20, 12, 3, 5, 2, 2, 2, 10, 9},
      {32, 32, 3, 3, 1, 1, 1, 16, 16},
  };
  return all;
}

void copy_state(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto params = to.named_parameters();
  for (const auto& item : from.named_parameters()) params[item.key()].copy_(item.value());
  auto buffers = to.named_buffers();
  for (const auto& item : from.named_buffers()) buffers[item.key()].copy_(item.value());
}

// Runs `forward` without gradients with the layer's thresholds spread so that
// some gates open and some close; returns {output, open count}.
template <typename Layer>
std::pair<torch::Tensor, int64_t> infer(Layer& layer, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  torch::Tensor y = layer->forward(x);
  return {y, layer->last_counts().num_on};
}

template <typename Options, typename Layer>
void expect_same_both_ways(const Options& options, const Shape& s, double threshold_scale) {
  torch::manual_seed(7);
  Layer dense(Options(options).skipping(Skipping::kNever));
  Layer sparse(Options(options).skipping(Skipping::kAlways));
  Layer fastest(Options(options).skipping(Skipping::kFastest));
  {
    torch::NoGradGuard no_grad;
    dense->named_parameters()["threshold"].uniform_(-threshold_scale, threshold_scale);
  }
  copy_state(*dense, *sparse);
  copy_state(*dense, *fastest);
  const torch::Tensor x = torch::rand({s.batch, s.in, s.height, s.width}) * 2;
  for (auto* layer : {&dense, &sparse, &fastest}) (*layer)->eval();
  const auto [y_dense, on_dense] = infer(dense, x);
  const auto [y_sparse, on_sparse] = infer(sparse, x);
  const auto [y_fastest, on_fastest] = infer(fastest, x);
  const int64_t total = y_dense.numel();
  EXPECT_GT(on_dense, total / 20) << "too few open gates to test anything";
  EXPECT_LT(on_dense, total - total / 20) << "too few closed gates to test anything";
  EXPECT_EQ(on_sparse, on_dense);
  EXPECT_EQ(on_fastest, on_dense);
  EXPECT_TRUE(all_close(y_sparse, y_dense, 1e-5, 1e-5));
  EXPECT_TRUE(all_close(y_fastest, y_dense, 1e-5, 1e-5));
  if constexpr (std::is_same_v<Layer, dg::layers::PGConv2d>) {
    for (auto* layer : {&dense, &sparse, &fastest}) {
      EXPECT_FALSE((*layer)->computed_in_integers()) << "the ways compared are float ones";
    }
  }
}

std::string describe(const Shape& s) {
  std::ostringstream out;
  out << s.in << "->" << s.out << " k" << s.kh << "x" << s.kw << " s" << s.stride << " p"
      << s.padding << " n" << s.batch << " " << s.height << "x" << s.width;
  return out.str();
}

}  // namespace

TEST(Skipping, PrecisionGatedLayerSameBothWays) {
  for (const Shape& s : shapes()) {
    SCOPED_TRACE(describe(s));
    const auto options = dg::layers::PGConv2dOptions(s.in, s.out, {s.kh, s.kw})
                             .stride(s.stride)
                             .padding(s.padding)
                             .wbits(8)
                             .abits(4)
                             .pred_bits(2)
                             .integer(dg::layers::Integer::kNever);
    expect_same_both_ways<dg::layers::PGConv2dOptions, dg::layers::PGConv2d>(options, s, 1.0);
  }
}

TEST(Skipping, ChannelGatedLayerSameBothWays) {
  for (const Shape& s : shapes()) {
    for (const int64_t p : {2, 4}) {
      for (const bool group : {false, true}) {
        if (s.in % p != 0 || s.out % p != 0) continue;
        SCOPED_TRACE(describe(s) + " p" + std::to_string(p) + (group ? " group" : ""));
        const auto options = dg::layers::CGConv2dOptions(s.in, s.out, {s.kh, s.kw})
                                 .stride(s.stride)
                                 .padding(s.padding)
                                 .partitions(p)
                                 .use_group(group)
                                 .shuffle(group && p == 4);
        expect_same_both_ways<dg::layers::CGConv2dOptions, dg::layers::CGConv2d>(options, s, 0.5);
      }
    }
  }
}

// The skipping mode decides how inference computes: the way each layer
// reports changes with it (and a mode that were ignored would leave it alone).
// Where CG's kernels apply (16, 32 or 64 input channels) `never` and a first
// `fastest` pass take the one pass (every output with the partial sums in the
// same pass) and `always` the tile way; elsewhere `never` computes every
// output and `always` the open outputs.
TEST(Skipping, ModeChoosesTheWay) {
  using dg::layers::InferenceWay;
  torch::manual_seed(5);
  const auto cg_way = [&](int64_t channels, Skipping mode) {
    dg::layers::CGConv2d layer(dg::layers::CGConv2dOptions(channels, channels, 3)
                                   .padding(1)
                                   .use_group(true)
                                   .skipping(mode));
    layer->eval();
    torch::NoGradGuard no_grad;
    layer->forward(torch::rand({2, channels, 8, 8}));
    return layer->last_way();
  };
  EXPECT_EQ(cg_way(16, Skipping::kNever), InferenceWay::kOnePass);
  EXPECT_EQ(cg_way(16, Skipping::kFastest), InferenceWay::kOnePass);
  EXPECT_EQ(cg_way(16, Skipping::kAlways), InferenceWay::kOpenTiles);
  EXPECT_EQ(cg_way(24, Skipping::kNever), InferenceWay::kEveryOutput);
  EXPECT_EQ(cg_way(24, Skipping::kAlways), InferenceWay::kOpenOutputs);
  const torch::Tensor x = torch::rand({2, 16, 8, 8});
  const auto pg_way = [&](Skipping mode) {
    dg::layers::PGConv2d layer(dg::layers::PGConv2dOptions(16, 16, 3)
                                   .padding(1)
                                   .wbits(8)
                                   .abits(4)
                                   .pred_bits(2)
                                   .skipping(mode)
                                   .integer(dg::layers::Integer::kNever));
    layer->eval();
    torch::NoGradGuard no_grad;
    layer->forward(x);
    EXPECT_FALSE(layer->computed_in_integers());
    return layer->last_way();
  };
  EXPECT_EQ(pg_way(Skipping::kNever), InferenceWay::kEveryOutput);
  EXPECT_EQ(pg_way(Skipping::kAlways), InferenceWay::kOpenOutputs);
  // Training computes every output whatever the mode.
  dg::layers::CGConv2d training(
      dg::layers::CGConv2dOptions(16, 16, 3).padding(1).skipping(Skipping::kAlways));
  training->forward(x);
  EXPECT_EQ(training->last_way(), InferenceWay::kEveryOutput);
}

// Without gradients in training mode (BatchNorm on batch statistics) the
// skipping way agrees with computing every output, with gates both open and
// closed; in double precision (every output: the kernels are float only) the
// layer is a reference that the float skipping way meets to float rounding.
TEST(Skipping, TrainingModeAndDoubleStillAgree) {
  torch::manual_seed(3);
  dg::layers::CGConv2d sparse(
      dg::layers::CGConv2dOptions(16, 16, 3).padding(1).use_group(true).skipping(
          Skipping::kAlways));
  dg::layers::CGConv2d dense(
      dg::layers::CGConv2dOptions(16, 16, 3).padding(1).use_group(true).skipping(Skipping::kNever));
  {
    torch::NoGradGuard no_grad;
    sparse->named_parameters()["threshold"].uniform_(-0.5, 0.5);
  }
  copy_state(*sparse, *dense);
  const torch::Tensor x = torch::rand({4, 16, 8, 8});
  torch::NoGradGuard no_grad;
  const torch::Tensor y_sparse = sparse(x);
  const int64_t on = sparse->last_counts().num_on;
  const int64_t total = y_sparse.numel();
  EXPECT_GT(on, total / 20) << "too few open gates to test anything";
  EXPECT_LT(on, total - total / 20) << "too few closed gates to test anything";
  EXPECT_TRUE(all_close(y_sparse, dense(x), 1e-5, 1e-5));
  // (A gate within rounding of its threshold may fall either way.)
  EXPECT_NEAR(dense->last_counts().num_on, on, 2);

  // Evaluation mode: the float skipping way against the layer in double.
  sparse->eval();
  dense->eval();
  const torch::Tensor y_float = sparse(x);
  const int64_t on_float = sparse->last_counts().num_on;
  EXPECT_EQ(sparse->last_way(), dg::layers::InferenceWay::kOpenTiles);
  dense->to(torch::kDouble);
  const torch::Tensor y_double = dense(x.to(torch::kDouble));
  EXPECT_NEAR(dense->last_counts().num_on, on_float, 2);
  EXPECT_TRUE(all_close(y_float.to(torch::kDouble), y_double, 1e-5, 1e-5));
}
