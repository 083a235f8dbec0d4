// layers::gate(): any module tree's convolutions replaced by gated ones that
// compute the same function where the gates are open; the library's own
// gated networks are what gate() makes of their float twins.
#include "dnn_gating/layers/gate_model.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/gating_loss.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/layers/quantized_conv.h"
#include "dnn_gating/layers/slot.h"
#include "dnn_gating/models/torchvision.h"
#include "dnn_gating/quant/pact.h"
#include "dnn_gating/setting_error.h"
#include "dnn_gating/train/optimizer.h"
#include "test_support.h"

namespace dg = dnn_gating;
namespace dgl = dnn_gating::layers;
namespace dgt = dnn_gating::testing;
namespace nn = torch::nn;
using dgl::ConvKind;

namespace {

nn::Conv2dOptions conv3x3(int64_t in, int64_t out, int64_t stride = 1, bool bias = false) {
  return nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(bias);
}

// A network of one's own: a stem called through a member (never gated), a
// convolution and a ReLU in slots, a Sequential with a biased convolution,
// BatchNorms and ReLUs, and a linear classifier.
struct OwnNetImpl : nn::Module {
  OwnNetImpl() {
    stem = register_module("stem", nn::Conv2d(conv3x3(3, 8)));
    conv = dgl::Slot(nn::Conv2d(conv3x3(8, 8)));
    register_module("conv", conv.ptr());
    relu = dgl::Slot(nn::ReLU());
    register_module("relu", relu.ptr());
    body = register_module(
        "body", nn::Sequential(nn::Conv2d(conv3x3(8, 16, 2, /*bias=*/true)), nn::BatchNorm2d(16),
                               nn::ReLU(), nn::Conv2d(conv3x3(16, 16)), nn::BatchNorm2d(16),
                               nn::ReLU(), nn::Conv2d(nn::Conv2dOptions(16, 16, 1))));
    fc = register_module("fc", nn::Linear(16, 4));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor out = torch::relu(stem(x));
    out = body->forward(relu(conv(out)));
    return fc(out.mean({2, 3}));
  }
  nn::Conv2d stem{nullptr};
  dgl::Slot conv, relu;
  nn::Sequential body{nullptr};
  nn::Linear fc{nullptr};
};
TORCH_MODULE(OwnNet);

// Every BatchNorm with statistics of its own, so that a folded bias shows.
void randomise_batch_norms(nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& b : model.named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) b.value().uniform_(-0.5, 0.5);
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
  }
}

// Copies every parameter and buffer of `from` into the same-named one of `to`.
void copy_state(nn::Module& from, nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto params = to.named_parameters();
  for (const auto& p : from.named_parameters()) params[p.key()].copy_(p.value());
  auto buffers = to.named_buffers();
  for (const auto& b : from.named_buffers()) buffers[b.key()].copy_(b.value());
}

void open_every_gate(nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, layer] : dgl::gated_layers(model)) layer->threshold().fill_(-1e9);
}

std::set<std::string> keys(nn::Module& m) {
  std::set<std::string> out;
  for (const auto& p : m.named_parameters()) out.insert(p.key());
  for (const auto& b : m.named_buffers()) out.insert(b.key());
  return out;
}

std::set<std::string> names(const std::vector<dgl::Replaced>& replaced) {
  std::set<std::string> out;
  for (const auto& r : replaced) out.insert(r.name);
  return out;
}

dgl::GateSpec pg_spec(bool pact) {
  dgl::GateSpec spec(ConvKind::kPrecisionGated);
  spec.conv.wbits(8).abits(3).pred_bits(2);
  return spec.pact(pact);
}

}  // namespace

TEST(GateModel, OwnNetworkWithOpenGatesComputesTheFloatOne) {
  torch::manual_seed(1);
  OwnNet plain;
  randomise_batch_norms(*plain);
  OwnNet gated;
  dgt::load_state(*gated, [&] {
    std::map<std::string, torch::Tensor> state;
    for (const auto& p : plain->named_parameters()) state[p.key()] = p.value();
    for (const auto& b : plain->named_buffers()) state[b.key()] = b.value();
    return state;
  }());
  dgl::GateSpec spec(ConvKind::kChannelGated);
  spec.conv.partitions(4).use_group(true);
  const auto replaced = dgl::gate(*gated, spec);
  // The papers' choice: not the stem, not the 1x1 convolution.
  EXPECT_EQ(names(replaced), (std::set<std::string>{"conv", "body.0", "body.3"}));
  for (const auto& r : replaced)
    EXPECT_TRUE(std::dynamic_pointer_cast<dgl::CGConv2dImpl>(r.module));
  EXPECT_EQ(dgl::gated_layers(*gated).size(), 3u);
  open_every_gate(*gated);
  plain->eval();
  gated->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::rand({2, 3, 12, 12});
  const torch::Tensor expected = plain->forward(x);
  EXPECT_TRUE(torch::allclose(gated->forward(x), expected, 1e-5, 1e-5));
  const auto counts = dgl::total_counts(*gated);
  EXPECT_GT(counts.num_out, 0);
  EXPECT_EQ(counts.num_on, counts.num_out);
  // The bias went into the BatchNorm after it, whose statistics moved.
  EXPECT_FALSE(torch::equal(gated->named_buffers()["body.1.running_mean"],
                            plain->named_buffers()["body.1.running_mean"]));
}

TEST(GateModel, PrecisionGatedWithOpenGatesIsTheQuantizedNetwork) {
  torch::manual_seed(2);
  OwnNet pg, quantized;
  {
    torch::NoGradGuard no_grad;
    auto to = quantized->named_parameters();
    for (const auto& p : pg->named_parameters()) to[p.key()].copy_(p.value());
  }
  const auto replaced = dgl::gate(*pg, pg_spec(/*pact=*/true));
  dgl::GateSpec q(ConvKind::kQuantized);
  q.conv.wbits(8).abits(3);
  dgl::gate(*quantized, q.pact(true));
  // Every ReLU module the net calls through a Sequential or a slot is PACT.
  EXPECT_EQ(names(replaced),
            (std::set<std::string>{"conv", "body.0", "body.3", "relu", "body.2", "body.5"}));
  EXPECT_TRUE(pg->relu.as<dg::quant::PactReLUImpl>());
  EXPECT_TRUE(quantized->conv.as<dgl::QuantizedConv2dImpl>());
  open_every_gate(*pg);
  pg->eval();
  quantized->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::rand({2, 3, 12, 12});
  EXPECT_TRUE(torch::allclose(pg->forward(x), quantized->forward(x), 1e-5, 1e-5));
}

TEST(GateModel, GatingLossAndWeightDecayFindExactlyTheGatedThresholds) {
  OwnNet net;
  dgl::gate(*net, pg_spec(/*pact=*/false));
  const auto gated = dgl::gated_layers(*net);
  ASSERT_EQ(gated.size(), 3u);
  torch::Tensor loss = dgl::pg_gating_loss(*net, 0.1, 1.0);
  loss.backward();
  int64_t with_gradient = 0;
  for (const auto& p : net->named_parameters()) {
    const bool is_threshold =
        p.key().size() > 9 && p.key().compare(p.key().size() - 9, 9, "threshold") == 0;
    const bool pulled =
        p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0;
    EXPECT_EQ(pulled, is_threshold) << p.key();
    with_gradient += pulled;
  }
  EXPECT_EQ(with_gradient, 3);
  auto sgd = dg::train::make_sgd(*net, {0.1, 0.9, 1e-4, /*exempt_thresholds_and_1d=*/true});
  const auto& groups = sgd->param_groups();
  ASSERT_EQ(groups.size(), 2u);
  for (const auto& [name, layer] : gated) {
    bool exempt = false;
    for (const auto& p : groups[1].params()) exempt = exempt || p.is_same(layer->threshold());
    EXPECT_TRUE(exempt) << name;
  }
}

TEST(GateModel, CheckpointRoundTrip) {
  torch::manual_seed(5);
  OwnNet saved;
  dgl::gate(*saved, pg_spec(/*pact=*/true));
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, layer] : dgl::gated_layers(*saved)) layer->threshold().uniform_(-1, 1);
  }
  dgt::TempDir tmp;
  const std::string file = (tmp.path() / "own.pt").string();
  dg::train::save_checkpoint(file, *saved, "{}");
  OwnNet loaded;
  dgl::gate(*loaded, pg_spec(/*pact=*/true));
  EXPECT_EQ(keys(*loaded), keys(*saved));
  dg::train::load_state(*loaded, dg::train::read_checkpoint(file), file);
  saved->eval();
  loaded->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::rand({2, 3, 12, 12});
  EXPECT_TRUE(torch::equal(saved->forward(x), loaded->forward(x)));
}

TEST(GateModel, RefusesWhatItCannotReplaceAndChangesNothing) {
  OwnNet net;
  const std::set<std::string> before = keys(*net);
  // The stem is called through a member: gate() cannot reach it.
  dgl::GateSpec every(ConvKind::kChannelGated);
  every.conv.partitions(1);
  every.select([](const dgl::ConvSite&) { return true; });
  std::string message = dgt::error_of([&] { dgl::gate(*net, every); });
  EXPECT_NE(message.find("cannot gate layer 'stem'"), std::string::npos) << message;
  EXPECT_NE(message.find("Slot"), std::string::npos) << message;
  // 8 input channels do not split into 16 partitions.
  dgl::GateSpec cg(ConvKind::kChannelGated);
  cg.conv.partitions(16);
  message = dgt::error_of([&] { dgl::gate(*net, cg); });
  EXPECT_NE(message.find("'conv'"), std::string::npos) << message;
  EXPECT_NE(message.find("partitions 16"), std::string::npos) << message;
  message = dgt::error_of([&] { dgl::gate(*net, dgl::GateSpec(ConvKind::kFloat)); });
  EXPECT_NE(message.find("kind"), std::string::npos) << message;
  // Nothing was replaced and no statistics moved.
  EXPECT_EQ(keys(*net), before);
  EXPECT_TRUE(net->conv.as<nn::Conv2dImpl>());
  EXPECT_TRUE(torch::equal(net->named_buffers()["body.1.running_mean"], torch::zeros({16})));
  EXPECT_TRUE(dgl::gated_layers(*net).empty());
}

// gate() of a float ResNet-18 or VGG-16 makes the library's own gated
// network: the same keys, and (with the same tensors) the same outputs.
TEST(GateModel, PapersNetworksAreGatedFloatOnes) {
  using dg::models::Arch;
  using dg::models::ResNetOptions;
  for (const Arch arch : {Arch::kResNet18, Arch::kVGG16}) {
    SCOPED_TRACE(dg::models::to_string(arch));
    torch::manual_seed(6);
    auto gated = dg::models::make_model(ResNetOptions().arch(arch));
    if (arch == Arch::kResNet18) {
      // The library's PG ResNet gates the first convolution of each block
      // and quantizes the second.
      dgl::gate(*gated.module, pg_spec(/*pact=*/true).select([](const dgl::ConvSite& s) {
        return dgl::papers_choice(s) && s.name.size() > 5 &&
               s.name.compare(s.name.size() - 5, 5, "conv1") == 0;
      }));
      dgl::GateSpec q(ConvKind::kQuantized);
      q.conv.wbits(8).abits(3);
      dgl::gate(*gated.module, q);
    } else {
      dgl::gate(*gated.module, pg_spec(/*pact=*/true));
    }
    auto native = dg::models::make_model(ResNetOptions(ConvKind::kPrecisionGated)
                                             .arch(arch)
                                             .wbits(8)
                                             .abits(3)
                                             .pred_bits(2)
                                             .pact(true));
    ASSERT_EQ(keys(*gated.module), keys(*native.module));
    randomise_batch_norms(*native.module);
    {
      torch::NoGradGuard no_grad;
      for (const auto& [name, layer] : dgl::gated_layers(*native.module)) {
        layer->threshold().uniform_(-0.5, 0.5);
      }
    }
    copy_state(*native.module, *gated.module);
    gated.module->eval();
    native.module->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::rand({2, 3, 32, 32});
    EXPECT_TRUE(torch::equal(gated.forward(x), native.forward(x)));
    EXPECT_EQ(dgl::total_counts(*gated.module).num_on, dgl::total_counts(*native.module).num_on);
  }
}

// Channel gating of the float networks, every gate open: the float output
// (in double, where every way of computing rounds alike).
TEST(GateModel, PapersNetworksWithOpenChannelGatesComputeTheFloatOnes) {
  using dg::models::Arch;
  using dg::models::ResNetOptions;
  for (const Arch arch : {Arch::kResNet18, Arch::kVGG16}) {
    SCOPED_TRACE(dg::models::to_string(arch));
    torch::manual_seed(7);
    auto plain = dg::models::make_model(ResNetOptions().arch(arch));
    randomise_batch_norms(*plain.module);
    auto gated = dg::models::make_model(ResNetOptions().arch(arch));
    copy_state(*plain.module, *gated.module);
    plain.module->to(torch::kDouble);
    gated.module->to(torch::kDouble);
    dgl::GateSpec spec(ConvKind::kChannelGated);
    spec.conv.partitions(4).use_group(true);
    const auto replaced = dgl::gate(*gated.module, spec);
    EXPECT_EQ(replaced.size(), arch == Arch::kResNet18 ? 16u : 12u);
    // The new layers take the model's precision, but their counters stay integers.
    for (const auto& r : replaced) {
      for (const auto& b : r.module->named_buffers()) {
        const auto expected = b.key().find("num_batches_tracked") != std::string::npos
                                  ? torch::kLong
                              : b.value().is_floating_point() ? torch::kDouble
                                                              : b.value().scalar_type();
        EXPECT_EQ(b.value().scalar_type(), expected) << r.name << "." << b.key();
      }
    }
    open_every_gate(*gated.module);
    plain.module->eval();
    gated.module->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::rand({1, 3, 32, 32}, torch::kDouble);
    EXPECT_TRUE(dgt::all_close(gated.forward(x), plain.forward(x), 1e-9, 1e-9));
    EXPECT_EQ(dgl::total_counts(*gated.module).num_on, dgl::total_counts(*gated.module).num_out);
  }
}

// A module registered twice would be split by replacing it in one place; a
// bias before a BatchNorm without running statistics needs no folding.
TEST(GateModel, SharedModulesAndBatchStatistics) {
  nn::Conv2d shared(conv3x3(4, 4));
  nn::Sequential twice(nn::Conv2d(conv3x3(3, 4)), shared, nn::ReLU(), shared);
  dgl::GateSpec spec(ConvKind::kChannelGated);
  spec.conv.partitions(2);
  const std::string message = dgt::error_of([&] { dgl::gate(*twice, spec); });
  EXPECT_NE(message.find("cannot gate layer '1': it is also registered as '3'"), std::string::npos)
      << message;
  nn::Sequential batch_only(nn::Conv2d(conv3x3(3, 4)), nn::Conv2d(conv3x3(4, 4, 1, /*bias=*/true)),
                            nn::BatchNorm2d(nn::BatchNorm2dOptions(4).track_running_stats(false)));
  torch::manual_seed(8);
  const torch::Tensor x = torch::rand({2, 3, 6, 6});
  const torch::Tensor expected = batch_only->forward(x);
  const auto replaced = dgl::gate(*batch_only, spec);
  ASSERT_EQ(replaced.size(), 1u);
  open_every_gate(*batch_only);
  EXPECT_TRUE(torch::allclose(batch_only->forward(x), expected, 1e-5, 1e-5));
}
