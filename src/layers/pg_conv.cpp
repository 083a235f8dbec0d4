#include "dnn_gating/layers/pg_conv.h"

#include <ATen/ATen.h>

#include "dnn_gating/layers/batch_norm.h"
#include "dnn_gating/layers/quantized_conv.h"
#include "dnn_gating/quant/gate.h"
#include "dnn_gating/quant/quantize.h"
#include "dnn_gating/setting_error.h"
#include "kernels/fusable.h"
#include "kernels/gates.h"
#include "kernels/sparse_conv.h"
#include "layers/integer_conv.h"
#include "layers/sparse_choice.h"

namespace dnn_gating::layers {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The prediction and update convolutions as one batch of 2N: the input's
// MSB part [N] then its LSB part [N], both from one quantization pass.
// Returns the [2N, C_out, H', W'] output.
torch::Tensor stacked_forward(const torch::Tensor& x, const torch::Tensor& weight,
                              at::IntArrayRef stride, at::IntArrayRef padding, int64_t abits,
                              int64_t pred_bits) {
  return torch::conv2d(quant::split_msb_lsb(x, abits, pred_bits).flatten(0, 1), weight, {}, stride,
                       padding);
}

void save_convolution(AutogradContext* ctx, at::IntArrayRef stride, at::IntArrayRef padding,
                      int64_t abits, int64_t pred_bits) {
  ctx->saved_data["stride"] = stride.vec();
  ctx->saved_data["padding"] = padding.vec();
  ctx->saved_data["abits"] = abits;
  ctx->saved_data["pred_bits"] = pred_bits;
}

// Gradients of the stacked convolution from dL/d(output) [2N]: the input
// gradient flows through the prediction path alone (the update path's is
// exactly zero under the straight-through estimators), then through the
// STE of T (g where x != 0); both weight gradients come from one call. The
// stacked input is recomputed from x (one pass) rather than kept from the
// forward pass: it is twice the size of x.
std::pair<torch::Tensor, torch::Tensor> stacked_backward(AutogradContext* ctx,
                                                         const torch::Tensor& grad_output,
                                                         const torch::Tensor& x,
                                                         const torch::Tensor& weight) {
  const auto stride = ctx->saved_data["stride"].toIntVector();
  const auto padding = ctx->saved_data["padding"].toIntVector();
  const torch::Tensor input = quant::split_msb_lsb(x, ctx->saved_data["abits"].toInt(),
                                                   ctx->saved_data["pred_bits"].toInt())
                                  .flatten(0, 1);
  const int64_t n = x.size(0);
  const std::vector<int64_t> dilation{1, 1};
  const std::vector<int64_t> output_padding{0, 0};
  torch::Tensor grad_x;
  if (ctx->needs_input_grad(0)) {
    grad_x = std::get<0>(at::convolution_backward(
        grad_output.narrow(0, 0, n), input.narrow(0, 0, n), weight, c10::nullopt, stride, padding,
        dilation, /*transposed=*/false, output_padding, /*groups=*/1, {true, false, false}));
    grad_x = quant::ste_gradient(grad_x, x);
  }
  torch::Tensor grad_w;
  if (ctx->needs_input_grad(1)) {
    grad_w = std::get<1>(at::convolution_backward(
        grad_output, input, weight, c10::nullopt, stride, padding, dilation,
        /*transposed=*/false, output_padding, /*groups=*/1, {false, true, false}));
  }
  return {grad_x, grad_w};
}

struct PGConvolutionFunction : torch::autograd::Function<PGConvolutionFunction> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, std::vector<int64_t> stride,
                               std::vector<int64_t> padding, int64_t abits, int64_t pred_bits) {
    const torch::Tensor out = stacked_forward(x, weight, stride, padding, abits, pred_bits);
    ctx->save_for_backward({x, weight});
    save_convolution(ctx, stride, padding, abits, pred_bits);
    const int64_t n = x.size(0);
    return {out.narrow(0, 0, n), out.narrow(0, n, n)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_x, grad_w] =
        stacked_backward(ctx, torch::cat({grads[0], grads[1]}), saved[0], saved[1]);
    return {grad_x, grad_w, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// The whole PG layer after weight quantization, on the fused gate kernels:
// returns {y, number of open gates}. Its backward writes the gate's
// gradients for both halves straight into one [2N] buffer for the stacked
// convolution's backward.
struct PGConvGateFunction : torch::autograd::Function<PGConvGateFunction> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& threshold,
                               std::vector<int64_t> stride, std::vector<int64_t> padding,
                               int64_t abits, int64_t pred_bits, double alpha, bool sparse_bp) {
    const torch::Tensor out = stacked_forward(x, weight, stride, padding, abits, pred_bits);
    const int64_t n = x.size(0);
    const torch::Tensor msb = out.narrow(0, 0, n);
    const torch::Tensor lsb = out.narrow(0, n, n);
    // The gate's backward pass keeps its factors, not s and the LSB half:
    // the [2N] output goes when this returns.
    auto selected = kernels::gates::pg_select_training(msb, lsb, threshold, alpha, sparse_bp);
    ctx->save_for_backward({x, weight, selected.gate.factor, selected.gate.open});
    save_convolution(ctx, stride, padding, abits, pred_bits);
    return kernels::gates::gate_outputs(ctx, selected.y, selected.open, alpha, sparse_bp);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const kernels::gates::PgGateFactors gate{saved[2], saved[3]};
    const int64_t n = x.size(0);
    std::vector<int64_t> shape = grads[0].sizes().vec();
    shape[0] = 2 * n;
    torch::Tensor grad_output =
        torch::empty(shape, grads[0].options().memory_format(kernels::layout_of(gate.factor)));
    const torch::Tensor grad_threshold = kernels::gates::pg_select_backward(
        grads[0], gate, grad_output.narrow(0, 0, n), grad_output.narrow(0, n, n));
    auto [grad_x, grad_w] = stacked_backward(ctx, grad_output, x, saved[1]);
    return {grad_x,          grad_w,          grad_threshold.view({1, -1, 1, 1}),
            torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
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
  check_setting(
      options.in_channels() > 0 && options.out_channels() > 0, "in_channels",
      "PGConv2d channels must be positive, got in=" + std::to_string(options.in_channels()) +
          " out=" + std::to_string(options.out_channels()));
  quant::check_bit_width("wbits", options.wbits());
  quant::check_bit_width("abits", options.abits());
  check_setting(options.pred_bits() > 0 && options.pred_bits() < options.abits(), "pred_bits",
                "precision gating needs 0 < {pred_bits} < {abits}, got {pred_bits}=" +
                    std::to_string(options.pred_bits()) +
                    " {abits}=" + std::to_string(options.abits()));
  check_setting(options.alpha() > 0, "alpha",
                "PGConv2d {alpha} must be positive, got " + c10::str(options.alpha()));
  const auto k = *options.kernel_size();
  weight = register_parameter(
      "weight", torch::empty({options.out_channels(), options.in_channels(), k[0], k[1]}));
  torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanIn, torch::kReLU);
  threshold_ = register_parameter("threshold", torch::zeros({1, options.out_channels(), 1, 1}));
  integer_weights_ = std::make_shared<integer_conv::IntegerWeights>();
  input_maximum_ = std::make_shared<integer_conv::InputMaximum>();
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

GateKind PGConv2dImpl::gate_kind() const { return GateKind::kPrecision; }

bool PGConv2dImpl::infers(const torch::Tensor& x) const {
  return !options.reference_ops() && kernels::fusable(x) && !torch::GradMode::is_enabled();
}

torch::Tensor PGConv2dImpl::forward_then(const torch::Tensor& x, torch::nn::BatchNorm2d& next,
                                         bool relu) {
  if (infers(x)) {
    if (const auto then = kernels::as_affine(*next, relu)) return infer(x, &*then);
  }
  const torch::Tensor normalised = batch_norm(*next, forward(x));
  return relu ? torch::relu(normalised) : normalised;
}

torch::Tensor PGConv2dImpl::forward_then_clipped(const torch::Tensor& x,
                                                 torch::nn::BatchNorm2d& next, double upper) {
  if (infers(x)) {
    if (auto then = kernels::as_affine(*next, /*relu=*/true)) {
      then->upper = static_cast<float>(upper);
      return infer(x, &*then);
    }
  }
  return FusesNext::forward_then_clipped(x, next, upper);
}

torch::Tensor PGConv2dImpl::forward(const torch::Tensor& x) {
  in_integers_ = false;
  const bool fused = !options.reference_ops() && kernels::fusable(x);
  if (infers(x)) return infer(x);
  const torch::Tensor wq = quantize_weight(weight, options.wbits());
  if (fused) {
    const auto outs =
        PGConvGateFunction::apply(x, wq, threshold_, torch::IntArrayRef(*options.stride()).vec(),
                                  torch::IntArrayRef(*options.padding()).vec(), options.abits(),
                                  options.pred_bits(), options.alpha(), options.sparse_bp());
    record_gate(outs[1].item<int64_t>(), outs[0].sizes(), weight);
    record_way(InferenceWay::kEveryOutput);
    if (keeps_decisions()) {  // the function keeps its MSB output: made again as it made it
      torch::NoGradGuard no_grad;
      record_decisions_of(stacked_forward(x.detach(), wq.detach(), *options.stride(),
                                          *options.padding(), options.abits(), options.pred_bits())
                              .narrow(0, 0, x.size(0)),
                          options.alpha());
    }
    return outs[0];
  }
  const auto outs = pg_convolution(x, wq, *options.stride(), *options.padding(), options.abits(),
                                   options.pred_bits());
  const torch::Tensor& out_msb = outs[0];
  const torch::Tensor& out_lsb = outs[1];
  const torch::Tensor mask = quant::gate_step(
      torch::sigmoid(options.alpha() * (out_msb - threshold_)), 0.5, options.sparse_bp());
  record_gate(mask, weight);
  record_decisions(mask);
  record_way(InferenceWay::kEveryOutput);
  return out_msb + mask * out_lsb;
}

// Without a backward pass: in integers (the MSB and LSB convolutions on
// codes, the gate on the first, the second added where it opens), or in
// float, whichever options.integer chooses.
torch::Tensor PGConv2dImpl::infer(const torch::Tensor& x, const kernels::Affine* then) {
  const torch::IntArrayRef stride = *options.stride();
  const torch::IntArrayRef padding = *options.padding();
  bool skipped = false;
  const integer_conv::Way float_way = [&] { return infer_in_float(x, skipped); };
  integer_conv::Chosen chosen;
  // Told to skip, the layer skips: the integer way computes every output.
  const bool skip_forced = options.skipping() == Skipping::kAlways;
  if (!skip_forced && integer_applies(options.integer(), options.wbits(), options.abits()) &&
      integer_conv::takes(x, weight, padding)) {
    const auto prepared = integer_weights_->get(weight, options.wbits(), stride, padding);
    const int64_t high_bits = options.pred_bits();
    const int64_t largest_code =
        std::max((int64_t{1} << high_bits) - 1, (int64_t{1} << (options.abits() - high_bits)) - 1);
    if (prepared.conv && largest_code <= prepared.conv->max_exact_input_code()) {
      const integer_conv::Way integer_way = [&]() -> std::pair<torch::Tensor, int64_t> {
        const auto codes = integer_conv::input_codes(
            x, options.abits(), high_bits, prepared.conv->doubles_input(), input_maximum_.get());
        if (!codes.non_negative) return {};
        const torch::Tensor msb =
            integer_conv::convolve(*prepared.conv, codes.hi, codes.hi_scale * prepared.scale, 0);
        const torch::Tensor lsb =
            integer_conv::convolve(*prepared.conv, codes.lo, codes.lo_scale * prepared.scale, 1);
        record_decisions_of(msb, options.alpha());
        return then != nullptr
                   ? kernels::gates::pg_select_inference(msb, lsb, threshold_, options.alpha(),
                                                         *then)
                   : kernels::gates::pg_select_inference(msb, lsb, threshold_, options.alpha());
      };
      std::vector<int64_t> key = sparse_choice::shape_key(x, weight, stride, padding);
      key.insert(key.end(), {1, options.wbits(), options.abits(), high_bits});
      chosen = integer_conv::run(options.integer(), key, integer_way, float_way);
    }
  }
  if (!chosen.y.defined()) std::tie(chosen.y, chosen.open) = float_way();
  // (The integer way applied `then` as it wrote the outputs.)
  if (then != nullptr && !chosen.integers) kernels::apply_in_place(*then, chosen.y);
  in_integers_ = chosen.integers;
  record_gate(chosen.open, chosen.y.sizes(), weight);
  record_way(!chosen.integers && skipped ? InferenceWay::kOpenOutputs : InferenceWay::kEveryOutput);
  return chosen.y;
}

// The MSB convolution and the gate on it, then either the LSB convolution
// selected by the gate, or the LSB contribution added only where the gate is
// open.
std::pair<torch::Tensor, int64_t> PGConv2dImpl::infer_in_float(const torch::Tensor& x,
                                                               bool& skipped) {
  const torch::IntArrayRef stride = *options.stride();
  const torch::IntArrayRef padding = *options.padding();
  const torch::Tensor wq = quantize_weight(weight, options.wbits());
  const torch::Tensor parts =
      quant::split_msb_lsb(x.contiguous(), options.abits(), options.pred_bits());
  const torch::Tensor msb = parts[0];
  const torch::Tensor lsb = parts[1];
  const torch::Tensor msb_out = torch::conv2d(msb, wq, {}, stride, padding).contiguous();
  const sparse_choice::GatedPass pass{
      msb_out,
      [&] {
        return kernels::gates::pg_select_inference(
            msb_out, torch::conv2d(lsb, wq, {}, stride, padding), threshold_, options.alpha());
      },
      [&] { return kernels::gates::open_outputs(msb_out, threshold_, options.alpha()); },
      [&](const kernels::sparse_conv::OpenOutputs& open, const torch::Tensor& y) {
        kernels::sparse_conv::add_at_open(lsb, wq, stride, padding, open, y);
      }};
  // (Before the pass, which may complete the MSB output in place.)
  record_decisions_of(msb_out, options.alpha());
  const sparse_choice::Chosen chosen =
      sparse_choice::run(options.skipping(), sparse_choice::shape_key(x, weight, stride, padding),
                         previous_on_fraction(msb_out.sizes()), pass);
  skipped = chosen.skipped;
  return {chosen.y, chosen.open};
}

}  // namespace dnn_gating::layers
