#include "dnn_gating/layers/cg_conv.h"

#include <array>
#include <optional>
#include <tuple>
#include <vector>

#include "dnn_gating/layers/batch_norm.h"
#include "dnn_gating/quant/gate.h"
#include "dnn_gating/setting_error.h"
#include "kernels/affine.h"
#include "kernels/fusable.h"
#include "kernels/gates.h"
#include "kernels/partial_conv.h"
#include "kernels/sparse_conv.h"
#include "kernels/tile_conv.h"
#include "layers/sparse_choice.h"

namespace dnn_gating::layers {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What a CG gate's backward pass reads: s, the full sums, the partial sums.
// The full sums enter only the gate's sigmoid path, which sparse_bp cuts
// where the gate is closed; where it is open they are the output y, which
// what follows the layer keeps anyway (its BatchNorm), so with sparse_bp y
// is kept in their place: the same gradients, one tensor of the layer's
// output size less.
void save_sums(AutogradContext* ctx, const torch::Tensor& s, const torch::Tensor& full,
               const torch::Tensor& partial, const torch::Tensor& y, bool sparse_bp) {
  ctx->save_for_backward({s, sparse_bp ? y : full, partial});
}

// The CG gate and output selection on the fused kernels: returns {y, number
// of open gates} from the full and partial sums and the gate input bn(partial).
struct CGGateFunction : torch::autograd::Function<CGGateFunction> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& full,
                               const torch::Tensor& partial, const torch::Tensor& gate_input,
                               const torch::Tensor& threshold, double alpha, bool sparse_bp) {
    const torch::Tensor s = kernels::gates::gate_sigmoid(gate_input, threshold, alpha);
    auto [y, open] = kernels::gates::cg_select(s, full, partial);
    save_sums(ctx, s, full, partial, y, sparse_bp);
    return kernels::gates::gate_outputs(ctx, y, open, alpha, sparse_bp);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_full, grad_partial, grad_input, grad_threshold] = kernels::gates::cg_select_backward(
        grads[0], saved[0], saved[1], saved[2], ctx->saved_data["alpha"].toDouble(),
        ctx->saved_data["sparse_bp"].toBool());
    return {grad_full,       grad_partial,   grad_input, grad_threshold.view({1, -1, 1, 1}),
            torch::Tensor(), torch::Tensor()};
  }
};

// The batch's per-channel mean and 1 / sqrt(variance + eps) of the partial
// sums, computed without gradients: the backward pass below differentiates
// through them.
struct BatchStatistics {
  torch::Tensor mean, inv_std;
};

// The CG gate with its batch normalisation (training mode, statistics of
// the batch) folded into the fused kernels: returns {y, number of open
// gates} from the full and partial sums, storing neither bn(partial) nor the
// sigmoid.
struct CGNormalisedGateFunction : torch::autograd::Function<CGNormalisedGateFunction> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& full,
                               const torch::Tensor& partial, const torch::Tensor& threshold,
                               const BatchStatistics& statistics, double alpha, bool sparse_bp) {
    auto [y, open] = kernels::gates::cg_normalised_select(full, partial, statistics.mean,
                                                          statistics.inv_std, threshold, alpha);
    // The backward pass decides the gates and computes the sigmoid again
    // from the partial sums, which it reads anyway: s is never stored.
    ctx->save_for_backward({sparse_bp ? y : full, partial, threshold});
    ctx->saved_data["mean"] = statistics.mean;
    ctx->saved_data["inv_std"] = statistics.inv_std;
    return kernels::gates::gate_outputs(ctx, y, open, alpha, sparse_bp);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_full, grad_partial, grad_threshold] = kernels::gates::cg_normalised_select_backward(
        grads[0], saved[0], saved[1], ctx->saved_data["mean"].toTensor(),
        ctx->saved_data["inv_std"].toTensor(), saved[2], ctx->saved_data["alpha"].toDouble(),
        ctx->saved_data["sparse_bp"].toBool());
    return {grad_full, grad_partial, grad_threshold.view({1, -1, 1, 1}), {}, {}, {}};
  }
};

// Below 8 input channels per group, oneDNN's grouped convolution is slower
// than the dense one (16 channels in 4 groups, batch 128 at 32x32: forward
// and backward 19.9 ms grouped, 8.5 ms dense), so such layers take the
// original's dense masked convolution.
bool dense_base_path(int64_t channels_per_group) {
  constexpr int64_t kMinGroupChannels = 8;
  return channels_per_group < kMinGroupChannels;
}

torch::Tensor grouped_blocks(const torch::Tensor& weight, int64_t groups) {
  const int64_t oc = weight.size(0) / groups, ic = weight.size(1) / groups;
  std::vector<torch::Tensor> blocks;
  blocks.reserve(groups);
  for (int64_t i = 0; i < groups; ++i)
    blocks.push_back(weight.narrow(0, i * oc, oc).narrow(1, i * ic, ic));
  return torch::cat(blocks);
}

// The base path's backward pass for the output gradient `g`: {input
// gradient, weight gradient (zero outside the mask)}; grouped where groups
// are wide enough, else the dense convolution with the masked weight.
std::pair<torch::Tensor, torch::Tensor> base_backward(
    const torch::Tensor& g, const torch::Tensor& x, const torch::Tensor& weight,
    const torch::Tensor& mask, int64_t groups, torch::IntArrayRef stride,
    torch::IntArrayRef padding, std::array<bool, 3> wanted) {
  if (dense_base_path(weight.size(1) / groups)) {
    auto [gx, gw, unused] = at::convolution_backward(g, x, weight * mask, c10::nullopt, stride,
                                                     padding, {1, 1}, false, {0, 0}, 1, wanted);
    if (gw.defined()) gw.mul_(mask);
    return {gx, gw};
  }
  auto [gx, grouped, unused] =
      at::convolution_backward(g, x, grouped_blocks(weight, groups), c10::nullopt, stride, padding,
                               {1, 1}, false, {0, 0}, groups, wanted);
  torch::Tensor gw;
  if (grouped.defined()) {
    gw = torch::zeros_like(weight);
    const int64_t oc = weight.size(0) / groups, ic = weight.size(1) / groups;
    for (int64_t i = 0; i < groups; ++i)
      gw.narrow(0, i * oc, oc).narrow(1, i * ic, ic).copy_(grouped.narrow(0, i * oc, oc));
  }
  return {gx, gw};
}

// The two sums of a CG layer, {conv2d(x, W), conv2d(x, W * mask)}, already
// computed without gradients (partial_conv's one pass computes both, each
// product once), given their backward pass: the full convolution's for the
// full sum's gradient, the base path's for the partial sum's, each input
// and weight gradient added to the first in place. One node for both sums:
// the engine then adds no third pass over the input gradient (a CG step at
// 16 channels, batch 128: 2.2 ms of 26 ms).
struct SumsFunction : torch::autograd::Function<SumsFunction> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& mask,
                               const std::pair<torch::Tensor, torch::Tensor>& sums, int64_t groups,
                               std::vector<int64_t> stride, std::vector<int64_t> padding) {
    ctx->save_for_backward({x, weight});
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return {sums.first, sums.second};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1];
    const torch::Tensor mask = ctx->saved_data["mask"].toTensor();
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const std::vector<int64_t> stride = ctx->saved_data["stride"].toIntVector();
    const std::vector<int64_t> padding = ctx->saved_data["padding"].toIntVector();
    const std::array<bool, 3> wanted{ctx->needs_input_grad(0), ctx->needs_input_grad(1), false};
    torch::Tensor g_full = std::move(grads[0]), g_partial = std::move(grads[1]);
    torch::Tensor gx, gw;
    if (g_full.defined()) {
      std::tie(gx, gw, std::ignore) = at::convolution_backward(
          g_full, x, weight, c10::nullopt, stride, padding, {1, 1}, false, {0, 0}, 1, wanted);
      g_full.reset();  // freed before the base path's pass
    }
    if (g_partial.defined()) {
      auto [bx, bw] = base_backward(g_partial, x, weight, mask, groups, stride, padding, wanted);
      gx = gx.defined() ? gx.add_(bx) : bx;
      gw = gw.defined() ? gw.add_(bw) : bw;
    }
    return {gx, gw, {}, {}, {}, {}, {}};
  }
};

// {conv2d(x, W), conv2d(x, W * mask)} in training, for a block-diagonal mask
// (`blocks`): forward in partial_conv's one pass (16 channels at 32x32:
// 2.2-2.5 ms against 5.5 ms for the two convolutions), backward as the two
// convolutions'.
std::pair<torch::Tensor, torch::Tensor> full_and_partial_trained(
    const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& mask,
    const std::vector<std::vector<bool>>& blocks, torch::IntArrayRef stride,
    torch::IntArrayRef padding) {
  const auto groups = static_cast<int64_t>(blocks.at(0).size());
  auto [full, partial] = [&] {
    torch::NoGradGuard no_grad;
    return kernels::partial_conv::full_and_partial(x.detach(), weight.detach(), blocks, stride,
                                                   padding);
  }();
  const auto outs = SumsFunction::apply(x, weight, mask, std::make_pair(full, partial), groups,
                                        stride.vec(), padding.vec());
  return {outs[0], outs[1]};
}

}  // namespace

torch::Tensor channel_shuffle(const torch::Tensor& x, int64_t groups) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  return x.view({n, groups, c / groups, h, w}).transpose(1, 2).contiguous().view({n, c, h, w});
}

CGConv2dImpl::CGConv2dImpl(CGConv2dOptions options_) : options(std::move(options_)) { reset(); }

void CGConv2dImpl::reset() {
  const int64_t in = options.in_channels(), out = options.out_channels();
  const int64_t p = options.partitions();
  check_setting(in > 0 && out > 0, "in_channels",
                c10::str("CGConv2d channels must be positive, got in=", in, " out=", out));
  check_setting(p >= 1, "partitions",
                c10::str("CGConv2d {partitions} must be at least 1, got ", p));
  check_setting(
      in % p == 0 && out % p == 0, "partitions",
      c10::str("CGConv2d {partitions}=", p, " must divide the input and output channels (in=", in,
               ", out=", out, ")"));
  check_setting(options.alpha() > 0, "alpha",
                c10::str("CGConv2d {alpha} must be positive, got ", options.alpha()));
  const auto k = *options.kernel_size();
  weight = register_parameter("weight", torch::empty({out, in, k[0], k[1]}));
  torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanIn, torch::kReLU);

  torch::Tensor m = torch::zeros_like(weight);
  const int64_t ic = in / p, oc = out / p;
  if (options.use_group()) {
    for (int64_t i = 0; i < p; ++i) m.narrow(0, i * oc, oc).narrow(1, i * ic, ic).fill_(1);
  } else {
    m.narrow(1, 0, ic).fill_(1);
  }
  mask = register_buffer("mask", m);
  threshold_ = register_parameter("threshold", torch::full({1, out, 1, 1}, options.ginit()));
  bn = register_module("bn",
                       torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).affine(false)));
}

void CGConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "dnn_gating::CGConv2d(" << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride()
         << ", padding=" << options.padding() << ", partitions=" << options.partitions()
         << ", use_group=" << options.use_group() << ", shuffle=" << options.shuffle()
         << ", sparse_bp=" << options.sparse_bp() << ")";
}

torch::Tensor CGConv2dImpl::base_path(const torch::Tensor& x) const {
  const auto stride = *options.stride();
  const auto padding = *options.padding();
  const int64_t p = options.partitions();
  const int64_t ic = options.in_channels() / p;
  const bool dense = options.reference_ops() || (options.use_group() && dense_base_path(ic));
  if (dense) return torch::conv2d(x, weight * mask, {}, stride, padding);
  if (!options.use_group()) {
    return torch::conv2d(x.narrow(1, 0, ic), weight.narrow(1, 0, ic), {}, stride, padding);
  }
  return torch::conv2d(x, grouped_blocks(weight, p), {}, stride, padding, /*dilation=*/1,
                       /*groups=*/p);
}

GateCost CGConv2dImpl::gate_cost() const {
  return {1.0 / static_cast<double>(options.partitions()), 0};
}

GateKind CGConv2dImpl::gate_kind() const { return GateKind::kChannel; }

bool CGConv2dImpl::infers(const torch::Tensor& input) const {
  return !options.reference_ops() && kernels::fusable(input) && !torch::GradMode::is_enabled();
}

torch::Tensor CGConv2dImpl::forward(const torch::Tensor& input) { return mapped(input, nullptr); }

torch::Tensor CGConv2dImpl::forward_then(const torch::Tensor& input, torch::nn::BatchNorm2d& next,
                                         bool relu) {
  if (infers(input)) {
    if (const auto then = kernels::as_affine(*next, relu)) return mapped(input, &*then);
  }
  const torch::Tensor normalised = batch_norm(*next, forward(input));
  return relu ? torch::relu(normalised) : normalised;
}

torch::Tensor CGConv2dImpl::mapped(const torch::Tensor& input, const kernels::Affine* then) {
  const torch::Tensor shuffled =
      options.shuffle() ? layers::channel_shuffle(input, options.partitions()) : input;
  if (infers(shuffled)) {
    // Inference runs channels-last: the library's convolutions are faster so
    // laid out, and the gate and the open outputs of one position are adjacent.
    const torch::Tensor x = shuffled.contiguous(at::MemoryFormat::ChannelsLast);
    return infer(x, then);
  }
  const bool fused = !options.reference_ops() && kernels::fusable(shuffled);
  const torch::Tensor& x = shuffled;
  torch::Tensor full, partial;
  const bool one_pass =
      fused && options.use_group() && x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
      kernels::partial_conv::supported(weight, options.partitions(), *options.stride());
  // Empty where the mask is not made of blocks (then the library's way).
  const auto blocks = one_pass ? kernels::partial_conv::group_blocks(mask, options.partitions())
                               : std::vector<std::vector<bool>>();
  if (!blocks.empty()) {
    std::tie(full, partial) =
        full_and_partial_trained(x, weight, mask, blocks, *options.stride(), *options.padding());
  } else {
    partial = base_path(x);
    full = torch::conv2d(x, weight, {}, *options.stride(), *options.padding());
  }
  // The gate's batch normalisation folded into the gate's kernels: in
  // training, on one process, on channels-last sums.
  if (fused && bn->is_training() && SyncBatchNormGuard::active() == nullptr && !keeps_decisions() &&
      kernels::channels_last(partial) && kernels::channels_last(full)) {
    auto [mean, variance] = kernels::gates::channel_moments(partial.detach());
    track_batch_statistics(*bn, mean, variance,
                           static_cast<double>(partial.numel() / partial.size(1)));
    const BatchStatistics statistics{mean, torch::rsqrt(variance + bn->options.eps())};
    const auto outs = CGNormalisedGateFunction::apply(full, partial, threshold_, statistics,
                                                      options.alpha(), options.sparse_bp());
    record_gate(outs[1].item<int64_t>(), outs[0].sizes(), weight);
    record_way(InferenceWay::kEveryOutput);
    return outs[0];
  }
  const torch::Tensor gate_input = batch_norm(*bn, partial);
  if (fused) {
    const auto outs = CGGateFunction::apply(full, partial, gate_input, threshold_, options.alpha(),
                                            options.sparse_bp());
    record_gate(outs[1].item<int64_t>(), outs[0].sizes(), weight);
    record_way(InferenceWay::kEveryOutput);
    record_decisions_of(gate_input, options.alpha());
    return outs[0];
  }
  const torch::Tensor d = quant::gate_step(
      torch::sigmoid(options.alpha() * (gate_input - threshold_)) - 0.5, 0.0, options.sparse_bp());
  record_gate(d, weight);
  record_decisions(d);
  record_way(InferenceWay::kEveryOutput);
  return full * d + partial * (1 - d);
}

namespace {

// The default way (Skipping::kFastest) between the one pass, which computes
// every product at dense throughput, and the tile way (the partial sums, 1/p
// of the products, then the rest only over tiles holding an open gate). The
// tile way's time as a share of the one pass's is estimated as
// (1/p + (1 - 1/p) t) / tile_conv::relative_throughput(), t the share of
// tiles holding an open gate; trained gates, coherent along rows, open about
// kTilesPerOpenGate times as many tiles as gates (measured on trained
// Fashion-MNIST checkpoints: docs/PERFORMANCE.md, "Skipping closed tiles").
constexpr double kTilesPerOpenGate = 5.0;

double tile_way_cost(int64_t partitions, double tile_share) {
  const double base = 1.0 / static_cast<double>(partitions);
  return (base + (1.0 - base) * std::min(1.0, tile_share)) /
         kernels::tile_conv::relative_throughput();
}

}  // namespace

// After a tile pass, its own share of open tiles decides; after another
// way, the estimate from the share of open gates, which scattered gates
// (whose tiles open at far lower on-fractions) prove wrong: then the layer
// tries the tile way again only below half the on-fraction at which it
// failed.
bool CGConv2dImpl::takes_tiles(double previous_on_fraction) const {
  if (options.skipping() == Skipping::kAlways) return true;
  if (options.skipping() == Skipping::kNever || previous_on_fraction < 0) return false;
  if (last_way() == InferenceWay::kOpenTiles && last_tiles_.second > 0) {
    return tile_way_cost(options.partitions(), static_cast<double>(last_tiles_.first) /
                                                   static_cast<double>(last_tiles_.second)) < 1;
  }
  return previous_on_fraction < tiles_retry_below_ &&
         tile_way_cost(options.partitions(), kTilesPerOpenGate * previous_on_fraction) < 1;
}

// Without a backward pass. Where partial_conv takes the layer's shape, in
// evaluation mode, either the one pass (full and partial sums together, each
// product computed once; the gate decided and applied, then `then`, with no
// sum stored) or the tile way (tile_conv: the partial sums and the gates,
// then the rest of each sum only over tiles of positions holding an open
// gate), as takes_tiles() chooses; the one pass measured faster than the ways
// below at 50, 25 and 10 % of scattered gates open in both CG ResNet-20s
// (docs/PERFORMANCE.md). Otherwise, and for Skipping::kAlways where the tile
// way does not apply, the gate is decided from the base path, then either the
// full convolution is selected by the gate or the channels outside the base
// path are added to the partial sums only where the gate is open, as the
// skipping mode says. In training mode without gradients both ways share the
// one pass's sums, so that they decide every gate from the same partial sums.
torch::Tensor CGConv2dImpl::infer(const torch::Tensor& x, const kernels::Affine* then) {
  const torch::IntArrayRef stride = *options.stride();
  const torch::IntArrayRef padding = *options.padding();
  const int64_t p = options.partitions();
  const bool kernel = kernels::partial_conv::supported(weight, p, stride);
  // Empty where the mask is not made of blocks (then the library's way).
  auto blocks =
      kernel ? kernels::partial_conv::group_blocks(mask, p) : std::vector<std::vector<bool>>();
  if (!blocks.empty() && !bn->is_training()) {
    const std::vector<int64_t> out_shape{
        x.size(0), weight.size(0), (x.size(2) + 2 * padding[0] - weight.size(2)) / stride[0] + 1,
        (x.size(3) + 2 * padding[1] - weight.size(3)) / stride[1] + 1};
    kernels::partial_conv::GateParameters gate{bn->running_mean, bn->running_var, bn->options.eps(),
                                               threshold_, options.alpha()};
    const double previous = previous_on_fraction(out_shape);
    if (takes_tiles(previous) && kernels::tile_conv::supported(weight, stride, padding)) {
      // Tile by tile: partial sums, decisions, the rest only where a gate opens.
      const torch::Tensor decisions = decisions_buffer(out_shape);
      const auto r =
          kernels::tile_conv::gated(x, weight, blocks, stride, padding, gate, then, decisions);
      last_tiles_ = {r.tiles_computed, r.tiles};
      if (options.skipping() == Skipping::kFastest &&
          tile_way_cost(options.partitions(), static_cast<double>(r.tiles_computed) /
                                                  static_cast<double>(r.tiles)) >= 1) {
        tiles_retry_below_ = static_cast<double>(r.open) /
                             static_cast<double>(std::max<int64_t>(1, r.y.numel())) / 2;
      }
      record_gate(r.open, r.y.sizes(), weight);
      record_decisions(decisions);
      record_way(InferenceWay::kOpenTiles);
      return r.y;
    }
    if (options.skipping() != Skipping::kAlways) {
      const torch::Tensor decisions = decisions_buffer(out_shape);
      auto [y, open] =
          kernels::partial_conv::gated(x, weight, blocks, stride, padding, gate, then, decisions);
      record_gate(open, y.sizes(), weight);
      record_decisions(decisions);
      record_way(InferenceWay::kOnePass);
      return y;
    }
  }
  if (options.skipping() == Skipping::kAlways) blocks.clear();  // the base path, then open outputs
  torch::Tensor partial, full;
  if (blocks.empty()) {
    partial = base_path(x);
  } else {
    std::tie(full, partial) =
        kernels::partial_conv::full_and_partial(x, weight, blocks, stride, padding);
  }
  // Completed in place below, in a layout the kernels take.
  if (!partial.is_contiguous() && !partial.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    partial = partial.contiguous(at::MemoryFormat::ChannelsLast);
  }
  const torch::Tensor gate_input = batch_norm(*bn, partial);
  // The weights outside the base path and the padded input, made once, and
  // only if the open outputs are computed.
  torch::Tensor rest;
  std::optional<kernels::sparse_conv::PaddedInput> padded;
  const sparse_choice::GatedPass pass{
      partial,
      [&] {
        const torch::Tensor all =
            full.defined() ? full : torch::conv2d(x, weight, {}, stride, padding);
        return kernels::gates::cg_select_inference(all, partial, gate_input, threshold_,
                                                   options.alpha());
      },
      [&] { return kernels::gates::open_outputs(gate_input, threshold_, options.alpha()); },
      [&](const kernels::sparse_conv::OpenOutputs& open, const torch::Tensor& y) {
        if (!rest.defined()) rest = weight * (1 - mask);
        if (!padded) padded = kernels::sparse_conv::pad_channels_last(x, padding);
        kernels::sparse_conv::add_at_open(*padded, rest, stride, open, y);
      }};
  record_decisions_of(gate_input, options.alpha());  // before the pass completes `partial`
  auto [y, open, skipped] =
      sparse_choice::run(options.skipping(), sparse_choice::shape_key(x, weight, stride, padding),
                         previous_on_fraction(partial.sizes()), pass);
  record_gate(open, y.sizes(), weight);
  record_way(skipped ? InferenceWay::kOpenOutputs : InferenceWay::kEveryOutput);
  // y is this pass's own tensor: mapped in place, in one pass.
  if (then != nullptr) kernels::apply_in_place(*then, y);
  return y;
}

}  // namespace dnn_gating::layers
