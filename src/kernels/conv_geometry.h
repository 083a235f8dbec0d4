#pragma once
// Where a convolution over a channels-last input reads and writes, in
// elements: what every convolution kernel here is told before it runs.
#include <cstdint>

namespace dnn_gating::kernels {

/// A convolution over an [N, H, W, C] input. Each kernel adds what it alone
/// needs (its groups, its output layout) in a struct derived from this one.
struct ConvGeometry {
  int64_t batch = 0, channels = 0, out_channels = 0;
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 0, stride_w = 0;
  /// Zero padding the kernel adds itself (0 for an input padded beforehand).
  int64_t pad_h = 0, pad_w = 0;
  /// Rows and columns of the input as the kernel reads it (padded or not).
  int64_t in_h = 0, in_w = 0;
  int64_t out_h = 0, out_w = 0;
};

}  // namespace dnn_gating::kernels
