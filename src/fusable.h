#pragma once
// Which tensors the fused kernels (quantizers, PACT, gates) handle.
#include <ATen/core/Tensor.h>

namespace dnn_gating {

/// A non-empty float tensor on the CPU. Anything else (a CUDA tensor, double
/// precision) takes the ATen operations.
inline bool fusable(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.numel() > 0;
}

}  // namespace dnn_gating
