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

/// The activation of a model of the family (held in a Slot, so that
/// layers::gate() can make it PACT): PACT in quantized and PG models with
/// `pact`, else a ReLU.
torch::nn::AnyModule model_activation(const ResNetOptions& o);

/// Whether `activation` is a plain ReLU (which a convolution may fold into
/// its last pass with `normalised`).
bool is_plain_relu(const layers::Slot& activation);

}  // namespace dnn_gating::models
