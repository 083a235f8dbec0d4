#pragma once
/// Gating any model: `gate()` replaces the convolutions of a module tree
/// with quantized, precision-gated or channel-gated ones (and its ReLUs with
/// PACT where asked), weights copied, so that the result computes the same
/// function where the gates are open. The gating loss, the weight-decay
/// groups, the cost figures, skipping inference and checkpoints then work on
/// the model as on the library's own.
///
/// A module can only be replaced where its parent calls it through something
/// `gate()` can change: a torch::nn::Sequential or a layers::Slot (a module
/// that calls a member `torch::nn::Conv2d conv1` directly would go on
/// calling the old one; gate() refuses such a layer by name, and a module
/// registered under two names). What it cannot see: a parent that holds a
/// module in a Sequential or a Slot *and* calls it through a plain member of
/// its own as well; that member goes on calling the old module.

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dnn_gating/layers/conv.h"

namespace dnn_gating::layers {

/// A float convolution of the model as the selection sees it.
struct ConvSite {
  /// Its name in the model ("layer1.0.conv1", "features.3").
  std::string name;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  std::array<int64_t, 2> kernel_size{};
  std::array<int64_t, 2> stride{};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  bool bias = false;
  /// The first convolution of the model (in registration order): its stem.
  bool first = false;
};

/// The papers' choice: every convolution but the first, the 1x1 ones
/// (shortcuts) and the grouped or dilated ones (depthwise convolutions).
bool papers_choice(const ConvSite& site);

/// What `gate()` makes of a model.
struct GateSpec {
  /// Gating with the convolutions of `kind` (kQuantized, kPrecisionGated or
  /// kChannelGated), with its settings' defaults.
  explicit GateSpec(ConvKind kind) : conv(kind, 1, 1, 1) {}

  /// Kind and settings of the new convolutions (bits, partitions, gate
  /// settings, sparse_bp, skipping); channels, kernel, stride and padding are
  /// each replaced convolution's own.
  ConvOptions conv;
  /// Which float convolutions to replace (default: the papers' choice).
  TORCH_ARG(std::function<bool(const ConvSite&)>, select) = papers_choice;
  /// Quantized kinds: every ReLU module (held by a Sequential or a Slot)
  /// becomes PACT (quant::PactReLU with its default bound), as the original's
  /// quantized ResNets do.
  TORCH_ARG(bool, pact) = false;
};

/// One module `gate()` put in place of another.
struct Replaced {
  /// Its name in the model (the replaced module's).
  std::string name;
  /// The new module (a QuantizedConv2d, PGConv2d, CGConv2d or PactReLU).
  std::shared_ptr<torch::nn::Module> module;
};

/// Replaces the convolutions of `model` that `spec.select` picks among its
/// float ones (torch::nn::Conv2d, or the library's QuantizedConv2d at 0
/// bits) with convolutions of `spec.conv.kind()`, copying the weights; a
/// convolution's bias is folded into the BatchNorm2d that follows it in the
/// same Sequential. Each new module takes the device, dtype and training
/// mode of the one it replaces. Returns the replaced convolutions in model
/// order, then the PACT modules. Changes nothing and throws SettingError
/// naming the layer if a picked convolution cannot be replaced (its parent
/// calls it directly, a grouped or dilated one, a bias with no BatchNorm
/// after it, input channels not divisible by the CG partitions).
std::vector<Replaced> gate(torch::nn::Module& model, const GateSpec& spec);

}  // namespace dnn_gating::layers
