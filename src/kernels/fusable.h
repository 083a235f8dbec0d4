#pragma once
// Which tensors the fused kernels (quantizers, PACT, gates) handle, and how
// they are laid out.
#include <ATen/core/Tensor.h>

namespace dnn_gating::kernels {

/// A non-empty float tensor on the CPU. Anything else (a CUDA tensor, double
/// precision) takes the ATen operations.
inline bool fusable(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.numel() > 0;
}

/// A 4-d tensor laid out [N, H, W, C] in memory (and not also [N, C, H, W],
/// as when C or H * W is 1).
inline bool channels_last(const at::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace dnn_gating::kernels
