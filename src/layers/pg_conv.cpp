#include "dnn_gating/layers/pg_conv.h"

#include "dnn_gating/layers/quantized_conv.h"
#include "dnn_gating/quant/gate.h"
#include "dnn_gating/quant/quantize.h"

#include <ATen/ATen.h>

namespace dnn_gating::layers {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct PGConvolutionFunction : torch::autograd::Function<PGConvolutionFunction> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, std::vector<int64_t> stride,
                               std::vector<int64_t> padding, int64_t abits, int64_t pred_bits) {
    // [2, N, C, H, W]: MSB part then LSB part, convolved as one batch of 2N.
    const torch::Tensor parts = quant::split_msb_lsb(x, abits, pred_bits);
    const int64_t n = x.size(0);
    const torch::Tensor stacked = parts.flatten(0, 1);
    const torch::Tensor out = torch::conv2d(stacked, weight, {}, stride, padding);
    ctx->save_for_backward({x, stacked, weight});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return {out.narrow(0, 0, n), out.narrow(0, n, n)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& stacked = saved[1];
    const torch::Tensor& weight = saved[2];
    const auto stride = ctx->saved_data["stride"].toIntVector();
    const auto padding = ctx->saved_data["padding"].toIntVector();
    const int64_t n = x.size(0);
    const std::vector<int64_t> dilation{1, 1};
    const std::vector<int64_t> output_padding{0, 0};

    // Input gradient: prediction path only, then the STE of T (g where x != 0).
    torch::Tensor grad_x;
    if (ctx->needs_input_grad(0)) {
      grad_x = std::get<0>(at::convolution_backward(
          grads[0].contiguous(), stacked.narrow(0, 0, n), weight, c10::nullopt, stride, padding,
          dilation, /*transposed=*/false, output_padding, /*groups=*/1, {true, false, false}));
      grad_x.masked_fill_(x == 0, 0);
    }
    torch::Tensor grad_w;
    if (ctx->needs_input_grad(1)) {
      grad_w = std::get<1>(at::convolution_backward(
          torch::cat({grads[0], grads[1]}), stacked, weight, c10::nullopt, stride, padding,
          dilation, /*transposed=*/false, output_padding, /*groups=*/1, {false, true, false}));
    }
    return {grad_x, grad_w, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

std::vector<torch::Tensor> pg_convolution(const torch::Tensor& x, const torch::Tensor& weight,
                                          torch::IntArrayRef stride, torch::IntArrayRef padding,
                                          int64_t abits, int64_t pred_bits) {
  return PGConvolutionFunction::apply(x, weight, stride.vec(), padding.vec(), abits, pred_bits);
}

PGConv2dImpl::PGConv2dImpl(PGConv2dOptions options_) : options(std::move(options_)) { reset(); }

void PGConv2dImpl::reset() {
  TORCH_CHECK(options.in_channels() > 0 && options.out_channels() > 0,
              "PGConv2d channels must be positive, got in=", options.in_channels(),
              " out=", options.out_channels());
  check_bit_width("wbits", options.wbits());
  check_bit_width("abits", options.abits());
  TORCH_CHECK(options.pred_bits() > 0 && options.pred_bits() < options.abits(),
              "precision gating needs 0 < pred_bits < abits, got pred_bits=", options.pred_bits(),
              " abits=", options.abits());
  TORCH_CHECK(options.alpha() > 0, "PGConv2d alpha must be positive, got ", options.alpha());
  const auto k = *options.kernel_size();
  weight = register_parameter(
      "weight", torch::empty({options.out_channels(), options.in_channels(), k[0], k[1]}));
  torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanIn, torch::kReLU);
  threshold = register_parameter("threshold", torch::zeros({1, options.out_channels(), 1, 1}));
}

void PGConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "dnn_gating::PGConv2d(" << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride()
         << ", padding=" << options.padding() << ", wbits=" << options.wbits()
         << ", abits=" << options.abits() << ", pred_bits=" << options.pred_bits()
         << ", sparse_bp=" << options.sparse_bp() << ")";
}

GateCost PGConv2dImpl::gate_cost() const {
  return {static_cast<double>(options.pred_bits()) / static_cast<double>(options.abits()),
          options.abits()};
}

torch::Tensor PGConv2dImpl::forward(const torch::Tensor& x) {
  const torch::Tensor wq = quantize_weight(weight, options.wbits());
  const auto outs = pg_convolution(x, wq, *options.stride(), *options.padding(), options.abits(),
                                   options.pred_bits());
  const torch::Tensor& out_msb = outs[0];
  const torch::Tensor& out_lsb = outs[1];
  const torch::Tensor mask = quant::gate_step(
      torch::sigmoid(options.alpha() * (out_msb - threshold)), 0.5, options.sparse_bp());
  const auto k = *options.kernel_size();
  record_gate(mask, options.in_channels(), k[0] * k[1]);
  return out_msb + mask * out_lsb;
}

}  // namespace dnn_gating::layers
