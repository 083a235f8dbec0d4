#pragma once
// Where a convolution over a channels-last input reads and writes, in
// elements: what every convolution kernel here is told before it runs.
#include <torch/torch.h>

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

/// Sets g for a 3x3 convolution of weight [O, C, 3, 3] over the
/// channels-last x [N, C, H, W] with these strides and zero padding the
/// kernel adds itself; throws, naming `kernel`, where the input is smaller
/// than the kernel.
inline void set_3x3(ConvGeometry& g, const torch::Tensor& x, const torch::Tensor& weight,
                    torch::IntArrayRef stride, torch::IntArrayRef padding, const char* kernel) {
  g.batch = x.size(0);
  g.channels = x.size(1);
  g.out_channels = weight.size(0);
  g.kernel_h = g.kernel_w = 3;
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.out_h = (g.in_h + 2 * g.pad_h - 3) / g.stride_h + 1;
  g.out_w = (g.in_w + 2 * g.pad_w - 3) / g.stride_w + 1;
  TORCH_CHECK(g.out_h > 0 && g.out_w > 0, kernel, ": input ", x.sizes(),
              " is smaller than the kernel");
}

}  // namespace dnn_gating::kernels
