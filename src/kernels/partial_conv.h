#pragma once
// A convolution and its partial sums over diagonal blocks of input channels
// in one pass: what a CG layer's gate needs where the library's grouped
// convolution is slow (few channels per group).
#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/affine.h"

namespace dnn_gating::kernels::partial_conv {

/// Which input-channel groups feed each output's partial sum: for a weight
/// mask [O, C, kh, kw] that is constant over each block of one output and
/// one of `groups` equal groups of input channels, entry [o][g] is whether
/// the block is 1. Empty when the mask is not so made or an output takes
/// more than one group (a CG mask gives each output one).
std::vector<std::vector<bool>> group_blocks(const torch::Tensor& mask, int64_t groups);

/// Whether full_and_partial takes this convolution: float weights
/// [O, C, 3, 3] with O a multiple of 16, C = 16, 32 or 64 divisible by
/// `groups`, and a row stride of 1 or 2.
bool supported(const torch::Tensor& weight, int64_t groups, torch::IntArrayRef stride);

/// {conv2d(x, weight), conv2d(x, weight * mask)} computed together, each
/// product summed once: for every output, the sums over each input group are
/// added into the full sum and, where blocks[o][g], into the partial one.
/// x: a channels-last float [N, C, H, W], read in place (zero padding
/// without a padded copy); both results are channels-last [N, O, H', W'].
std::pair<torch::Tensor, torch::Tensor> full_and_partial(
    const torch::Tensor& x, const torch::Tensor& weight,
    const std::vector<std::vector<bool>>& blocks, torch::IntArrayRef stride,
    torch::IntArrayRef padding);

/// A CG gate without a backward pass: batch normalisation of the partial
/// sums with running statistics (no affine parameters), then the threshold.
struct GateParameters {
  torch::Tensor running_mean, running_var;
  double eps = 1e-5;
  torch::Tensor threshold;  // one value per output channel
  double alpha = 2.0;
};

/// The gated output in the same pass, without keeping either sum: the full
/// sum where alpha ((partial - mean) / sqrt(var + eps) - threshold) opens the
/// gate (gate_decision), the partial sum elsewhere; where `then` is set, mapped by it
/// before it is stored. Returns {y (channels-last), open gates}. Where
/// `decisions` is defined (a channels-last uint8 tensor of y's shape), every
/// output's decision is stored there too: 1 open, 0 closed.
std::pair<torch::Tensor, int64_t> gated(const torch::Tensor& x, const torch::Tensor& weight,
                                        const std::vector<std::vector<bool>>& blocks,
                                        torch::IntArrayRef stride, torch::IntArrayRef padding,
                                        const GateParameters& gate, const Affine* then = nullptr,
                                        const torch::Tensor& decisions = {});

}  // namespace dnn_gating::kernels::partial_conv
