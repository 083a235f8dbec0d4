#pragma once
// Whether computing only a gated layer's open outputs beats computing them
// all, decided by timing both once per layer shape.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "dnn_gating/layers/gated_layer.h"
#include "layers/sparse_conv.h"

namespace dnn_gating::layers::sparse_choice {

/// The work of one forward pass, both ways: `dense` computes every output,
/// `sparse` only those open in its argument. Either may be called several
/// times; their results are thrown away.
struct Paths {
  std::function<void()> dense;
  std::function<void(const sparse_conv::OpenOutputs&)> sparse;
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

/// The plan of a pass under `mode`. For kFastest, with the break-even of
/// `shape` measured and `previous` the on-fraction of the layer's previous
/// pass at this shape (negative when there is none), the plan follows from
/// `previous`: on-fractions change little from one batch to the next, and
/// planning before the gates saves the dense path a second decision pass.
Plan plan(Skipping mode, const std::vector<int64_t>& shape, double previous);

/// Whether to skip the closed outputs under `mode`. For kFastest the first
/// pass of each `shape` (a key naming the layer's geometry and batch) times
/// both paths on its own data: the dense one, and the sparse one with no
/// outputs open and with the pass's own open outputs (all open when almost
/// none are). The sparse time is taken as linear in the on-fraction, which
/// gives the on-fraction below which skipping is faster; later passes of
/// that shape compare with it.
bool skip_closed(Skipping mode, const std::vector<int64_t>& shape,
                 const sparse_conv::OpenOutputs& open, torch::IntArrayRef out_shape,
                 const Paths& paths);

/// The measured break-even on-fraction of `shape`, or a negative value when
/// it has not been measured (for the benchmarks and tests).
double break_even(const std::vector<int64_t>& shape);

}  // namespace dnn_gating::layers::sparse_choice
