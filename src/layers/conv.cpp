#include "dnn_gating/layers/conv.h"

#include <cmath>

#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/layers/quantized_conv.h"
#include "kernels/affine.h"
#include "kernels/fusable.h"

namespace dnn_gating::layers {

torch::nn::AnyModule make_conv(const ConvOptions& o) {
  switch (o.kind()) {
    case ConvKind::kPrecisionGated:
      return torch::nn::AnyModule(
          PGConv2d(PGConv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
                       .stride(o.stride())
                       .padding(o.padding())
                       .wbits(o.wbits())
                       .abits(o.abits())
                       .pred_bits(o.pred_bits())
                       .sparse_bp(o.sparse_bp())
                       .alpha(o.pg_alpha())
                       .reference_ops(o.reference_ops())
                       .skipping(o.skipping())
                       .integer(o.integer())));
    case ConvKind::kChannelGated:
      return torch::nn::AnyModule(
          CGConv2d(CGConv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
                       .stride(o.stride())
                       .padding(o.padding())
                       .partitions(o.partitions())
                       .ginit(o.ginit())
                       .alpha(o.cg_alpha())
                       .use_group(o.use_group())
                       .shuffle(o.shuffle())
                       .sparse_bp(o.sparse_bp())
                       .reference_ops(o.reference_ops())
                       .skipping(o.skipping())));
    case ConvKind::kFloat:
    case ConvKind::kQuantized:
      break;
  }
  const bool quantized = o.kind() == ConvKind::kQuantized;
  return torch::nn::AnyModule(
      QuantizedConv2d(QuantizedConv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
                          .stride(o.stride())
                          .padding(o.padding())
                          .wbits(quantized ? o.wbits() : 0)
                          .abits(quantized ? o.abits() : 0)
                          .integer(o.reference_ops() ? Integer::kNever : o.integer())));
}

bool computes_channels_last(const ConvOptions& o, const torch::Tensor& input) {
  if (input.dim() != 4 || !kernels::fusable(input)) return false;
  // Training: oneDNN's backward passes are faster channels-last (16 channels
  // at 32x32: forward and backward 6.6 ms against 19-21 ms), and every
  // layer's own operations keep that layout. The original's chain of
  // operations (`reference_ops`) trains so too, so that the two ways differ
  // only in their kernels, not in how the convolutions round.
  if (torch::GradMode::is_enabled()) return true;
  if (o.reference_ops()) return false;
  switch (o.kind()) {
    case ConvKind::kChannelGated:
      return true;
    case ConvKind::kQuantized:
    case ConvKind::kPrecisionGated:
      return integer_applies(o.integer(), o.wbits(), o.abits());
    case ConvKind::kFloat:
      // Evaluation folds each BatchNorm into its convolution (forward_then),
      // which oneDNN computes faster channels-last.
      return true;
  }
  return false;
}

torch::Tensor FusesNext::forward_then_clipped(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                                              double upper) {
  return torch::clamp_max(forward_then(x, next, /*relu=*/true), upper);
}

std::optional<torch::Tensor> folded_conv(torch::nn::Conv2dImpl& conv,
                                         const torch::nn::BatchNorm2dImpl& bn, double upper,
                                         const torch::Tensor& x) {
  const auto& o = conv.options;
  const auto* padding = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  // (Only what folded_conv2d computes: no bias, groups or dilation, zeros
  // padded by number.)
  if (torch::GradMode::is_enabled() || !kernels::fusable(x) || conv.bias.defined() ||
      o.groups() != 1 || (*o.dilation())[0] != 1 || (*o.dilation())[1] != 1 || padding == nullptr ||
      !c10::get_if<torch::enumtype::kZeros>(&o.padding_mode())) {
    return std::nullopt;
  }
  auto then = kernels::as_affine(bn, /*relu=*/true);
  if (!then) return std::nullopt;
  if (std::isfinite(upper)) then->upper = static_cast<float>(upper);
  return kernels::folded_conv2d(x, conv.weight, *then, *o.stride(), **padding);
}

torch::Tensor FusesNext::forward_then_added(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                                            torch::Tensor residual, double upper) {
  return kernels::add_activated(forward_then(x, next, /*relu=*/false), residual, upper);
}

}  // namespace dnn_gating::layers
