#pragma once
// Convolution outputs computed only where a gate is open: what lets gated
// inference skip the work its closed gates do not need.
#include <torch/torch.h>

#include <cstdint>

namespace dnn_gating::kernels::sparse_conv {

/// The open outputs of an [N, C, H, W] gated output, position by position:
/// bit c % 64 of word c / 64 of position (n, h, w) is set where channel c is
/// open.
struct OpenOutputs {
  /// int64 [N, H, W, words_per_position], read as unsigned bits.
  torch::Tensor words;
  /// C of the gated output.
  int64_t channels = 0;
  /// Number of open outputs (set bits).
  int64_t count = 0;

  /// ceil(channels / 64).
  int64_t words_per_position() const { return (channels + 63) / 64; }
  /// N * C * H * W.
  int64_t num_outputs() const;
  /// count / num_outputs (0 for an empty output).
  double on_fraction() const;

  /// The decisions as a uint8 [N, C, H, W] tensor (channels-last): 1 where open.
  torch::Tensor mask() const;

  /// Every output of an [N, C, H, W] `shape` open, or none.
  static OpenOutputs all(torch::IntArrayRef shape);
  static OpenOutputs none(torch::IntArrayRef shape);
};

/// An input laid out for the kernels below: [N, H + 2 ph, W + 2 pw, C] with
/// zero borders, so that the inputs under one kernel row are contiguous.
struct PaddedInput {
  torch::Tensor data;
};

/// x (float [N, C, H, W], contiguous or channels-last; channels-last is a
/// row copy, the other a transposition) padded by `padding`.
PaddedInput pad_channels_last(const torch::Tensor& x, torch::IntArrayRef padding);

/// Adds, at every open output (n, o, h, w) of `y`,
///   sum over c, i, j of weight[o, c, i, j] * x[n, c, h * sh + i - ph, w * sw + j - pw]
/// (zero outside x): the convolution of x restricted to the open outputs.
/// x: float [N, C, H, W]; weight: float [O, C, kh, kw]; y: float [N, O, H', W']
/// of the convolution's output shape, updated in place. x and y may each be
/// contiguous or channels-last; channels-last x saves a transposition.
void add_at_open(const torch::Tensor& x, const torch::Tensor& weight, torch::IntArrayRef stride,
                 torch::IntArrayRef padding, const OpenOutputs& open, const torch::Tensor& y);
/// The same on an input already padded.
void add_at_open(const PaddedInput& x, const torch::Tensor& weight, torch::IntArrayRef stride,
                 const OpenOutputs& open, const torch::Tensor& y);

}  // namespace dnn_gating::kernels::sparse_conv
