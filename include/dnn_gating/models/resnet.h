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

/// Options for `ResNet`: depth, input, and the settings of every block.
struct ResNetOptions {
  explicit ResNetOptions(ConvKind conv = ConvKind::kFloat,
                         BlockLayout layout = BlockLayout::kStandard)
      : conv_(conv), layout_(layout) {}
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
  /// Weight bits of quantized and PG convs (0: float).
  TORCH_ARG(int64_t, wbits) = 0;
  /// Activation bits of quantized and PG convs (0: float).
  TORCH_ARG(int64_t, abits) = 0;
  /// PACT activations instead of ReLU (quantized and PG models).
  TORCH_ARG(bool, pact) = false;
  /// PG prediction bits.
  TORCH_ARG(int64_t, pred_bits) = 4;
  /// Sparse back-propagation through the gates (PG and CG).
  TORCH_ARG(bool, sparse_bp) = false;
  /// Sigmoid steepness of the PG gate.
  TORCH_ARG(double, pg_alpha) = 5.0;
  /// CG partitions p.
  TORCH_ARG(int64_t, partitions) = 4;
  /// CG initial threshold.
  TORCH_ARG(double, ginit) = 0.0;
  /// Sigmoid steepness of the CG gate.
  TORCH_ARG(double, cg_alpha) = 2.0;
  /// CG block-diagonal base path.
  TORCH_ARG(bool, use_group) = false;
  /// CG channel shuffle.
  TORCH_ARG(bool, shuffle) = false;
  /// Gated layers compute as the original does (PG and CG gates as ATen
  /// chains, the CG base path as a dense masked convolution) instead of on
  /// the fused kernels: the reference numerics.
  TORCH_ARG(bool, reference_ops) = false;
  /// How gated layers compute without gradients (see layers::Skipping).
  TORCH_ARG(layers::Skipping, skipping) = layers::Skipping::kFastest;
};

/// Checks a configuration; a bad one throws SettingError naming the setting
/// (the ResNetOptions field) and what was expected.
void validate(const ResNetOptions& options);

/// The blocks' option-A shortcut: `x` itself where the block keeps its
/// shape, else every second row and column of `x` with planes/4 zero
/// channels padded on each side.
torch::Tensor option_a_shortcut(const torch::Tensor& x, int64_t in_planes, int64_t planes,
                                int64_t stride);

/// One residual block (`conv1`, `bn1`, `conv2`, `bn2`, and `relu` when PACT).
class BasicBlockImpl : public torch::nn::Cloneable<BasicBlockImpl> {
 public:
  BasicBlockImpl(const ResNetOptions& options, int64_t in_planes, int64_t planes, int64_t stride);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor activate(const torch::Tensor& x);
  /// bn(conv(x)), then a ReLU if relu.
  static torch::Tensor normalised(torch::nn::AnyModule& conv, torch::nn::BatchNorm2d& bn, bool relu,
                                  const torch::Tensor& x);
  torch::Tensor shortcut(const torch::Tensor& x) const;

  ResNetOptions options_;
  int64_t in_planes_, planes_, stride_;
  torch::nn::AnyModule conv1_, conv2_;
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  quant::PactReLU pact_{nullptr};
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
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  quant::PactReLU pact_{nullptr};
  torch::nn::Sequential layer1_{nullptr}, layer2_{nullptr}, layer3_{nullptr};
  torch::nn::Linear linear_{nullptr};
};
TORCH_MODULE(ResNet);

}  // namespace dnn_gating::models
