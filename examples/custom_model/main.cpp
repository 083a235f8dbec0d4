// A float model of one's own, gated with precision gating in one call, then
// trained for a few steps with the PG gating loss and its gate report.
#include <dnn_gating/layers/gate_model.h>
#include <dnn_gating/layers/gated_layer.h>
#include <dnn_gating/layers/gating_loss.h>
#include <dnn_gating/layers/slot.h>
#include <torch/torch.h>

#include <iostream>

namespace dgl = dnn_gating::layers;
namespace nn = torch::nn;

// A plain float network. The convolution its forward calls through a member
// sits in a dgl::Slot, so that gate() can replace it; those in the Sequential
// need nothing.
struct TinyNetImpl : nn::Module {
  TinyNetImpl() {
    stem = register_module("stem", nn::Conv2d(nn::Conv2dOptions(3, 8, 3).padding(1)));
    conv = dgl::Slot(nn::Conv2d(nn::Conv2dOptions(8, 8, 3).padding(1).bias(false)));
    register_module("conv", conv.ptr());
    body = register_module(
        "body", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(8, 16, 3).stride(2).padding(1)),
                               nn::BatchNorm2d(16), nn::ReLU()));
    fc = register_module("fc", nn::Linear(16, 4));
  }

  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(stem(x));
    x = body->forward(torch::relu(conv(x)));
    return fc(x.mean({2, 3}));
  }

  nn::Conv2d stem{nullptr};
  dgl::Slot conv;
  nn::Sequential body{nullptr};
  nn::Linear fc{nullptr};
};
TORCH_MODULE(TinyNet);

int main() {
  torch::manual_seed(0);
  TinyNet net;
  // Every convolution but the stem (and 1x1 ones) becomes a PGConv2d, w8 a4 pb2;
  // the ReLU in the Sequential becomes PACT.
  dgl::GateSpec spec(dgl::ConvKind::kPrecisionGated);
  spec.conv.wbits(8).abits(4).pred_bits(2).sparse_bp(true);
  spec.pact(true);
  for (const auto& replaced : dgl::gate(*net, spec)) {
    std::cout << "replaced " << replaced.name << " by " << replaced.module->name() << "\n";
  }

  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  const torch::Tensor x = torch::randn({16, 3, 16, 16});
  const torch::Tensor y = torch::arange(16) % 4;
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    sgd.zero_grad();
    torch::Tensor loss = nn::functional::cross_entropy(net->forward(x), y) +
                         dgl::pg_gating_loss(*net, /*sigma=*/0.001, /*gtarget=*/1.0);
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
