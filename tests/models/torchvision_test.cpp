// ResNet-18 and VGG-16 in torchvision's layout: its parameter names, their
// shapes and outputs, which layers are gated, their dense cost, a gated
// model that computes its float twin where every gate is open, and a
// checkpoint round trip.
#include "dnn_gating/models/torchvision.h"

#include <torch/torch.h>

#include <set>

#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/layers/dense_macs.h"
#include "dnn_gating/layers/gated_layer.h"
#include "test_support.h"

namespace dg = dnn_gating;
namespace dgt = dnn_gating::testing;
using dg::models::Arch;
using dg::models::ConvKind;
using dg::models::ResNetOptions;

namespace {

std::set<std::string> keys(torch::nn::Module& m) {
  std::set<std::string> out;
  for (const auto& p : m.named_parameters()) out.insert(p.key());
  for (const auto& b : m.named_buffers()) out.insert(b.key());
  return out;
}

void add_bn(std::set<std::string>& out, const std::string& prefix) {
  for (const char* k : {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})
    out.insert(prefix + "." + k);
}

// torchvision's resnet18 state-dict keys, written from its layout.
std::set<std::string> torchvision_resnet18() {
  std::set<std::string> out{"conv1.weight", "fc.weight", "fc.bias"};
  add_bn(out, "bn1");
  for (int layer = 1; layer <= 4; ++layer) {
    for (int block = 0; block < 2; ++block) {
      const std::string b = "layer" + std::to_string(layer) + "." + std::to_string(block) + ".";
      out.insert(b + "conv1.weight");
      out.insert(b + "conv2.weight");
      add_bn(out, b + "bn1");
      add_bn(out, b + "bn2");
      if (layer > 1 && block == 0) {
        out.insert(b + "downsample.0.weight");
        add_bn(out, b + "downsample.1");
      }
    }
  }
  return out;
}

// torchvision's vgg16_bn keys without the convolutions' biases (the
// BatchNorm after each makes them redundant), with the CIFAR classifier.
std::set<std::string> torchvision_vgg16_bn_cifar() {
  std::set<std::string> out{"classifier.0.weight", "classifier.0.bias"};
  for (const int i : {0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40}) {
    out.insert("features." + std::to_string(i) + ".weight");
    add_bn(out, "features." + std::to_string(i + 1));
  }
  return out;
}

// Copies every tensor `from` and `to` share by name.
void copy_shared(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto params = to.named_parameters();
  auto buffers = to.named_buffers();
  for (const auto& p : from.named_parameters()) {
    if (params.contains(p.key())) params[p.key()].copy_(p.value());
  }
  for (const auto& b : from.named_buffers()) {
    if (buffers.contains(b.key())) buffers[b.key()].copy_(b.value());
  }
}

}  // namespace

TEST(Torchvision, ParameterNamesAreTorchvisions) {
  auto resnet = dg::models::make_model(ResNetOptions().arch(Arch::kResNet18));
  EXPECT_EQ(keys(*resnet.module), torchvision_resnet18());
  auto vgg = dg::models::make_model(ResNetOptions().arch(Arch::kVGG16));
  EXPECT_EQ(keys(*vgg.module), torchvision_vgg16_bn_cifar());
  // Gated models add their gates' tensors under the same prefixes.
  auto cg = dg::models::make_model(
      ResNetOptions(ConvKind::kChannelGated).arch(Arch::kResNet18).use_group(true));
  const auto cg_keys = keys(*cg.module);
  for (const auto& k : torchvision_resnet18()) EXPECT_TRUE(cg_keys.count(k)) << k;
  EXPECT_TRUE(cg_keys.count("layer4.1.conv1.threshold"));
  EXPECT_FALSE(cg_keys.count("layer4.1.conv2.threshold"));
}

TEST(Torchvision, ShapesGatedLayersAndDenseCost) {
  torch::manual_seed(0);
  struct Case {
    Arch arch;
    ConvKind conv;
    bool imagenet;
    int64_t size;
    size_t gated;
  };
  for (const Case& c : {Case{Arch::kResNet18, ConvKind::kChannelGated, false, 32, 8},
                        Case{Arch::kResNet18, ConvKind::kPrecisionGated, true, 64, 8},
                        Case{Arch::kVGG16, ConvKind::kChannelGated, false, 32, 12},
                        Case{Arch::kVGG16, ConvKind::kPrecisionGated, true, 64, 12},
                        Case{Arch::kVGG16, ConvKind::kQuantized, false, 32, 0}}) {
    SCOPED_TRACE(dg::models::to_string(c.arch) + " " + dg::models::to_string(c.conv));
    auto options = ResNetOptions(c.conv)
                       .arch(c.arch)
                       .imagenet_stem(c.imagenet)
                       .num_classes(7)
                       .wbits(8)
                       .abits(4)
                       .pred_bits(2)
                       .pact(true);
    auto model = dg::models::make_model(options);
    model.module->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor y = model.forward(torch::rand({2, 3, c.size, c.size}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 7}));
    EXPECT_EQ(dg::layers::gated_layers(*model.module).size(), c.gated);
  }
  // ResNet-18 with the CIFAR stem at 32x32, counted from its architecture:
  // 3x3 convolutions C_in * 9 * C_out * H * W, 1x1 shortcuts, the linear layer.
  auto model = dg::models::make_model(ResNetOptions().arch(Arch::kResNet18));
  {
    torch::NoGradGuard no_grad;
    model.forward(torch::rand({1, 3, 32, 32}));
  }
  int64_t expected = 3 * 9 * 64 * 32 * 32 + 4 * (64 * 9 * 64 * 32 * 32) + 10 * 512;
  int64_t in = 64, side = 32;
  for (const int64_t planes : {128, 256, 512}) {
    side /= 2;
    expected += in * 9 * planes * side * side + 3 * (planes * 9 * planes * side * side) +
                in * planes * side * side;
    in = planes;
  }
  EXPECT_EQ(dg::layers::total_dense_macs(*model.module), expected);
}

// With every gate open a CG network is its float twin (in double, where
// every way of computing rounds alike).
TEST(Torchvision, OpenGatesComputeTheFloatModel) {
  for (const Arch arch : {Arch::kResNet18, Arch::kVGG16}) {
    SCOPED_TRACE(dg::models::to_string(arch));
    torch::manual_seed(3);
    auto plain = dg::models::make_model(ResNetOptions().arch(arch));
    auto gated = dg::models::make_model(
        ResNetOptions(ConvKind::kChannelGated).arch(arch).use_group(true).partitions(4));
    copy_shared(*plain.module, *gated.module);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : gated.module->named_parameters()) {
        if (p.key().find("threshold") != std::string::npos) p.value().fill_(-1e9);
      }
    }
    plain.module->to(torch::kDouble);
    gated.module->to(torch::kDouble);
    plain.module->eval();
    gated.module->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::rand({1, 3, 32, 32}, torch::kDouble);
    const torch::Tensor y_plain = plain.forward(x);
    const torch::Tensor y_gated = gated.forward(x);
    EXPECT_TRUE(dgt::all_close(y_gated, y_plain, 1e-9, 1e-9));
    const auto counts = dg::layers::total_counts(*gated.module);
    EXPECT_GT(counts.num_out, 0);
  }
}

TEST(Torchvision, CheckpointRoundTrip) {
  torch::manual_seed(4);
  auto options = ResNetOptions(ConvKind::kPrecisionGated)
                     .arch(Arch::kResNet18)
                     .wbits(8)
                     .abits(3)
                     .pred_bits(2)
                     .pact(true);
  auto saved = dg::models::make_model(options);
  dgt::TempDir tmp;
  const std::string file = (tmp.path() / "resnet18.pt").string();
  dg::train::save_checkpoint(file, *saved.module, "{}");
  auto loaded = dg::models::make_model(options);
  dg::train::load_state(*loaded.module, dg::train::read_checkpoint(file), file);
  saved.module->eval();
  loaded.module->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::rand({2, 3, 32, 32});
  EXPECT_TRUE(torch::equal(saved.forward(x), loaded.forward(x)));
}

TEST(Torchvision, RefusesWhatDoesNotFit) {
  const std::string message = dgt::error_of([] {
    dg::models::make_model(
        ResNetOptions(ConvKind::kChannelGated, dg::models::BlockLayout::kPostActivated)
            .arch(Arch::kVGG16));
  });
  EXPECT_NE(message.find("layout"), std::string::npos) << message;
  EXPECT_NE(dgt::error_of([] { dg::models::arch_from_string("vgg19"); }).find("resnet18"),
            std::string::npos);
}
