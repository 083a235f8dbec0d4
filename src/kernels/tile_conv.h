#pragma once
// A CG convolution evaluated tile by tile, its work following the gates:
// for every tile (16 consecutive positions of one output row at AVX-512, 8
// at AVX2 and below), each
// output's partial sum over the input group it takes, its gate's decision,
// and the rest of its sum only where a position of the tile opens the gate.
// Vectorised over the tile's positions, so that an output channel whose
// gates stay closed along a row costs its partial sums alone: trained gates
// are coherent along positions within a channel, hardly across channels
// (docs/INFERENCE.md, "Skipping closed tiles").
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "kernels/affine.h"
#include "kernels/partial_conv.h"

namespace dnn_gating::kernels::tile_conv {

/// Whether gated() takes the convolution: float weights [O, C, 3, 3] on the
/// CPU, equal strides of 1 or 2, padding of at most 2.
bool supported(const torch::Tensor& weight, torch::IntArrayRef stride, torch::IntArrayRef padding);

/// The tile kernel's throughput per product as a share of the one-pass
/// kernel's (partial_conv::gated) at the level the kernels run at, measured
/// on the layers of the CG ResNet-20 with every gate open: about 0.55 at
/// AVX-512, whose one pass runs near oneDNN's speed, and 0.8 at AVX2
/// (docs/PERFORMANCE.md, "Skipping closed tiles").
double relative_throughput();

/// What gated() returns.
struct Result {
  torch::Tensor y;             // channels-last [N, O, H', W']
  int64_t open = 0;            // open gates
  int64_t tiles_computed = 0;  // (tile, output channel) pairs whose rest was computed
  int64_t tiles = 0;           // of all (tile, output channel) pairs
};

/// y = the full sum conv2d(x, weight) where the gate opens, the partial sum
/// over the input group the output takes (blocks[o][g], as
/// partial_conv::group_blocks gives) elsewhere, mapped by `then` where set;
/// the gate as partial_conv::gated decides it, from the same partial sums.
/// x: a channels-last float [N, C, H, W]. Where `decisions` is defined (a
/// channels-last uint8 tensor of y's shape) every decision is stored there.
Result gated(const torch::Tensor& x, const torch::Tensor& weight,
             const std::vector<std::vector<bool>>& blocks, torch::IntArrayRef stride,
             torch::IntArrayRef padding, const partial_conv::GateParameters& gate,
             const Affine* then = nullptr, const torch::Tensor& decisions = {});

}  // namespace dnn_gating::kernels::tile_conv
