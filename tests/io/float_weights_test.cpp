// Starting from float weights: shared tensors copied by name and shape, a
// convolution bias folded into the BatchNorm after it (the same function in
// evaluation), the rest listed.
#include "dnn_gating/io/float_weights.h"

#include <torch/torch.h>

#include "test_support.h"

namespace dg = dnn_gating;
namespace dgt = dnn_gating::testing;

namespace {

// features.0: a 3x3 convolution, with or without a bias; features.1: BatchNorm.
struct Net : torch::nn::Module {
  explicit Net(bool bias, int64_t classes) {
    features = register_module(
        "features",
        torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).bias(bias)),
                              torch::nn::BatchNorm2d(8)));
    fc = register_module("fc", torch::nn::Linear(8, classes));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return fc->forward(torch::relu(features->forward(x)).mean({2, 3}));
  }
  torch::nn::Sequential features{nullptr};
  torch::nn::Linear fc{nullptr};
};

std::map<std::string, torch::Tensor> state_of(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().clone();
  return out;
}

}  // namespace

TEST(FloatWeights, FoldsBiasesAndListsTheRest) {
  torch::manual_seed(2);
  Net source(/*bias=*/true, 10);
  {
    torch::NoGradGuard no_grad;
    for (auto& b : source.named_buffers()) {
      if (b.key().find("running") != std::string::npos) b.value().uniform_(0.5, 1.5);
    }
    source.named_parameters()["features.0.bias"].uniform_(-1, 1);
  }
  Net target(/*bias=*/false, 10);
  const auto import = dg::train::import_float_weights(target, state_of(source), "w.pt");
  EXPECT_EQ(import.folded, std::vector<std::string>{"features.0.bias"});
  EXPECT_TRUE(import.initial.empty());
  EXPECT_TRUE(import.unused.empty());
  source.eval();
  target.eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::rand({2, 3, 9, 9});
  EXPECT_TRUE(dgt::all_close(target.forward(x), source.forward(x), 1e-5, 1e-5));

  // Another number of classes: the classifier keeps its initial values.
  Net other(/*bias=*/false, 4);
  const auto partial = dg::train::import_float_weights(other, state_of(source), "w.pt");
  EXPECT_EQ(partial.initial, (std::vector<std::string>{"fc.bias", "fc.weight"}));
  ASSERT_EQ(partial.unused.size(), 2u);
  EXPECT_NE(partial.unused[1].find("fc.weight [10, 8] vs [4, 8]"), std::string::npos)
      << partial.unused[1];
  const auto lines = dg::train::float_import_lines(partial, "w.pt");
  EXPECT_NE(lines.front().find("w.pt"), std::string::npos);

  // Nothing in common: refused, naming the file.
  torch::nn::Linear unrelated(3, 3);
  EXPECT_NE(dgt::error_of([&] {
              dg::train::import_float_weights(*unrelated, state_of(source), "w.pt");
            }).find("w.pt: no tensor"),
            std::string::npos);
}
