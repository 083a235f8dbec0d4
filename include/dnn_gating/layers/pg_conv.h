#pragma once
/// Precision gating (Zhang et al., ICLR 2020): a convolution that computes
/// every output from the most significant bits of its input first and adds
/// the least significant bits' contribution only where a learned per-channel
/// threshold says the output matters.

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "dnn_gating/layers/conv.h"
#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/integer.h"

namespace dnn_gating::kernels {
struct Affine;  // an evaluation-mode BatchNorm and ReLU, as kernels apply them
}

namespace dnn_gating::layers {

namespace integer_conv {
class IntegerWeights;
class InputMaximum;
}  // namespace integer_conv

/// Options for `PGConv2d`.
struct PGConv2dOptions {
  PGConv2dOptions(int64_t in_channels, int64_t out_channels, torch::ExpandingArray<2> kernel_size)
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
  TORCH_ARG(int64_t, wbits) = 8;
  /// Input activation bits B; must exceed pred_bits.
  TORCH_ARG(int64_t, abits) = 8;
  /// Prediction (MSB) bits Bhb, 0 < pred_bits < abits.
  TORCH_ARG(int64_t, pred_bits) = ConvSettings().pred_bits();
  /// Back-propagate through the gate only where it is open.
  TORCH_ARG(bool, sparse_bp) = ConvSettings().sparse_bp();
  /// Steepness of the sigmoid that the gate's gradient follows.
  TORCH_ARG(double, alpha) = ConvSettings().pg_alpha();
  /// Compute the gate with the original's chain of ATen operations instead of
  /// the fused kernels. Same forward values, gradients equal to float
  /// rounding; kept to pin the reference numerics.
  TORCH_ARG(bool, reference_ops) = ConvSettings().reference_ops();
  /// Without gradients, whether to add the LSB contribution only where the
  /// gate is open (see `Skipping`; reference_ops never does).
  TORCH_ARG(Skipping, skipping) = ConvSettings().skipping();
  /// Without gradients, whether to compute the MSB and LSB convolutions in
  /// integers (see `Integer`; reference_ops never does).
  TORCH_ARG(Integer, integer) = ConvSettings().integer();
};

/// y = out_msb + mask * out_lsb with out_msb = conv(T(x), Wq),
/// out_lsb = conv(Q(x) - T(x), Wq), mask = [sigmoid(alpha (out_msb - threshold)) > 0.5].
/// Parameters: `weight` [out, in, kh, kw] and `threshold` [1, out, 1, 1] (init 0).
class PGConv2dImpl : public torch::nn::Cloneable<PGConv2dImpl>,
                     public GatedLayer,
                     public FusesNext {
 public:
  explicit PGConv2dImpl(PGConv2dOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);
  /// next(forward(x)), then a ReLU if `relu`; in evaluation without
  /// gradients, the BatchNorm and ReLU are applied as the gate's selection
  /// writes the outputs.
  torch::Tensor forward_then(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                             bool relu) override;
  /// The same with PACT's clip, applied as the outputs are written too.
  torch::Tensor forward_then_clipped(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                                     double upper) override;
  GateCost gate_cost() const override;
  GateKind gate_kind() const override;
  Skipping skipping() const override { return options.skipping(); }
  void set_skipping(Skipping skipping) override { options.skipping(skipping); }

  /// Whether the last forward pass computed in integers.
  bool computed_in_integers() const { return in_integers_; }

  PGConv2dOptions options;
  torch::Tensor weight;

 private:
  /// Whether forward(x) is `infer`'s (evaluation without gradients).
  bool infers(const torch::Tensor& x) const;
  /// The forward pass without gradients; `then` (if not null) applied to
  /// the outputs.
  torch::Tensor infer(const torch::Tensor& x, const kernels::Affine* then = nullptr);
  /// The float way of `infer`: {y, open gates}; `skipped` says whether it
  /// completed only the open outputs.
  std::pair<torch::Tensor, int64_t> infer_in_float(const torch::Tensor& x, bool& skipped);

  std::shared_ptr<integer_conv::IntegerWeights> integer_weights_;
  std::shared_ptr<integer_conv::InputMaximum> input_maximum_;
  bool in_integers_ = false;
};
TORCH_MODULE(PGConv2d);

/// The prediction and update convolutions of PG as one differentiable op:
/// returns {conv(T(x), w), conv(Q(x) - T(x), w)}. Its backward takes the input
/// gradient from the prediction path alone (the update path's is exactly zero
/// under the straight-through estimators) and both weight gradients at once.
std::vector<torch::Tensor> pg_convolution(const torch::Tensor& x, const torch::Tensor& weight,
                                          torch::IntArrayRef stride, torch::IntArrayRef padding,
                                          int64_t abits, int64_t pred_bits);

}  // namespace dnn_gating::layers
