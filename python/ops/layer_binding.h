#pragma once
/// What the extension's layer classes share: the input laid out as the
/// library's models lay it out, shapes checked against the layer's own, and
/// the gate's counters and skipping mode.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dnn_gating/layers/conv.h"
#include "dnn_gating/layers/gated_layer.h"
#include "python_errors.h"

namespace dnn_gating::python {

/// x channels-last where the convolution `options` describe computes so
/// (layers::computes_channels_last), as the library's models hand it over.
inline torch::Tensor laid_out(const layers::ConvOptions& options, const torch::Tensor& x) {
  return layers::computes_channels_last(options, x) ? x.contiguous(at::MemoryFormat::ChannelsLast)
                                                    : x;
}

/// ValueError unless `given` (what the Python module calls `what`) has the
/// shape `expected`.
inline void check_shape(const char* what, const torch::Tensor& given, torch::IntArrayRef expected) {
  TORCH_CHECK_VALUE(given.sizes() == expected, what, " must have shape ", expected, ", got ",
                    given.sizes());
}

/// {num_out, num_on} of the layer's last forward pass.
inline std::vector<int64_t> counts_of(const layers::GatedLayer& layer) {
  const auto& c = layer.last_counts();
  return {c.num_out, c.num_on};
}

/// Sets how the layer skips without gradients: "fastest", "never", "always".
inline void set_skipping_of(layers::GatedLayer& layer, const std::string& skipping) {
  with_python_errors([&] { layer.set_skipping(layers::skipping_from_string(skipping)); });
}

}  // namespace dnn_gating::python
