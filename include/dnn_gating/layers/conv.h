#pragma once
/// Any of the library's convolutions by kind: what a model builds its blocks
/// from without naming a layer's class, and the one question it asks of any
/// convolution (whether it folds the BatchNorm and ReLU after it into its
/// own last pass).

#include <torch/torch.h>

#include <cstdint>
#include <optional>

#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/integer.h"

namespace dnn_gating::layers {

/// Which convolution.
enum class ConvKind {
  kFloat,           ///< plain: full-precision weights and activations
  kQuantized,       ///< quantized weights and activations (wbits, abits; 0 bits = full precision)
  kPrecisionGated,  ///< precision gating (PGConv2d)
  kChannelGated,    ///< channel gating (CGConv2d)
};

/// A convolution's settings beyond its shape, each kind reading those it
/// has: the one definition of each default, held by ConvOptions and by the
/// models' options (models::ResNetOptions), and read by the layers' own
/// options (PGConv2dOptions, CGConv2dOptions, QuantizedConv2dOptions) for
/// theirs.
struct ConvSettings {
  /// Weight bits (kQuantized: 0 = full precision; kPrecisionGated).
  TORCH_ARG(int64_t, wbits) = 0;
  /// Activation bits (kQuantized: 0 = full precision; kPrecisionGated).
  TORCH_ARG(int64_t, abits) = 0;
  /// kPrecisionGated: bits of the prediction (most significant) part.
  TORCH_ARG(int64_t, pred_bits) = 4;
  /// kPrecisionGated: steepness of the gate's sigmoid.
  TORCH_ARG(double, pg_alpha) = 5.0;
  /// kChannelGated: the base path sees 1/partitions of the input channels.
  TORCH_ARG(int64_t, partitions) = 4;
  /// kChannelGated: initial gate threshold.
  TORCH_ARG(double, ginit) = 0.0;
  /// kChannelGated: steepness of the gate's sigmoid.
  TORCH_ARG(double, cg_alpha) = 2.0;
  /// kChannelGated: block-diagonal (grouped) base path.
  TORCH_ARG(bool, use_group) = false;
  /// kChannelGated: channel-shuffle the input.
  TORCH_ARG(bool, shuffle) = false;
  /// Gated kinds: back-propagate through open gates only.
  TORCH_ARG(bool, sparse_bp) = false;
  /// Gated kinds: compute with the original's chain of ATen operations.
  TORCH_ARG(bool, reference_ops) = false;
  /// Gated kinds: how evaluation without gradients skips work.
  TORCH_ARG(Skipping, skipping) = Skipping::kFastest;
  /// kQuantized and kPrecisionGated: whether evaluation without gradients
  /// computes in integers.
  TORCH_ARG(Integer, integer) = Integer::kAlways;
};

/// In an options struct that holds a ConvSettings `settings_`: the setter
/// and getters of its field `name`, as TORCH_ARG declares them, so that
/// `options.wbits(8)` reads as on any options struct.
#define DG_CONV_SETTING(T, name)                                     \
 public:                                                             \
  inline auto name(const T& new_##name)->decltype(*this) {           \
    this->settings_.name(new_##name);                                \
    return *this;                                                    \
  }                                                                  \
  inline const T& name() const noexcept { return settings_.name(); } \
  inline T& name() noexcept { return settings_.name(); }

/// Every field of ConvSettings through DG_CONV_SETTING.
#define DG_CONV_SETTINGS                                    \
  DG_CONV_SETTING(int64_t, wbits)                           \
  DG_CONV_SETTING(int64_t, abits)                           \
  DG_CONV_SETTING(int64_t, pred_bits)                       \
  DG_CONV_SETTING(double, pg_alpha)                         \
  DG_CONV_SETTING(int64_t, partitions)                      \
  DG_CONV_SETTING(double, ginit)                            \
  DG_CONV_SETTING(double, cg_alpha)                         \
  DG_CONV_SETTING(bool, use_group)                          \
  DG_CONV_SETTING(bool, shuffle)                            \
  DG_CONV_SETTING(bool, sparse_bp)                          \
  DG_CONV_SETTING(bool, reference_ops)                      \
  DG_CONV_SETTING(::dnn_gating::layers::Skipping, skipping) \
  DG_CONV_SETTING(::dnn_gating::layers::Integer, integer)

/// Options for `make_conv`: a convolution of any kind, its shape and its
/// settings (`settings()`, or each field of ConvSettings by name).
struct ConvOptions {
  ConvOptions(ConvKind kind, int64_t in_channels, int64_t out_channels,
              torch::ExpandingArray<2> kernel_size)
      : kind_(kind),
        in_channels_(in_channels),
        out_channels_(out_channels),
        kernel_size_(kernel_size) {}
  /// Which convolution.
  TORCH_ARG(ConvKind, kind);
  /// Input channels.
  TORCH_ARG(int64_t, in_channels);
  /// Output channels.
  TORCH_ARG(int64_t, out_channels);
  /// Kernel height and width.
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  /// Stride.
  TORCH_ARG(torch::ExpandingArray<2>, stride) = 1;
  /// Zero padding.
  TORCH_ARG(torch::ExpandingArray<2>, padding) = 0;
  /// Bits, gate settings, ways of computing (see ConvSettings).
  TORCH_ARG(ConvSettings, settings);
  DG_CONV_SETTINGS
};

/// The convolution `options` describe.
torch::nn::AnyModule make_conv(const ConvOptions& options);

/// Whether the convolution `options` describe computes `input` channels-last
/// (float CPU tensors: every kind in training, with gradients; without them,
/// unless `reference_ops`, CG layers, and quantized and PG layers that may
/// compute in integers), so that a model may lay its input out so once
/// rather than have every layer convert it.
bool computes_channels_last(const ConvOptions& options, const torch::Tensor& input);

/// A layer that can apply the evaluation-mode BatchNorm and ReLU that follow
/// it in its own last pass, instead of two more passes over its output.
/// Models ask any convolution for it (`dynamic_pointer_cast<FusesNext>`);
/// CGConv2d has it.
class FusesNext {
 public:
  virtual ~FusesNext() = default;
  /// next(forward(x)), then a ReLU if `relu`: the same values, folded into
  /// the layer's last pass where it has one (in evaluation without
  /// gradients, `next` in evaluation mode too).
  virtual torch::Tensor forward_then(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                                     bool relu) = 0;
  /// clamp(next(forward(x)), 0, upper): PACT's clip with its bound, in
  /// evaluation without gradients (the bound takes no gradient here). By
  /// default forward_then with a ReLU, then the clip.
  virtual torch::Tensor forward_then_clipped(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                                             double upper);
  /// act(next(forward(x)) + residual), act a ReLU where `upper` is infinite,
  /// else PACT's clamp(., 0, upper): a residual block's second convolution,
  /// its BatchNorm, the shortcut's sum and the activation, in evaluation
  /// without gradients. A residual handed over (moved in, or a temporary)
  /// may take the result; one the caller keeps is left as it was. By
  /// default forward_then, then the sum and the activation in place on its
  /// result.
  virtual torch::Tensor forward_then_added(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                                           torch::Tensor residual, double upper);
};

/// act(bn(conv(x))) of a plain convolution (a model's float stem), act a
/// ReLU clipped at `upper` where that is finite (PACT), in evaluation
/// without gradients as the library's float convolutions evaluate: the
/// BatchNorm folded into the convolution, the activation in place. Nothing
/// where it does not fold (gradients, a BatchNorm in training mode, an input
/// other than a float CPU tensor, a convolution with a bias, groups,
/// dilation or padding other than zeros by number): then the modules
/// compute it.
std::optional<torch::Tensor> folded_conv(torch::nn::Conv2dImpl& conv,
                                         const torch::nn::BatchNorm2dImpl& bn, double upper,
                                         const torch::Tensor& x);

/// A convolution that quantizes its input to some bits before it computes:
/// it takes an input already quantized (as quant::pact_quantize gives it),
/// so that PACT and the quantizer run as one pass. Models reach the quantized
/// convolution through this interface.
class TakesQuantizedInput {
 public:
  virtual ~TakesQuantizedInput() = default;
  /// The bits its input is quantized to (0: it is not quantized).
  virtual int64_t input_bits() const = 0;
  /// forward(x) given `quantized` = Q(x) at input_bits().
  virtual torch::Tensor forward_quantized(const torch::Tensor& quantized) = 0;
};

}  // namespace dnn_gating::layers
