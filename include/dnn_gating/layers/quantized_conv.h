#pragma once
/// Convolution and linear layers with quantized weights and inputs.

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "dnn_gating/layers/conv.h"
#include "dnn_gating/layers/dense_macs.h"
#include "dnn_gating/layers/integer.h"

namespace dnn_gating::layers {

namespace integer_conv {
class IntegerWeights;
class InputMaximum;
}  // namespace integer_conv

}  // namespace dnn_gating::layers

namespace dnn_gating::kernels {
struct Affine;
}

namespace dnn_gating::layers {

/// Options for `QuantizedConv2d`: y = conv2d(Q_abits(x), Q_wbits(W) * r),
/// r = sqrt(1 / (k*k*in)) for binary weights, else 1. 0 bits = full precision.
struct QuantizedConv2dOptions {
  QuantizedConv2dOptions(int64_t in_channels, int64_t out_channels,
                         torch::ExpandingArray<2> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  /// Input channels.
  TORCH_ARG(int64_t, in_channels);
  /// Output channels.
  TORCH_ARG(int64_t, out_channels);
  /// Kernel height and width.
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  /// Stride of the convolution.
  TORCH_ARG(torch::ExpandingArray<2>, stride) = 1;
  /// Zero padding on each side.
  TORCH_ARG(torch::ExpandingArray<2>, padding) = 0;
  /// Weight bits (0: full precision, 1: binary).
  TORCH_ARG(int64_t, wbits) = ConvSettings().wbits();
  /// Input activation bits (0: full precision).
  TORCH_ARG(int64_t, abits) = ConvSettings().abits();
  /// Without gradients, whether to compute in integers (see `Integer`).
  TORCH_ARG(Integer, integer) = ConvSettings().integer();
};

/// A bias-free convolution on quantized weights and inputs (`weight` only).
class QuantizedConv2dImpl : public torch::nn::Cloneable<QuantizedConv2dImpl>,
                            public CountsMacs,
                            public FusesNext,
                            public TakesQuantizedInput {
 public:
  explicit QuantizedConv2dImpl(QuantizedConv2dOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);
  /// next(forward(x)), then a ReLU if `relu`; computing in integers, the
  /// BatchNorm and ReLU are applied as the sums are written.
  torch::Tensor forward_then(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                             bool relu) override;
  /// The same with PACT's clip, applied as the sums are written too.
  torch::Tensor forward_then_clipped(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                                     double upper) override;
  /// The same with a residual added before the activation: computing in
  /// integers, the sum and the activation are applied as the sums are
  /// written too (into the residual's memory where it was handed over).
  torch::Tensor forward_then_added(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                                   torch::Tensor residual, double upper) override;
  /// The convolution of an input already quantized to `abits` bits (as
  /// quant::pact_quantize gives it): forward(x) is forward_quantized(Q(x)).
  torch::Tensor forward_quantized(const torch::Tensor& quantized) override;
  int64_t input_bits() const override { return options.abits(); }
  /// Whether the last forward pass computed in integers.
  bool computed_in_integers() const { return in_integers_; }

  QuantizedConv2dOptions options;
  /// [out, in, kh, kw], Kaiming-normal initialised (fan-in, ReLU gain).
  torch::Tensor weight;

 private:
  /// Whether forward_then folds the next BatchNorm into the convolution:
  /// a float layer (no bits) evaluated without gradients on a float CPU
  /// input, unless it computes the original's way (Integer::kNever, as
  /// reference_ops makes it).
  bool folds(const torch::Tensor& x) const;
  torch::Tensor folded(const torch::Tensor& x, const kernels::Affine& then);
  torch::Tensor in_float(const torch::Tensor& x);
  torch::Tensor convolve(const torch::Tensor& quantized);
  /// Whether the integer way may take x (evaluation without gradients,
  /// float CPU tensors, bits it takes).
  bool may_compute_in_integers(const torch::Tensor& x) const;
  /// In integers or in float, as options.integer says and the input allows;
  /// `then` (if not null) applied to the output, with `residual` (if
  /// defined) added before its ReLU or clip.
  torch::Tensor either_way(const torch::Tensor& x, const kernels::Affine* then,
                           torch::Tensor residual = {});

  std::shared_ptr<integer_conv::IntegerWeights> integer_weights_;
  std::shared_ptr<integer_conv::InputMaximum> input_maximum_;
  bool in_integers_ = false;
};
TORCH_MODULE(QuantizedConv2d);

/// Options for `QuantizedLinear`: y = linear(Q_abits(x), Q_wbits(W) * r, b),
/// r = sqrt(1 / in) for binary weights, else 1.
struct QuantizedLinearOptions {
  QuantizedLinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  /// Input features.
  TORCH_ARG(int64_t, in_features);
  /// Output features.
  TORCH_ARG(int64_t, out_features);
  /// Whether to learn an additive bias.
  TORCH_ARG(bool, bias) = true;
  /// Weight bits (0: full precision, 1: binary).
  TORCH_ARG(int64_t, wbits) = 0;
  /// Input bits (0: full precision).
  TORCH_ARG(int64_t, abits) = 0;
};

/// A linear layer on quantized weights and inputs (`weight`, `bias`).
class QuantizedLinearImpl : public torch::nn::Cloneable<QuantizedLinearImpl>, public CountsMacs {
 public:
  explicit QuantizedLinearImpl(QuantizedLinearOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);

  QuantizedLinearOptions options;
  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(QuantizedLinear);

/// Q_wbits(weight) * r with r = sqrt(1 / fan_in) for binary weights, else 1.
torch::Tensor quantize_weight(const torch::Tensor& weight, int64_t wbits);

}  // namespace dnn_gating::layers
