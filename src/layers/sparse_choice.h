#pragma once
// Whether computing only a gated layer's open outputs beats computing them
// all, decided by timing both on the layer's own passes.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "dnn_gating/layers/gated_layer.h"
#include "kernels/sparse_conv.h"

namespace dnn_gating::layers::sparse_choice {

/// One gated forward pass without gradients, both ways. `base` is the part
/// computed everywhere (CG: the base path's partial sums; PG: the MSB
/// convolution), contiguous or channels-last. `dense` computes every output
/// and selects, returning {y, open gates}; `decide` finds the open outputs
/// from the gate; `add_open(open, y)` adds the gated part to y at the open
/// outputs only.
struct GatedPass {
  torch::Tensor base;
  std::function<std::pair<torch::Tensor, int64_t>()> dense;
  std::function<kernels::sparse_conv::OpenOutputs()> decide;
  std::function<void(const kernels::sparse_conv::OpenOutputs&, const torch::Tensor&)> add_open;
};

/// The key of a convolution's shape: input and weight sizes, stride,
/// padding and the number of threads.
std::vector<int64_t> shape_key(const torch::Tensor& x, const torch::Tensor& weight,
                               torch::IntArrayRef stride, torch::IntArrayRef padding);

/// What a pass computed: the output, its number of open gates, and whether
/// only the open outputs were completed.
struct Chosen {
  torch::Tensor y;
  int64_t open = 0;
  bool skipped = false;
};

/// Runs `pass` the way `mode` says; when it skips, y is `pass.base`
/// completed in place. For kFastest, per `shape` (a
/// key naming the layer's geometry and batch) the dense way is timed once,
/// the sparse way with no output open once, the decision pass once, and the
/// sparse way at a pass's own open outputs whenever no timing lies within a
/// factor 1.5 of its on-fraction (all open when almost none are); between
/// timings the sparse way's cost is taken as linear in the number of open
/// outputs. `previous` is the on-fraction of the layer's previous pass at
/// this shape (negative when there is none): on-fractions change little from
/// one batch to the next, so when the timings near it favour the dense way,
/// the pass runs it without a separate decision pass.
Chosen run(Skipping mode, const std::vector<int64_t>& shape, double previous,
           const GatedPass& pass);

}  // namespace dnn_gating::layers::sparse_choice
