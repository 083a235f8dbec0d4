#include "dnn_gating/models/resnet.h"

#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/layers/quantized_conv.h"

#include <array>

namespace dnn_gating::models {
namespace {

constexpr std::array<std::pair<BlockKind, const char*>, 5> kKindNames{{
    {BlockKind::kQuantized, "quantized"},
    {BlockKind::kPrecisionGated, "pg"},
    {BlockKind::kChannelGated, "cg"},
    {BlockKind::kPostActivated, "postact"},
    {BlockKind::kChannelGatedPostAct, "cg-postact"},
}};

bool is_channel_gated(BlockKind kind) {
  return kind == BlockKind::kChannelGated || kind == BlockKind::kChannelGatedPostAct;
}
bool is_post_activated(BlockKind kind) {
  return kind == BlockKind::kPostActivated || kind == BlockKind::kChannelGatedPostAct;
}
bool is_quantized(BlockKind kind) {
  return kind == BlockKind::kQuantized || kind == BlockKind::kPrecisionGated;
}

torch::nn::AnyModule quantized_conv(const ResNetOptions& o, int64_t in, int64_t out, int64_t stride) {
  const bool quantized = is_quantized(o.kind());
  return torch::nn::AnyModule(layers::QuantizedConv2d(layers::QuantizedConv2dOptions(in, out, 3)
                                                          .stride(stride)
                                                          .padding(1)
                                                          .wbits(quantized ? o.wbits() : 0)
                                                          .abits(quantized ? o.abits() : 0)));
}

torch::nn::AnyModule pg_conv(const ResNetOptions& o, int64_t in, int64_t out, int64_t stride) {
  return torch::nn::AnyModule(layers::PGConv2d(layers::PGConv2dOptions(in, out, 3)
                                                   .stride(stride)
                                                   .padding(1)
                                                   .wbits(o.wbits())
                                                   .abits(o.abits())
                                                   .pred_bits(o.pred_bits())
                                                   .sparse_bp(o.sparse_bp())
                                                   .alpha(o.pg_alpha())
                                                   .reference_ops(o.reference_ops())));
}

torch::nn::AnyModule cg_conv(const ResNetOptions& o, int64_t in, int64_t out, int64_t stride) {
  return torch::nn::AnyModule(layers::CGConv2d(layers::CGConv2dOptions(in, out, 3)
                                                   .stride(stride)
                                                   .padding(1)
                                                   .partitions(o.partitions())
                                                   .ginit(o.ginit())
                                                   .alpha(o.cg_alpha())
                                                   .use_group(o.use_group())
                                                   .shuffle(o.shuffle())
                                                   .sparse_bp(o.sparse_bp())
                                                   .reference_ops(o.reference_ops())));
}

}  // namespace

std::string to_string(BlockKind kind) {
  for (const auto& [k, name] : kKindNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

BlockKind block_kind_from_string(const std::string& name) {
  for (const auto& [k, n] : kKindNames) {
    if (name == n) return k;
  }
  TORCH_CHECK(false, "unknown model kind '", name,
              "' (expected quantized, pg, cg, postact or cg-postact)");
}

void validate(const ResNetOptions& o) {
  TORCH_CHECK(o.depth() >= 8 && (o.depth() - 2) % 6 == 0,
              "depth must be 6n+2 (20, 32, 44, 56, 110, ...), got ", o.depth());
  TORCH_CHECK(o.in_channels() > 0, "input channels must be positive, got ", o.in_channels());
  TORCH_CHECK(o.num_classes() > 1, "num_classes must be at least 2, got ", o.num_classes());
  if (is_quantized(o.kind())) {
    layers::check_bit_width("weight bits (-w)", o.wbits());
    layers::check_bit_width("activation bits (-a)", o.abits());
  }
  if (o.kind() == BlockKind::kPrecisionGated) {
    TORCH_CHECK(o.abits() > 0,
                "precision gating (-pg) needs quantized activations: set -a to more bits than -pb");
    TORCH_CHECK(o.pred_bits() > 0 && o.pred_bits() < o.abits(),
                "prediction bits (-pb) must be between 1 and abits-1 (-a ", o.abits(), "), got ",
                o.pred_bits());
  }
  if (is_channel_gated(o.kind())) {
    TORCH_CHECK(o.partitions() >= 1, "partitions (-pt) must be at least 1, got ",
                o.partitions());
    TORCH_CHECK(16 % o.partitions() == 0,
                "partitions (-pt) must divide every layer's channel count (16, 32, 64), got ",
                o.partitions());
  }
}

BasicBlockImpl::BasicBlockImpl(const ResNetOptions& options, int64_t in_planes, int64_t planes,
                               int64_t stride)
    : options_(options), in_planes_(in_planes), planes_(planes), stride_(stride) {
  reset();
}

void BasicBlockImpl::reset() {
  const BlockKind kind = options_.kind();
  switch (kind) {
    case BlockKind::kQuantized:
    case BlockKind::kPostActivated:
      conv1_ = quantized_conv(options_, in_planes_, planes_, stride_);
      conv2_ = quantized_conv(options_, planes_, planes_, 1);
      break;
    case BlockKind::kPrecisionGated:
      conv1_ = pg_conv(options_, in_planes_, planes_, stride_);
      conv2_ = quantized_conv(options_, planes_, planes_, 1);
      break;
    case BlockKind::kChannelGated:
      conv1_ = cg_conv(options_, in_planes_, planes_, stride_);
      conv2_ = quantized_conv(options_, planes_, planes_, 1);
      break;
    case BlockKind::kChannelGatedPostAct:
      conv1_ = cg_conv(options_, in_planes_, planes_, stride_);
      conv2_ = cg_conv(options_, planes_, planes_, 1);
      break;
  }
  register_module("conv1", conv1_.ptr());
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(planes_));
  register_module("conv2", conv2_.ptr());
  bn2_ = register_module("bn2", torch::nn::BatchNorm2d(planes_));
  if (options_.pact() && is_quantized(kind)) pact_ = register_module("relu", quant::PactReLU());
}

torch::Tensor BasicBlockImpl::activate(const torch::Tensor& x) {
  return pact_ ? pact_->forward(x) : torch::relu(x);
}

torch::Tensor BasicBlockImpl::shortcut(const torch::Tensor& x) const {
  if (stride_ == 1 && in_planes_ == planes_) return x;
  // Option A: subsample and pad planes/4 zero channels on each side.
  const torch::Tensor sub = x.slice(2, 0, c10::nullopt, 2).slice(3, 0, c10::nullopt, 2);
  return torch::constant_pad_nd(sub, {0, 0, 0, 0, planes_ / 4, planes_ / 4});
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  if (is_post_activated(options_.kind())) {
    torch::Tensor out = torch::relu(bn1_->forward(conv1_.forward(x)));
    out = torch::relu(bn2_->forward(conv2_.forward(out)));
    return out + shortcut(x);
  }
  torch::Tensor out = activate(bn1_->forward(conv1_.forward(x)));
  out = bn2_->forward(conv2_.forward(out));
  return activate(out + shortcut(x));
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
  if (options.pact() && is_quantized(options.kind())) pact_ = register_module("relu", quant::PactReLU());
  torch::nn::init::kaiming_normal_(conv1_->weight, 0.0, torch::kFanIn, torch::kReLU);
  torch::nn::init::kaiming_normal_(linear_->weight, 0.0, torch::kFanIn, torch::kReLU);
}

void ResNetImpl::pretty_print(std::ostream& stream) const {
  stream << "dnn_gating::ResNet(depth=" << options.depth() << ", kind=" << to_string(options.kind())
         << ")";
}

int64_t ResNetImpl::dense_macs_per_image(int64_t height, int64_t width) const {
  constexpr int64_t k = 9;  // 3x3 kernels
  int64_t macs = 16 * options.in_channels() * k * height * width;
  const int64_t blocks = (options.depth() - 2) / 6;
  int64_t in_planes = 16;
  for (int64_t stage = 0; stage < 3; ++stage) {
    const int64_t planes = 16 << stage;
    for (int64_t i = 0; i < blocks; ++i) {
      if (stage > 0 && i == 0) {
        height = (height + 1) / 2;
        width = (width + 1) / 2;
      }
      macs += (planes * in_planes + planes * planes) * k * height * width;
      in_planes = planes;
    }
  }
  return macs + 64 * options.num_classes();
}

torch::Tensor ResNetImpl::forward(const torch::Tensor& x) {
  torch::Tensor out = bn1_->forward(conv1_->forward(x));
  out = pact_ ? pact_->forward(out) : torch::relu(out);
  out = layer3_->forward(layer2_->forward(layer1_->forward(out)));
  out = torch::avg_pool2d(out, out.size(3)).flatten(1);
  return linear_->forward(out);
}

}  // namespace dnn_gating::models
