#include "dnn_gating/layers/quantized_conv.h"

#include <cmath>

#include "dnn_gating/layers/batch_norm.h"
#include "dnn_gating/quant/quantize.h"
#include "dnn_gating/setting_error.h"
#include "kernels/affine.h"
#include "kernels/fusable.h"
#include "layers/integer_conv.h"
#include "layers/sparse_choice.h"

namespace dnn_gating::layers {

torch::Tensor quantize_weight(const torch::Tensor& weight, int64_t wbits) {
  torch::Tensor wq = quant::quantize(weight, wbits);
  if (wbits != 1) return wq;
  const int64_t fan_in = weight.numel() / weight.size(0);
  return wq * std::sqrt(1.0 / static_cast<double>(fan_in));
}

QuantizedConv2dImpl::QuantizedConv2dImpl(QuantizedConv2dOptions options_)
    : options(std::move(options_)) {
  reset();
}

void QuantizedConv2dImpl::reset() {
  check_setting(options.in_channels() > 0 && options.out_channels() > 0, "in_channels",
                c10::str("QuantizedConv2d channels must be positive, got in=",
                         options.in_channels(), " out=", options.out_channels()));
  quant::check_bit_width("wbits", options.wbits());
  quant::check_bit_width("abits", options.abits());
  const auto k = *options.kernel_size();
  weight = register_parameter(
      "weight", torch::empty({options.out_channels(), options.in_channels(), k[0], k[1]}));
  torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanIn, torch::kReLU);
  integer_weights_ = std::make_shared<integer_conv::IntegerWeights>();
  input_maximum_ = std::make_shared<integer_conv::InputMaximum>();
}

void QuantizedConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "dnn_gating::QuantizedConv2d(" << options.in_channels() << ", "
         << options.out_channels() << ", kernel_size=" << options.kernel_size()
         << ", stride=" << options.stride() << ", padding=" << options.padding()
         << ", wbits=" << options.wbits() << ", abits=" << options.abits() << ")";
}

torch::Tensor QuantizedConv2dImpl::forward(const torch::Tensor& x) {
  in_integers_ = false;
  const torch::Tensor y = may_compute_in_integers(x) ? either_way(x, nullptr) : in_float(x);
  record_macs(layers::dense_macs_per_image(weight, y.sizes()));
  return y;
}

torch::Tensor QuantizedConv2dImpl::forward_then(const torch::Tensor& x,
                                                torch::nn::BatchNorm2d& next, bool relu) {
  if (folds(x)) {
    if (const auto then = kernels::as_affine(*next, relu)) return folded(x, *then);
  }
  if (may_compute_in_integers(x)) {
    if (const auto then = kernels::as_affine(*next, relu)) {
      in_integers_ = false;
      const torch::Tensor y = either_way(x, &*then);
      record_macs(layers::dense_macs_per_image(weight, y.sizes()));
      return y;
    }
  }
  const torch::Tensor y = batch_norm(*next, forward(x));
  return relu ? torch::relu(y) : y;
}

torch::Tensor QuantizedConv2dImpl::forward_then_clipped(const torch::Tensor& x,
                                                        torch::nn::BatchNorm2d& next,
                                                        double upper) {
  if (folds(x)) {
    if (auto then = kernels::as_affine(*next, /*relu=*/true)) {
      then->upper = static_cast<float>(upper);
      return folded(x, *then);
    }
  }
  if (may_compute_in_integers(x)) {
    if (auto then = kernels::as_affine(*next, /*relu=*/true)) {
      then->upper = static_cast<float>(upper);
      in_integers_ = false;
      const torch::Tensor y = either_way(x, &*then);
      record_macs(layers::dense_macs_per_image(weight, y.sizes()));
      return y;
    }
  }
  return FusesNext::forward_then_clipped(x, next, upper);
}

torch::Tensor QuantizedConv2dImpl::forward_then_added(const torch::Tensor& x,
                                                      torch::nn::BatchNorm2d& next,
                                                      torch::Tensor residual, double upper) {
  // (A float convolution folds through forward_then: FusesNext's way.)
  if (may_compute_in_integers(x)) {
    if (auto then = kernels::as_affine(*next, /*relu=*/true)) {
      if (std::isfinite(upper)) then->upper = static_cast<float>(upper);
      in_integers_ = false;
      const torch::Tensor y = either_way(x, &*then, std::move(residual));
      record_macs(layers::dense_macs_per_image(weight, y.sizes()));
      return y;
    }
  }
  return FusesNext::forward_then_added(x, next, std::move(residual), upper);
}

bool QuantizedConv2dImpl::folds(const torch::Tensor& x) const {
  return options.wbits() == 0 && options.abits() == 0 && options.integer() != Integer::kNever &&
         !torch::GradMode::is_enabled() && kernels::fusable(x);
}

// The BatchNorm folded into the convolution: weight * scale per output
// channel, shift as the bias, then the ReLU (and clip) in place.
torch::Tensor QuantizedConv2dImpl::folded(const torch::Tensor& x, const kernels::Affine& then) {
  in_integers_ = false;
  torch::Tensor y = kernels::folded_conv2d(x, weight, then, *options.stride(), *options.padding());
  record_macs(layers::dense_macs_per_image(weight, y.sizes()));
  return y;
}

bool QuantizedConv2dImpl::may_compute_in_integers(const torch::Tensor& x) const {
  return !torch::GradMode::is_enabled() &&
         integer_applies(options.integer(), options.wbits(), options.abits()) &&
         integer_conv::takes(x, weight, *options.padding());
}

torch::Tensor QuantizedConv2dImpl::forward_quantized(const torch::Tensor& quantized) {
  in_integers_ = false;
  const torch::Tensor y = convolve(quantized);
  record_macs(layers::dense_macs_per_image(weight, y.sizes()));
  return y;
}

torch::Tensor QuantizedConv2dImpl::in_float(const torch::Tensor& x) {
  return convolve(quant::quantize(x, options.abits()));
}

torch::Tensor QuantizedConv2dImpl::convolve(const torch::Tensor& quantized) {
  return torch::conv2d(quantized, quantize_weight(weight, options.wbits()), /*bias=*/{},
                       *options.stride(), *options.padding());
}

torch::Tensor QuantizedConv2dImpl::either_way(const torch::Tensor& x, const kernels::Affine* then,
                                              torch::Tensor residual) {
  // The integer way writes into the residual where this is the only handle
  // on it (see integer_conv::convolve). kFastest may run each way more than
  // once, and each run must find the residual as it was: held twice here,
  // it is never overwritten.
  const torch::Tensor held = options.integer() == Integer::kFastest ? residual : torch::Tensor();
  const auto mapped = [then, &residual](torch::Tensor y) {
    if (then == nullptr) return y;
    if (!residual.defined()) {
      kernels::apply_in_place(*then, y);
      return y;
    }
    kernels::Affine normalise = *then;
    normalise.relu = false;
    kernels::apply_in_place(normalise, y);
    return kernels::add_activated(y, residual, then->upper);
  };
  const auto prepared =
      integer_weights_->get(weight, options.wbits(), *options.stride(), *options.padding());
  if (!prepared.conv ||
      (int64_t{1} << options.abits()) - 1 > prepared.conv->max_exact_input_code()) {
    return mapped(in_float(x));
  }
  const integer_conv::Way integer_way = [&]() -> std::pair<torch::Tensor, int64_t> {
    const auto codes = integer_conv::input_codes(
        x, options.abits(), 0, prepared.conv->doubles_input(), input_maximum_.get());
    if (!codes.non_negative) return {};
    const float scale = codes.hi_scale * prepared.scale;
    return {then != nullptr
                ? integer_conv::convolve(*prepared.conv, codes.hi, scale, *then, residual)
                : integer_conv::convolve(*prepared.conv, codes.hi, scale),
            0};
  };
  const integer_conv::Way float_way = [&]() -> std::pair<torch::Tensor, int64_t> {
    return {mapped(in_float(x)), 0};
  };
  std::vector<int64_t> key =
      sparse_choice::shape_key(x, weight, *options.stride(), *options.padding());
  key.insert(key.end(),
             {0, options.wbits(), options.abits(), then == nullptr ? 0 : 1 + int64_t{then->relu},
              int64_t{residual.defined()}});
  const integer_conv::Chosen chosen =
      integer_conv::run(options.integer(), key, integer_way, float_way);
  in_integers_ = chosen.integers;
  return chosen.y;
}

QuantizedLinearImpl::QuantizedLinearImpl(QuantizedLinearOptions options_)
    : options(std::move(options_)) {
  reset();
}

void QuantizedLinearImpl::reset() {
  check_setting(options.in_features() > 0 && options.out_features() > 0, "in_features",
                c10::str("QuantizedLinear features must be positive, got in=",
                         options.in_features(), " out=", options.out_features()));
  quant::check_bit_width("wbits", options.wbits());
  quant::check_bit_width("abits", options.abits());
  weight =
      register_parameter("weight", torch::empty({options.out_features(), options.in_features()}));
  torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanIn, torch::kReLU);
  if (options.bias()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options.in_features()));
    bias =
        register_parameter("bias", torch::empty({options.out_features()}).uniform_(-bound, bound));
  }
}

void QuantizedLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "dnn_gating::QuantizedLinear(" << options.in_features() << ", "
         << options.out_features() << ", bias=" << options.bias() << ", wbits=" << options.wbits()
         << ", abits=" << options.abits() << ")";
}

torch::Tensor QuantizedLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::linear(quant::quantize(x, options.abits()),
                                  quantize_weight(weight, options.wbits()), bias);
  record_macs(layers::dense_macs_per_image(weight, y.sizes()));
  return y;
}

}  // namespace dnn_gating::layers
