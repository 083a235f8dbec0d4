#pragma once
/// The CIFAR ResNet family (He et al., option-A shortcuts) with quantized,
/// precision-gated or channel-gated convolutions, as in dnn-gating.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>

#include "dnn_gating/layers/conv.h"
#include "dnn_gating/layers/dense_macs.h"
#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/slot.h"
#include "dnn_gating/quant/pact.h"
#include "dnn_gating/setting_error.h"

namespace dnn_gating::models {

/// The convolution of the residual blocks. In the standard layout the gated
/// kinds gate the first convolution of a block only: precision-gated blocks
/// quantize the second, channel-gated ones keep it plain.
using ConvKind = layers::ConvKind;

/// Where a block applies its activations.
enum class BlockLayout {
  kStandard,       ///< act(bn1(conv1)), bn2(conv2), add the shortcut, act
  kPostActivated,  ///< relu(bn1(conv1)), relu(bn2(conv2)), add the shortcut; both convs of the kind
};

/// Short name of a model as used in logs and checkpoints: "float",
/// "quantized", "pg", "cg", "postact" (float post-activated), "cg-postact", ...
std::string model_name(ConvKind conv, BlockLayout layout);
/// Inverse of model_name; throws on an unknown name.
std::pair<ConvKind, BlockLayout> model_from_name(const std::string& name);

/// Name of a convolution kind ("float", "quantized", "pg", "cg").
std::string to_string(ConvKind conv);
/// Name of a layout ("standard", "postact").
std::string to_string(BlockLayout layout);
/// Inverses of to_string; they throw on an unknown name.
ConvKind conv_kind_from_string(const std::string& name);
BlockLayout block_layout_from_string(const std::string& name);

/// Which network (`make_model`): the CIFAR ResNets of the original (6n+2
/// layers, `depth`), or the papers' larger ones in torchvision's layout.
enum class Arch {
  kResNet,    ///< "resnet20" (and every 6n+2 depth): models::ResNet
  kResNet18,  ///< "resnet18": models::ResNet18
  kVGG16,     ///< "vgg16": models::VGG16 (with BatchNorm)
};
/// "resnet20", "resnet18", "vgg16".
std::string to_string(Arch arch);
/// Inverse of to_string; throws SettingError (of `arch`) on an unknown name.
Arch arch_from_string(const std::string& name);

/// Options for `ResNet` (and every model of `make_model`): depth, input, and
/// the settings of every block.
struct ResNetOptions {
  explicit ResNetOptions(ConvKind conv = ConvKind::kFloat,
                         BlockLayout layout = BlockLayout::kStandard)
      : conv_(conv), layout_(layout) {}
  /// Which network; `depth` is read by kResNet alone.
  TORCH_ARG(Arch, arch) = Arch::kResNet;
  /// kResNet18: torchvision's ImageNet stem (7x7 stride 2, 3x3 max-pool)
  /// instead of the CIFAR one (3x3 stride 1, no pool); kVGG16: torchvision's
  /// classifier (7x7 pool, three linear layers) instead of one linear layer
  /// after the last pool.
  TORCH_ARG(bool, imagenet_stem) = false;
  /// The blocks' convolution.
  TORCH_ARG(ConvKind, conv);
  /// The blocks' layout.
  TORCH_ARG(BlockLayout, layout);
  /// 6n + 2 layers (20, 32, 44, 56, 110, ...).
  TORCH_ARG(int64_t, depth) = 20;
  /// Image channels (3 for CIFAR-10, 1 for Fashion-MNIST).
  TORCH_ARG(int64_t, in_channels) = 3;
  /// Classes of the final linear layer.
  TORCH_ARG(int64_t, num_classes) = 10;
  /// PACT activations instead of ReLU (quantized and PG models).
  TORCH_ARG(bool, pact) = false;
  /// The settings of the blocks' convolutions (layers::ConvSettings: bits,
  /// prediction bits, partitions, gate settings, sparse_bp, reference_ops,
  /// skipping, integer), also set and read by name: `.wbits(8)`. The
  /// ungated convolutions of the quantized kinds take the bits too; the
  /// float ones none.
  TORCH_ARG(layers::ConvSettings, settings);
  DG_CONV_SETTINGS
};

/// The network as checkpoint files name it: "resnet-20" (the depth),
/// "resnet-18", "vgg-16".
std::string network_name(const ResNetOptions& options);
/// As reports title it: "ResNet-20", "ResNet-18", "VGG-16".
std::string network_title(const ResNetOptions& options);

/// Checks a configuration; a bad one throws SettingError naming the setting
/// (the ResNetOptions field) and what was expected.
void validate(const ResNetOptions& options);

/// The blocks' option-A shortcut: `x` itself where the block keeps its
/// shape, else every second row and column of `x` with planes/4 zero
/// channels padded on each side.
torch::Tensor option_a_shortcut(const torch::Tensor& x, int64_t in_planes, int64_t planes,
                                int64_t stride);

/// How a block that changes its shape adds its input.
enum class Shortcut {
  kOptionA,     ///< subsampled, zero channels padded (CIFAR ResNets)
  kProjection,  ///< `downsample`: a strided plain 1x1 convolution and BatchNorm (torchvision)
};

/// An activation on its way to a convolution: its value and, where the
/// pass that made it also quantized it for that convolution, the quantized
/// values (else undefined).
struct Activation {
  /// The activation (undefined where only the quantized values are needed).
  torch::Tensor value;
  /// Its values quantized for the convolution that reads it, or undefined.
  torch::Tensor quantized;
};

/// One residual block (`conv1`, `bn1`, `conv2`, `bn2`, `relu` (PACT in
/// quantized and PG blocks with `pact`; a ReLU module in other blocks of the
/// standard layout), and `downsample` for a projection shortcut that changes
/// the shape). Its convolutions and activation are held in layers::Slot, so
/// that layers::gate() can replace them.
class BasicBlockImpl : public torch::nn::Cloneable<BasicBlockImpl> {
 public:
  BasicBlockImpl(const ResNetOptions& options, int64_t in_planes, int64_t planes, int64_t stride,
                 Shortcut shortcut = Shortcut::kOptionA);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// forward() on x = `in.value`, taking `in.quantized` (where defined) as
  /// the first convolution's quantized input; with `out_bits` > 0 (see
  /// input_bits()) the output also comes quantized for the next block. In
  /// evaluation, an input handed over (moved in, nothing else holding it)
  /// may be overwritten with the output.
  Activation forward_activation(Activation in, int64_t out_bits);
  /// The bits to which the first convolution's input may come quantized
  /// from the pass before: its input bits where it is a quantized
  /// convolution, in training (gradients on) without `reference_ops`; else 0
  /// (it takes the value).
  int64_t input_bits() const;

 private:
  torch::Tensor shortcut(const torch::Tensor& x);

  ResNetOptions options_;
  int64_t in_planes_, planes_, stride_;
  Shortcut shortcut_;
  torch::nn::Sequential downsample_{nullptr};  // holds the two below: `downsample.0`, `.1`
  layers::Slot down_conv_;
  torch::nn::BatchNorm2d down_bn_{nullptr};
  layers::Slot conv1_, conv2_;
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  layers::Slot act_;  // `relu`; empty in a post-activated block without PACT
};
TORCH_MODULE(BasicBlock);

/// ResNet for CIFAR-sized images: conv1 (plain 3x3) -> bn1 -> act ->
/// layer1..3 -> global average pool -> linear. State-dict keys equal the
/// original's. It counts the dense multiply-accumulates of its own stem and
/// linear layer (the blocks' convolutions count theirs): see
/// layers::total_dense_macs.
class ResNetImpl : public torch::nn::Cloneable<ResNetImpl>, public layers::CountsMacs {
 public:
  explicit ResNetImpl(ResNetOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);

  ResNetOptions options;

 private:
  /// The stem: act(bn1(conv1(x))), quantized to `out_bits` where not 0.
  Activation stem(const torch::Tensor& x, int64_t out_bits);

  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  layers::Slot act_;  // `relu`
  torch::nn::Sequential layer1_{nullptr}, layer2_{nullptr}, layer3_{nullptr};
  torch::nn::Linear linear_{nullptr};
};
TORCH_MODULE(ResNet);

}  // namespace dnn_gating::models
