// A small model of one's own with two precision-gated convolutions, trained
// for a few steps with the PG gating loss, then its gate report.
#include <dnn_gating/layers/gated_layer.h>
#include <dnn_gating/layers/gating_loss.h>
#include <dnn_gating/layers/pg_conv.h>
#include <torch/torch.h>

#include <iostream>

namespace dgl = dnn_gating::layers;

struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl()
      : conv1(register_module(
            "conv1",
            dgl::PGConv2d(dgl::PGConv2dOptions(3, 8, 3).padding(1).abits(4).pred_bits(2)))),
        conv2(register_module(
            "conv2",
            dgl::PGConv2d(
                dgl::PGConv2dOptions(8, 8, 3).stride(2).padding(1).abits(4).pred_bits(2).sparse_bp(
                    true)))),
        fc(register_module("fc", torch::nn::Linear(8, 4))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(conv1(x));
    x = torch::relu(conv2(x));
    return fc(x.mean({2, 3}));
  }

  dgl::PGConv2d conv1, conv2;
  torch::nn::Linear fc;
};
TORCH_MODULE(TinyNet);

int main() {
  torch::manual_seed(0);
  TinyNet net;
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  const torch::Tensor x = torch::randn({16, 3, 16, 16});
  const torch::Tensor y = torch::arange(16) % 4;
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    sgd.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(net->forward(x), y) +
                         dnn_gating::layers::pg_gating_loss(*net, /*sigma=*/0.001, /*gtarget=*/1.0);
    loss.backward();
    sgd.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  const auto gated = dgl::gated_layers(*net);
  std::cout << "gated layers: " << gated.size() << "\n";
  for (const auto& [name, layer] : gated) {
    std::cout << name << ": " << 100.0 * layer->last_counts().on_fraction()
              << " % of outputs at high precision\n";
  }
  std::cout << "loss " << first << " -> " << last << "\n";
  return last < first ? 0 : 1;
}
