#pragma once
/// The CIFAR ResNet family (He et al., option-A shortcuts) with quantized,
/// precision-gated or channel-gated convolutions, as in dnn-gating.

#include "dnn_gating/quant/pact.h"

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace dnn_gating::models {

/// Which convolutions the residual blocks use.
enum class BlockKind {
  kQuantized,         ///< QuantizedConv2d for both convs (float when wbits = abits = 0)
  kPrecisionGated,    ///< PGConv2d then QuantizedConv2d
  kChannelGated,      ///< CGConv2d then a plain conv
  kPostActivated,     ///< post-activated block, plain convs (CG trainer without -cg)
  kChannelGatedPostAct,  ///< post-activated block, CGConv2d for both convs
};

/// Name of a block kind as used in checkpoints and reports ("quantized", "pg", "cg", ...).
std::string to_string(BlockKind kind);
/// Inverse of to_string; throws on an unknown name.
BlockKind block_kind_from_string(const std::string& name);

/// Options for `ResNet`: depth, input, and the settings of every block.
struct ResNetOptions {
  explicit ResNetOptions(BlockKind kind = BlockKind::kQuantized) : kind_(kind) {}
  /// Block type.
  TORCH_ARG(BlockKind, kind);
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
};

/// Checks a configuration and throws one clear message naming the bad setting.
void validate(const ResNetOptions& options);

/// One residual block (`conv1`, `bn1`, `conv2`, `bn2`, and `relu` when PACT).
class BasicBlockImpl : public torch::nn::Cloneable<BasicBlockImpl> {
 public:
  BasicBlockImpl(const ResNetOptions& options, int64_t in_planes, int64_t planes, int64_t stride);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor activate(const torch::Tensor& x);
  torch::Tensor shortcut(const torch::Tensor& x) const;

  ResNetOptions options_;
  int64_t in_planes_, planes_, stride_;
  torch::nn::AnyModule conv1_, conv2_;
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  quant::PactReLU pact_{nullptr};
};
TORCH_MODULE(BasicBlock);

/// ResNet for 32x32 images: conv1 (plain 3x3) -> bn1 -> act -> layer1..3 ->
/// global average pool -> linear. State-dict keys equal the original's.
class ResNetImpl : public torch::nn::Cloneable<ResNetImpl> {
 public:
  explicit ResNetImpl(ResNetOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);
  /// Dense multiply-accumulates of one forward pass on a height x width image
  /// (every conv and the linear layer; BatchNorm and gates not counted).
  int64_t dense_macs_per_image(int64_t height, int64_t width) const;

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
