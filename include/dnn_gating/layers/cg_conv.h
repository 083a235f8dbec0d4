#pragma once
/// Channel gating (Hua et al., NeurIPS 2019): a convolution that first sums
/// over a fixed subset of its input channels (the base path) and computes the
/// full sum only where a learned per-channel gate on that partial sum opens.

#include <torch/torch.h>

#include <cstdint>

#include "dnn_gating/layers/conv.h"
#include "dnn_gating/layers/gated_layer.h"

namespace dnn_gating::kernels {
struct Affine;  // an evaluation-mode BatchNorm and ReLU, as kernels apply them
}  // namespace dnn_gating::kernels

namespace dnn_gating::layers {

/// Options for `CGConv2d`.
struct CGConv2dOptions {
  CGConv2dOptions(int64_t in_channels, int64_t out_channels, torch::ExpandingArray<2> kernel_size)
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
  /// p: the base path sees 1/p of the input channels; must divide both channel counts.
  TORCH_ARG(int64_t, partitions) = ConvSettings().partitions();
  /// Initial value of the gate thresholds.
  TORCH_ARG(double, ginit) = ConvSettings().ginit();
  /// Steepness of the sigmoid that the gate's gradient follows.
  TORCH_ARG(double, alpha) = ConvSettings().cg_alpha();
  /// Block-diagonal base path (p groups) instead of the first 1/p input channels.
  TORCH_ARG(bool, use_group) = ConvSettings().use_group();
  /// Channel-shuffle the input with p groups first.
  TORCH_ARG(bool, shuffle) = ConvSettings().shuffle();
  /// Back-propagate through the gate only where it is open. The fused
  /// training path then keeps the layer's output y for its backward pass
  /// (instead of the full sums), so y must not be modified in place before
  /// the backward pass (BatchNorm after the layer, as in every model here,
  /// keeps it too).
  TORCH_ARG(bool, sparse_bp) = ConvSettings().sparse_bp();
  /// Compute as the original does: the base path as a dense convolution with
  /// the masked weight (instead of a convolution over the unmasked channels
  /// only) and the gate as its chain of ATen operations (instead of the fused
  /// kernels). Same sums in another order; kept to pin the reference numerics.
  TORCH_ARG(bool, reference_ops) = ConvSettings().reference_ops();
  /// Without gradients, whether to compute the channels outside the base
  /// path only where the gate is open (see `Skipping`; reference_ops never does).
  TORCH_ARG(Skipping, skipping) = ConvSettings().skipping();
};

/// y = Y * d + Yp * (1 - d) with Yp the base-path partial sum, Y the full
/// convolution and d = [sigmoid(alpha (bn(Yp) - threshold)) > 0.5].
/// State: `weight`, `mask` (buffer), `threshold` [1, out, 1, 1], `bn` (no affine).
class CGConv2dImpl : public torch::nn::Cloneable<CGConv2dImpl>,
                     public GatedLayer,
                     public FusesNext {
 public:
  explicit CGConv2dImpl(CGConv2dOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);
  /// next(forward(x)), then a ReLU if `relu`: the same values, but in
  /// evaluation without gradients (`next` in evaluation mode too) the batch
  /// normalisation and ReLU are applied in the layer's last pass where it
  /// has one, instead of two more passes over the output.
  torch::Tensor forward_then(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                             bool relu) override;
  GateCost gate_cost() const override;
  GateKind gate_kind() const override;
  Skipping skipping() const override { return options.skipping(); }
  void set_skipping(Skipping skipping) override { options.skipping(skipping); }

  CGConv2dOptions options;
  torch::Tensor weight;
  /// 1 where a weight belongs to the base path (saved, never trained).
  torch::Tensor mask;
  torch::nn::BatchNorm2d bn{nullptr};

  /// {tiles computed, tiles} of the last evaluation that took the tile way
  /// (InferenceWay::kOpenTiles): (tile, output channel) pairs holding
  /// an open gate, a tile being 16 positions of one row at AVX-512, 8 below.
  std::pair<int64_t, int64_t> last_tiles() const { return last_tiles_; }

 private:
  std::pair<int64_t, int64_t> last_tiles_{0, 0};
  /// Below which on-fraction the default way tries the tile way again.
  double tiles_retry_below_ = 1.0;
  /// Whether evaluation after a batch with `previous_on_fraction` of its
  /// gates open (-1: none seen) takes the tile way (InferenceWay::kOpenTiles).
  bool takes_tiles(double previous_on_fraction) const;
  torch::Tensor base_path(const torch::Tensor& x) const;
  /// Whether a forward pass on `input` takes the way without gradients.
  bool infers(const torch::Tensor& input) const;
  /// forward(x), then `then` where set (only when infers(x)).
  torch::Tensor mapped(const torch::Tensor& x, const kernels::Affine* then);
  /// The way without gradients, on the channels-last input.
  torch::Tensor infer(const torch::Tensor& x, const kernels::Affine* then);
};
TORCH_MODULE(CGConv2d);

/// Channel shuffle with `groups` groups: [N, g, C/g, H, W] -> swap 1, 2 -> [N, C, H, W].
torch::Tensor channel_shuffle(const torch::Tensor& x, int64_t groups);

}  // namespace dnn_gating::layers
