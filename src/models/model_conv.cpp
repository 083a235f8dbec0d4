#include "models/model_conv.h"

#include <limits>

#include "dnn_gating/layers/batch_norm.h"
#include "dnn_gating/layers/conv.h"
#include "dnn_gating/quant/pact.h"

namespace dnn_gating::models {

bool is_quantized(ConvKind conv) {
  return conv == ConvKind::kQuantized || conv == ConvKind::kPrecisionGated;
}

ConvKind second_conv(const ResNetOptions& o) {
  if (o.layout() == BlockLayout::kPostActivated) return o.conv();
  if (o.conv() == ConvKind::kPrecisionGated) return ConvKind::kQuantized;
  if (o.conv() == ConvKind::kChannelGated) return ConvKind::kFloat;
  return o.conv();
}

layers::ConvOptions model_conv_options(ConvKind conv, const ResNetOptions& o, int64_t in,
                                       int64_t out, int64_t stride, int64_t kernel) {
  layers::ConvSettings settings = o.settings();
  if (!is_quantized(conv)) settings.wbits(0).abits(0);
  return layers::ConvOptions(conv, in, out, kernel)
      .stride(stride)
      .padding(kernel / 2)
      .settings(settings);
}

torch::nn::AnyModule model_conv(ConvKind conv, const ResNetOptions& o, int64_t in, int64_t out,
                                int64_t stride, int64_t kernel) {
  return layers::make_conv(model_conv_options(conv, o, in, out, stride, kernel));
}

torch::Tensor model_layout(const ResNetOptions& o, const torch::Tensor& input) {
  if (!layers::computes_channels_last(model_conv_options(o.conv(), o, 16, 16, 1), input))
    return input;
  // A one-channel image (Fashion-MNIST) is channels-last contiguous as it
  // is, so contiguous() keeps its NCHW strides, from which the convolutions
  // infer NCHW outputs: the whole network then ran NCHW, on the library's
  // slower ways. Its channels-last strides are set explicitly.
  if (input.dim() == 4 && input.size(1) == 1 &&
      input.suggest_memory_format() != at::MemoryFormat::ChannelsLast) {
    return torch::empty(input.sizes(),
                        input.options().memory_format(at::MemoryFormat::ChannelsLast))
        .copy_(input);
  }
  return input.contiguous(at::MemoryFormat::ChannelsLast);
}

torch::Tensor normalised(layers::Slot& conv, torch::nn::BatchNorm2d& bn, bool relu,
                         const torch::Tensor& x) {
  if (const auto fuses = std::dynamic_pointer_cast<layers::FusesNext>(conv.ptr())) {
    return fuses->forward_then(x, bn, relu);
  }
  const torch::Tensor y = layers::batch_norm(*bn, conv.forward(x));
  return relu ? torch::relu(y) : y;
}

torch::Tensor normalised_activated(layers::Slot& conv, torch::nn::BatchNorm2d& bn,
                                   layers::Slot& act, const torch::Tensor& x) {
  if (is_plain_relu(act)) return normalised(conv, bn, /*relu=*/true, x);
  const auto pact = act.as<quant::PactReLUImpl>();
  const auto fuses = std::dynamic_pointer_cast<layers::FusesNext>(conv.ptr());
  if (pact && fuses && !torch::GradMode::is_enabled()) {
    return fuses->forward_then_clipped(x, bn, pact->upper_bound.item<double>());
  }
  return act.forward(normalised(conv, bn, /*relu=*/false, x));
}

torch::Tensor normalised_added(layers::Slot& conv, torch::nn::BatchNorm2d& bn, layers::Slot& act,
                               const torch::Tensor& x, torch::Tensor residual) {
  const auto fuses = std::dynamic_pointer_cast<layers::FusesNext>(conv.ptr());
  if (fuses && !torch::GradMode::is_enabled()) {
    if (is_plain_relu(act)) {
      return fuses->forward_then_added(x, bn, std::move(residual),
                                       std::numeric_limits<double>::infinity());
    }
    if (const auto pact = act.as<quant::PactReLUImpl>()) {
      return fuses->forward_then_added(x, bn, std::move(residual),
                                       pact->upper_bound.item<double>());
    }
  }
  return act.forward(normalised(conv, bn, /*relu=*/false, x) + residual);
}

int64_t fused_input_bits(const layers::Slot& conv, const ResNetOptions& o) {
  if (o.reference_ops() || !torch::GradMode::is_enabled()) return 0;
  const auto quantized = std::dynamic_pointer_cast<layers::TakesQuantizedInput>(conv.ptr());
  return quantized && quantized->input_bits() >= 2 ? quantized->input_bits() : 0;
}

Activation activated(layers::Slot& act, const torch::Tensor& x, int64_t bits, bool keep_value) {
  const auto pact = act.as<quant::PactReLUImpl>();
  if (bits == 0 || !pact) return {act.forward(x), {}};
  quant::ClippedAndQuantized both = quant::pact_quantize(x, pact->upper_bound, bits, keep_value);
  return {std::move(both.clipped), std::move(both.quantized)};
}

torch::Tensor normalised_from(layers::Slot& conv, torch::nn::BatchNorm2d& bn, const Activation& a) {
  if (!a.quantized.defined()) return normalised(conv, bn, /*relu=*/false, a.value);
  const auto quantized = std::dynamic_pointer_cast<layers::TakesQuantizedInput>(conv.ptr());
  TORCH_CHECK(quantized, "a quantized activation reached a convolution that does not quantize");
  return layers::batch_norm(*bn, quantized->forward_quantized(a.quantized));
}

torch::nn::AnyModule model_activation(const ResNetOptions& o) {
  if (o.pact() && is_quantized(o.conv())) return torch::nn::AnyModule(quant::PactReLU());
  return torch::nn::AnyModule(torch::nn::ReLU());
}

bool is_plain_relu(const layers::Slot& activation) {
  return activation.as<torch::nn::ReLUImpl>() != nullptr;
}

}  // namespace dnn_gating::models
