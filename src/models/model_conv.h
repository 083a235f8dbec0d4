#pragma once
// What every model of the family builds its convolutions with: the kind of
// each convolution of a block, and a 3x3 (or any) convolution of a kind
// with the model's settings.
#include <torch/torch.h>

#include <cstdint>

#include "dnn_gating/layers/conv.h"
#include "dnn_gating/layers/slot.h"
#include "dnn_gating/models/resnet.h"

namespace dnn_gating::models {

/// Quantized and PG models quantize and may clip with PACT.
bool is_quantized(ConvKind conv);

/// The second convolution of a block: the block's own kind when
/// post-activated; in the standard layout the gated kinds gate only the
/// first (PG: quantized second, CG: plain second).
ConvKind second_conv(const ResNetOptions& o);

/// The options of a convolution of kind `conv` with the model's settings
/// (bits, gate settings), `kernel` x `kernel` with padding kernel / 2.
layers::ConvOptions model_conv_options(ConvKind conv, const ResNetOptions& o, int64_t in,
                                       int64_t out, int64_t stride, int64_t kernel = 3);
/// The convolution of those options.
torch::nn::AnyModule model_conv(ConvKind conv, const ResNetOptions& o, int64_t in, int64_t out,
                                int64_t stride, int64_t kernel = 3);

/// `input` laid out as the model's gated or quantized convolutions compute
/// it (layers::computes_channels_last): channels-last, or as it is.
torch::Tensor model_layout(const ResNetOptions& o, const torch::Tensor& input);

/// bn(conv(x)), then a ReLU if `relu`: in the convolution's own last pass
/// where it can (layers::FusesNext), with layers::batch_norm otherwise.
torch::Tensor normalised(layers::Slot& conv, torch::nn::BatchNorm2d& bn, bool relu,
                         const torch::Tensor& x);

/// act(bn(conv(x))): `normalised` with a ReLU where `act` is a plain ReLU;
/// with PACT, in evaluation without gradients, its clip folded into the
/// convolution's last pass where the convolution can
/// (FusesNext::forward_then_clipped); else act applied after.
torch::Tensor normalised_activated(layers::Slot& conv, torch::nn::BatchNorm2d& bn,
                                   layers::Slot& act, const torch::Tensor& x);

/// act(bn(conv(x)) + residual), act a ReLU or PACT: in evaluation without
/// gradients in the convolution's last pass where the convolution can
/// (FusesNext::forward_then_added, which may write into a residual handed
/// over); else the sum and act after.
torch::Tensor normalised_added(layers::Slot& conv, torch::nn::BatchNorm2d& bn, layers::Slot& act,
                               const torch::Tensor& x, torch::Tensor residual);

/// The bits of the input quantizer of `conv` when it may run in one pass
/// with a PACT before it (quant::pact_quantize): a QuantizedConv2d with 2 or
/// more input bits, in training (gradients on), without `reference_ops`.
/// Else 0.
int64_t fused_input_bits(const layers::Slot& conv, const ResNetOptions& o);

/// act(x); where `bits` > 0 and act is PACT, also quantized to `bits` in
/// the same pass, and the value kept only if `keep_value`.
Activation activated(layers::Slot& act, const torch::Tensor& x, int64_t bits, bool keep_value);

/// bn(conv(a)): from a.quantized where the pass before computed it (the
/// convolution is then the QuantizedConv2d of fused_input_bits), else
/// `normalised` without a ReLU.
torch::Tensor normalised_from(layers::Slot& conv, torch::nn::BatchNorm2d& bn, const Activation& a);

/// The activation of a model of the family (held in a Slot, so that
/// layers::gate() can make it PACT): PACT in quantized and PG models with
/// `pact`, else a ReLU.
torch::nn::AnyModule model_activation(const ResNetOptions& o);

/// Whether `activation` is a plain ReLU (which a convolution may fold into
/// its last pass with `normalised`).
bool is_plain_relu(const layers::Slot& activation);

}  // namespace dnn_gating::models
