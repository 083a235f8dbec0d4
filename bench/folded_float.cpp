#include "folded_float.h"

#include <stdexcept>

namespace dnn_gating::bench {
namespace {

using Named = torch::OrderedDict<std::string, torch::Tensor>;

// conv (prefix "conv") followed by BatchNorm (prefix "bn") as one convolution.
torch::Tensor folded_scale(const Named& p, const Named& b, const std::string& bn, double eps) {
  return p[bn + ".weight"] / torch::sqrt(b[bn + ".running_var"] + eps);
}

}  // namespace

FoldedFloatResNet::FoldedFloatResNet(models::ResNet& model) {
  if (model->options.conv() != models::ConvKind::kFloat ||
      model->options.layout() != models::BlockLayout::kStandard) {
    throw std::invalid_argument("FoldedFloatResNet folds the float, standard-layout ResNet only");
  }
  torch::NoGradGuard no_grad;
  const Named p = model->named_parameters();
  const Named b = model->named_buffers();
  constexpr double kEps = 1e-5;  // BatchNorm2d's default, as the model's
  const auto fold = [&](const std::string& conv, const std::string& bn, int64_t stride) {
    const torch::Tensor scale = folded_scale(p, b, bn, kEps);
    return Conv{(p[conv + ".weight"] * scale.view({-1, 1, 1, 1}))
                    .contiguous(at::MemoryFormat::ChannelsLast),
                p[bn + ".bias"] - b[bn + ".running_mean"] * scale, stride};
  };
  stem_ = fold("conv1", "bn1", 1);
  const int64_t per_stage = (model->options.depth() - 2) / 6;
  for (int stage = 1; stage <= 3; ++stage) {
    for (int64_t i = 0; i < per_stage; ++i) {
      const std::string prefix = "layer" + std::to_string(stage) + "." + std::to_string(i) + ".";
      const torch::Tensor& w = p[prefix + "conv1.weight"];
      const int64_t stride = (stage > 1 && i == 0) ? 2 : 1;
      blocks_.push_back({fold(prefix + "conv1", prefix + "bn1", stride),
                         fold(prefix + "conv2", prefix + "bn2", 1), w.size(1), w.size(0), stride});
    }
  }
  linear_weight_ = p["linear.weight"].clone();
  linear_bias_ = p["linear.bias"].clone();
}

torch::Tensor FoldedFloatResNet::forward(const torch::Tensor& input) const {
  torch::NoGradGuard no_grad;
  const auto conv = [](const torch::Tensor& x, const Conv& c) {
    return torch::conv2d(x, c.weight, c.bias, c.stride, 1);
  };
  torch::Tensor x = torch::relu(conv(input.contiguous(at::MemoryFormat::ChannelsLast), stem_));
  for (const Block& block : blocks_) {
    torch::Tensor out = torch::relu(conv(x, block.conv1));
    out = conv(out, block.conv2);
    out += models::option_a_shortcut(x, block.in_planes, block.planes, block.stride);
    x = torch::relu(out);
  }
  x = torch::avg_pool2d(x, x.size(3)).flatten(1);
  return torch::linear(x, linear_weight_, linear_bias_);
}

}  // namespace dnn_gating::bench
