#pragma once
// A convolution's backward pass computed only where its output gradient is
// not zero. In a CG layer the full sum's gradient is g * d, zero at every
// closed gate, so the input and weight gradients of the products outside
// the base path are needed only along the (image, output row, output
// channel) rows that hold an open gate: trained gates cohere along rows
// within a channel (docs/INFERENCE.md, "Skipping closed tiles").
#include <torch/torch.h>

#include <cstdint>

namespace dnn_gating::kernels::open_backward {

/// Whether add_backward() takes the convolution: float channels-last x and
/// grad on the CPU, float weight [O, C, kh, kw] with C a multiple of 16,
/// stride 1, padding below the kernel size, no groups.
bool supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& grad,
               torch::IntArrayRef stride, torch::IntArrayRef padding);

/// How much of the work add_backward() did.
struct Share {
  int64_t rows_computed = 0;  // (image, output row, output channel) rows with a nonzero gradient
  int64_t rows = 0;           // of all such rows
};

/// The backward pass of y = conv2d(x, weight, stride, padding) for the
/// output gradient `grad` ([N, O, H', W'], channels-last), over the rows
/// where grad is not zero only:
/// - where grad_input is defined (float [N, C, H, W], channels-last), adds
///   the input gradient to it in place;
/// - where grad_weight is defined (float [O, C, kh, kw], contiguous), adds
///   the weight gradient to it in place.
/// Skipped rows contribute exactly zero: the result is the whole backward
/// pass's, summed in another order.
Share add_backward(const torch::Tensor& grad, const torch::Tensor& x, const torch::Tensor& weight,
                   torch::IntArrayRef stride, torch::IntArrayRef padding,
                   const torch::Tensor& grad_input, const torch::Tensor& grad_weight);

/// The share of (image, output row, output channel) rows of `grad`
/// (channels-last [N, O, H', W']) holding a nonzero value: one read.
double open_row_share(const torch::Tensor& grad);

}  // namespace dnn_gating::kernels::open_backward
