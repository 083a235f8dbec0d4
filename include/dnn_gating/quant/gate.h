#pragma once
/// The hard gate of PG and CG: a step function with a straight-through
/// gradient that sparse back-propagation restricts to the open gates.

#include <torch/torch.h>

namespace dnn_gating::quant {

/// Forward: (x > level) as x's dtype. Backward: the incoming gradient, or with
/// `sparse_bp` the incoming gradient zeroed where x < level.
torch::Tensor gate_step(const torch::Tensor& x, double level, bool sparse_bp);

}  // namespace dnn_gating::quant
