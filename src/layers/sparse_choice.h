#pragma once
// Whether computing only a gated layer's open outputs beats computing them
// all, decided by timing both on the layer's own passes.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "dnn_gating/layers/gated_layer.h"
#include "layers/sparse_conv.h"

namespace dnn_gating::layers::sparse_choice {

/// The work of one forward pass, both ways: `dense` computes every output
/// (deciding the gates as it selects), `sparse` only those open in its
/// argument, after `decide` has found them. Each may be called several
/// times; their results are thrown away.
struct Paths {
  std::function<void()> dense;
  std::function<void(const sparse_conv::OpenOutputs&)> sparse;
  std::function<void()> decide;
};

/// The key of a convolution's shape: input and weight sizes, stride,
/// padding and the number of threads.
std::vector<int64_t> shape_key(const torch::Tensor& x, const torch::Tensor& weight,
                               torch::IntArrayRef stride, torch::IntArrayRef padding);

/// What a pass does before its gates are decided.
enum class Plan {
  kDense,       ///< every output, then the gate selects
  kSparse,      ///< only the open outputs
  kAfterGates,  ///< decide the gates first, then ask `skip_closed`
};

/// The plan of a pass under `mode`. For kFastest, `previous` is the
/// on-fraction of the layer's previous pass at this shape (negative when
/// there is none): on-fractions change little from one batch to the next,
/// so when both ways have been timed near that on-fraction the plan follows
/// from the timings, and the dense way needs no separate decision pass.
Plan plan(Skipping mode, const std::vector<int64_t>& shape, double previous);

/// Whether to skip the closed outputs under `mode`, the gates decided. For
/// kFastest, per `shape` (a key naming the layer's geometry and batch) the
/// dense way is timed once, the sparse way with no output open once, and
/// the sparse way at this pass's own open outputs whenever no timing lies
/// within a factor 1.5 of its on-fraction (all open when almost none are);
/// between timings the sparse way's cost is taken as linear in the number of
/// open outputs. So a shape is timed a few times at most, each time on real
/// data, and later passes compare estimates.
bool skip_closed(Skipping mode, const std::vector<int64_t>& shape,
                 const sparse_conv::OpenOutputs& open, torch::IntArrayRef out_shape,
                 const Paths& paths);

}  // namespace dnn_gating::layers::sparse_choice
