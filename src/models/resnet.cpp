#include "dnn_gating/models/resnet.h"

#include <array>
#include <limits>

#include "dnn_gating/layers/batch_norm.h"
#include "dnn_gating/layers/conv.h"
#include "dnn_gating/quant/pact.h"
#include "dnn_gating/quant/quantize.h"
#include "models/model_conv.h"

namespace dnn_gating::models {
namespace {

constexpr std::array<std::pair<ConvKind, const char*>, 4> kConvNames{{
    {ConvKind::kFloat, "float"},
    {ConvKind::kQuantized, "quantized"},
    {ConvKind::kPrecisionGated, "pg"},
    {ConvKind::kChannelGated, "cg"},
}};
constexpr std::array<std::pair<Arch, const char*>, 3> kArchNames{{
    {Arch::kResNet, "resnet20"},
    {Arch::kResNet18, "resnet18"},
    {Arch::kVGG16, "vgg16"},
}};
constexpr std::array<std::pair<BlockLayout, const char*>, 2> kLayoutNames{{
    {BlockLayout::kStandard, "standard"},
    {BlockLayout::kPostActivated, "postact"},
}};

template <typename Table, typename Value>
std::string name_in(const Table& table, Value value) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return "unknown";
}

template <typename Value, typename Table>
Value value_in(const Table& table, const std::string& name, const char* what) {
  std::string names;
  for (const auto& [v, n] : table) {
    if (name == n) return v;
    names += (names.empty() ? "" : ", ") + std::string(n);
  }
  throw SettingError(what,
                     "unknown {" + std::string(what) + "} '" + name + "' (expected " + names + ")");
}

}  // namespace

std::string to_string(ConvKind conv) { return name_in(kConvNames, conv); }
std::string to_string(BlockLayout layout) { return name_in(kLayoutNames, layout); }
std::string to_string(Arch arch) { return name_in(kArchNames, arch); }
Arch arch_from_string(const std::string& name) { return value_in<Arch>(kArchNames, name, "arch"); }
ConvKind conv_kind_from_string(const std::string& name) {
  return value_in<ConvKind>(kConvNames, name, "conv");
}
BlockLayout block_layout_from_string(const std::string& name) {
  return value_in<BlockLayout>(kLayoutNames, name, "layout");
}

std::string model_name(ConvKind conv, BlockLayout layout) {
  if (layout == BlockLayout::kStandard) return to_string(conv);
  return conv == ConvKind::kFloat ? "postact" : to_string(conv) + "-postact";
}

std::pair<ConvKind, BlockLayout> model_from_name(const std::string& name) {
  const std::string suffix = "-postact";
  if (name == "postact") return {ConvKind::kFloat, BlockLayout::kPostActivated};
  if (name.size() > suffix.size() &&
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return {conv_kind_from_string(name.substr(0, name.size() - suffix.size())),
            BlockLayout::kPostActivated};
  }
  return {conv_kind_from_string(name), BlockLayout::kStandard};
}

std::string network_name(const ResNetOptions& o) {
  if (o.arch() == Arch::kVGG16) return "vgg-16";
  return "resnet-" + std::to_string(o.arch() == Arch::kResNet18 ? 18 : o.depth());
}

std::string network_title(const ResNetOptions& o) {
  if (o.arch() == Arch::kVGG16) return "VGG-16";
  return "ResNet" + network_name(o).substr(6);  // "-20", "-18"
}

void validate(const ResNetOptions& o) {
  check_setting(
      o.arch() != Arch::kResNet || (o.depth() >= 8 && (o.depth() - 2) % 6 == 0), "depth",
      "{depth} must be 6n+2 (20, 32, 44, 56, 110, ...), got " + std::to_string(o.depth()));
  check_setting(o.arch() != Arch::kVGG16 || o.layout() == BlockLayout::kStandard, "layout",
                "VGG-16 has no residual blocks to post-activate: {layout} must be standard");
  check_setting(o.in_channels() > 0, "in_channels",
                "{in_channels} must be positive, got " + std::to_string(o.in_channels()));
  check_setting(o.num_classes() > 1, "num_classes",
                "{num_classes} must be at least 2, got " + std::to_string(o.num_classes()));
  if (is_quantized(o.conv())) {
    quant::check_bit_width("wbits", o.wbits());
    quant::check_bit_width("abits", o.abits());
  }
  if (o.conv() == ConvKind::kPrecisionGated) {
    check_setting(o.abits() > 0, "abits",
                  "precision gating needs quantized activations: {abits} must exceed {pred_bits} "
                  "(got {abits} 0)");
    check_setting(o.pred_bits() > 0 && o.pred_bits() < o.abits(), "pred_bits",
                  "{pred_bits} must be at least 1 and below {abits} (got {pred_bits} " +
                      std::to_string(o.pred_bits()) + ", {abits} " + std::to_string(o.abits()) +
                      ")");
  }
  if (o.conv() == ConvKind::kChannelGated) {
    check_setting(o.partitions() >= 1 && 16 % o.partitions() == 0, "partitions",
                  "{partitions} must divide every gated layer's input channels (16, 32, 64, ...), "
                  "got " +
                      std::to_string(o.partitions()));
  }
}

BasicBlockImpl::BasicBlockImpl(const ResNetOptions& options, int64_t in_planes, int64_t planes,
                               int64_t stride, Shortcut shortcut)
    : options_(options),
      in_planes_(in_planes),
      planes_(planes),
      stride_(stride),
      shortcut_(shortcut) {
  reset();
}

void BasicBlockImpl::reset() {
  conv1_ = layers::Slot(model_conv(options_.conv(), options_, in_planes_, planes_, stride_));
  conv2_ = layers::Slot(model_conv(second_conv(options_), options_, planes_, planes_, 1));
  register_module("conv1", conv1_.ptr());
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(planes_));
  register_module("conv2", conv2_.ptr());
  bn2_ = register_module("bn2", torch::nn::BatchNorm2d(planes_));
  // The post-activated layout applies plain ReLUs of its own (and never PACT).
  const bool pact = options_.pact() && is_quantized(options_.conv());
  act_ = pact || options_.layout() == BlockLayout::kStandard
             ? layers::Slot(model_activation(options_))
             : layers::Slot();
  if (!act_.is_empty()) register_module("relu", act_.ptr());
  if (shortcut_ == Shortcut::kProjection && (stride_ != 1 || in_planes_ != planes_)) {
    const torch::nn::AnyModule down_conv =
        model_conv(ConvKind::kFloat, options_, in_planes_, planes_, stride_, 1);
    down_conv_ = layers::Slot(down_conv);
    down_bn_ = torch::nn::BatchNorm2d(planes_);
    downsample_ = torch::nn::Sequential();
    downsample_->push_back(down_conv);
    downsample_->push_back(down_bn_);
    register_module("downsample", downsample_);
  }
}

torch::Tensor option_a_shortcut(const torch::Tensor& x, int64_t in_planes, int64_t planes,
                                int64_t stride) {
  if (stride == 1 && in_planes == planes) return x;
  // x[:, :, ::2, ::2], as a pooling of one pixel: its gradient keeps the
  // input's memory layout (a strided slice's comes back [N, C, H, W], and
  // a channels-last model would then mix layouts in every later operation
  // of its backward pass).
  const torch::Tensor sub = torch::avg_pool2d(x, 1, 2);
  return torch::constant_pad_nd(sub, {0, 0, 0, 0, planes / 4, planes / 4});
}

torch::Tensor BasicBlockImpl::shortcut(const torch::Tensor& x) {
  if (downsample_) return layers::batch_norm(*down_bn_, down_conv_.forward(x));
  return option_a_shortcut(x, in_planes_, planes_, stride_);
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  return forward_activation({x, {}}, 0).value;
}

int64_t BasicBlockImpl::input_bits() const {
  return options_.layout() == BlockLayout::kStandard ? fused_input_bits(conv1_, options_) : 0;
}

Activation BasicBlockImpl::forward_activation(Activation in, int64_t out_bits) {
  const torch::Tensor& x = in.value;
  if (options_.layout() == BlockLayout::kPostActivated) {
    torch::Tensor out = normalised(conv1_, bn1_, /*relu=*/true, x);
    out = normalised(conv2_, bn2_, /*relu=*/true, out);
    return {out + shortcut(x), {}};
  }
  // In training, PACT and the next convolution's quantizer run as one pass
  // (model_conv's `activated`); otherwise conv1's pass may fold the clip in.
  const int64_t mid_bits =
      act_.as<quant::PactReLUImpl>() != nullptr ? fused_input_bits(conv2_, options_) : 0;
  torch::Tensor out;
  if (in.quantized.defined() || mid_bits > 0) {
    const Activation mid =
        activated(act_, normalised_from(conv1_, bn1_, in), mid_bits, /*keep_value=*/false);
    out = normalised_from(conv2_, bn2_, mid);
  } else {
    const torch::Tensor mid = normalised_activated(conv1_, bn1_, act_, x);
    if (out_bits == 0) {
      torch::Tensor residual = shortcut(x);
      // The block's own handle on its input goes: where the caller handed
      // the input over (moved it in), nothing else holds the identity
      // shortcut, and the sum may be written into its memory.
      in = Activation{};
      return {normalised_added(conv2_, bn2_, act_, mid, std::move(residual)), {}};
    }
    out = normalised(conv2_, bn2_, /*relu=*/false, mid);
  }
  return activated(act_, out + shortcut(x), out_bits, /*keep_value=*/true);
}

ResNetImpl::ResNetImpl(ResNetOptions options_) : options(std::move(options_)) { reset(); }

void ResNetImpl::reset() {
  validate(options);
  conv1_ = register_module(
      "conv1", torch::nn::Conv2d(
                   torch::nn::Conv2dOptions(options.in_channels(), 16, 3).padding(1).bias(false)));
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(16));
  const int64_t blocks = (options.depth() - 2) / 6;
  int64_t in_planes = 16;
  auto make_layer = [&](int64_t planes, int64_t stride) {
    torch::nn::Sequential layer;
    for (int64_t i = 0; i < blocks; ++i) {
      layer->push_back(BasicBlock(options, in_planes, planes, i == 0 ? stride : 1));
      in_planes = planes;
    }
    return layer;
  };
  layer1_ = register_module("layer1", make_layer(16, 1));
  layer2_ = register_module("layer2", make_layer(32, 2));
  layer3_ = register_module("layer3", make_layer(64, 2));
  linear_ = register_module("linear", torch::nn::Linear(64, options.num_classes()));
  act_ = layers::Slot(model_activation(options));
  register_module("relu", act_.ptr());
  torch::nn::init::kaiming_normal_(conv1_->weight, 0.0, torch::kFanIn, torch::kReLU);
  torch::nn::init::kaiming_normal_(linear_->weight, 0.0, torch::kFanIn, torch::kReLU);
}

void ResNetImpl::pretty_print(std::ostream& stream) const {
  stream << "dnn_gating::ResNet(depth=" << options.depth()
         << ", model=" << model_name(options.conv(), options.layout()) << ")";
}

torch::Tensor ResNetImpl::forward(const torch::Tensor& input) {
  // With the image laid out as the blocks' convolutions compute, the stem's
  // output needs no conversion before the first of them.
  const torch::Tensor x = model_layout(options, input);
  // Block by block, each output quantized in its activation's pass where
  // the next block's first convolution quantizes its input.
  std::vector<BasicBlockImpl*> blocks;
  for (const auto& layer : {layer1_, layer2_, layer3_}) {
    for (const auto& child : layer->children()) {
      auto* block = child->as<BasicBlockImpl>();
      TORCH_CHECK(block != nullptr, "a ResNet layer holds a module that is not a BasicBlock");
      blocks.push_back(block);
    }
  }
  Activation a = stem(x, blocks.front()->input_bits());
  const std::vector<int64_t> stem_sizes = a.value.sizes().vec();
  for (size_t i = 0; i < blocks.size(); ++i) {
    a = blocks[i]->forward_activation(std::move(a),
                                      i + 1 < blocks.size() ? blocks[i + 1]->input_bits() : 0);
  }
  torch::Tensor out = torch::avg_pool2d(a.value, a.value.size(3)).flatten(1);
  out = linear_->forward(out);
  record_macs(layers::dense_macs_per_image(conv1_->weight, stem_sizes) +
              layers::dense_macs_per_image(linear_->weight, out.sizes()));
  return out;
}

Activation ResNetImpl::stem(const torch::Tensor& x, int64_t out_bits) {
  // In evaluation without gradients (as the blocks' float convolutions):
  // the BatchNorm folded into the convolution, the activation in place.
  if (!options.reference_ops() && out_bits == 0) {
    const auto pact = act_.as<quant::PactReLUImpl>();
    if (pact != nullptr || is_plain_relu(act_)) {
      const double upper = pact != nullptr ? pact->upper_bound.item<double>()
                                           : std::numeric_limits<double>::infinity();
      if (auto y = layers::folded_conv(*conv1_, *bn1_, upper, x)) return {std::move(*y), {}};
    }
  }
  const torch::Tensor out = layers::batch_norm(*bn1_, conv1_->forward(x));
  return activated(act_, out, out_bits, /*keep_value=*/true);
}

}  // namespace dnn_gating::models
