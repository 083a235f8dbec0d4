#include "dnn_gating/models/torchvision.h"

#include <array>

#include "dnn_gating/layers/batch_norm.h"
#include "dnn_gating/layers/conv.h"
#include "models/model_conv.h"

namespace dnn_gating::models {
namespace {

// Channels of VGG-16's convolutions; 0 is a max-pool (torchvision's cfg "D").
constexpr std::array<int64_t, 18> kVgg16{64, 64,  0,   128, 128, 0,   256, 256, 256,
                                         0,  512, 512, 512, 0,   512, 512, 512, 0};

// torchvision's initialisation of convolution weights (not of the gates'
// thresholds, which keep their ginit).
void init_conv_weights(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) {
    const std::string& name = p.key();
    if (p.value().dim() == 4 && name.size() >= 6 &&
        name.compare(name.size() - 6, 6, "weight") == 0) {
      torch::nn::init::kaiming_normal_(p.value(), 0.0, torch::kFanOut, torch::kReLU);
    }
  }
}

}  // namespace

// ---- ResNet-18 ----

ResNet18Impl::ResNet18Impl(ResNetOptions options_) : options(std::move(options_)) { reset(); }

void ResNet18Impl::reset() {
  validate(options);
  const bool imagenet = options.imagenet_stem();
  conv1_ = layers::Slot(model_conv(ConvKind::kFloat, options, options.in_channels(), 64,
                                   imagenet ? 2 : 1, imagenet ? 7 : 3));
  register_module("conv1", conv1_.ptr());
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(64));
  act_ = layers::Slot(model_activation(options));
  register_module("relu", act_.ptr());
  int64_t in_planes = 64;
  auto make_layer = [&](int64_t planes, int64_t stride) {
    torch::nn::Sequential layer;
    for (int64_t i = 0; i < 2; ++i) {
      layer->push_back(
          BasicBlock(options, in_planes, planes, i == 0 ? stride : 1, Shortcut::kProjection));
      in_planes = planes;
    }
    return layer;
  };
  layer1_ = register_module("layer1", make_layer(64, 1));
  layer2_ = register_module("layer2", make_layer(128, 2));
  layer3_ = register_module("layer3", make_layer(256, 2));
  layer4_ = register_module("layer4", make_layer(512, 2));
  fc_ = register_module("fc", torch::nn::Linear(512, options.num_classes()));
  init_conv_weights(*this);
}

void ResNet18Impl::pretty_print(std::ostream& stream) const {
  stream << "dnn_gating::ResNet18(model=" << model_name(options.conv(), options.layout())
         << (options.imagenet_stem() ? ", imagenet stem" : ", cifar stem") << ")";
}

torch::Tensor ResNet18Impl::forward(const torch::Tensor& input) {
  torch::Tensor out = layers::batch_norm(*bn1_, conv1_.forward(model_layout(options, input)));
  out = act_.forward(out);
  if (options.imagenet_stem()) out = torch::max_pool2d(out, 3, 2, 1);
  out = layer4_->forward(layer3_->forward(layer2_->forward(layer1_->forward(out))));
  out = torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
  out = fc_->forward(out);
  record_macs(layers::dense_macs_per_image(fc_->weight, out.sizes()));
  return out;
}

// ---- VGG-16 ----

VGG16Impl::VGG16Impl(ResNetOptions options_) : options(std::move(options_)) { reset(); }

void VGG16Impl::reset() {
  validate(options);
  stages_.clear();
  linears_.clear();
  features_ = torch::nn::Sequential();
  int64_t in = options.in_channels();
  for (const int64_t channels : kVgg16) {
    if (channels == 0) {  // torchvision's index of the pool
      features_->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)));
      stages_.back().pool_after = true;
      continue;
    }
    Stage stage;
    // The first convolution stays plain, as the stems of the ResNets.
    const torch::nn::AnyModule conv =
        model_conv(stages_.empty() ? ConvKind::kFloat : options.conv(), options, in, channels, 1);
    stage.conv = layers::Slot(conv);
    stage.bn = torch::nn::BatchNorm2d(channels);
    const torch::nn::AnyModule act = model_activation(options);
    stage.act = layers::Slot(act);
    features_->push_back(conv);
    features_->push_back(stage.bn);
    features_->push_back(act);
    stages_.push_back(stage);
    in = channels;
  }
  register_module("features", features_);
  classifier_ = torch::nn::Sequential();
  if (options.imagenet_stem()) {
    dropout_ = torch::nn::Dropout(0.5);
    linears_ = {torch::nn::Linear(512 * 7 * 7, 4096), torch::nn::Linear(4096, 4096),
                torch::nn::Linear(4096, options.num_classes())};
    classifier_->push_back(linears_[0]);
    classifier_->push_back(torch::nn::ReLU());
    classifier_->push_back(dropout_);
    classifier_->push_back(linears_[1]);
    classifier_->push_back(torch::nn::ReLU());
    classifier_->push_back(torch::nn::Dropout(0.5));
    classifier_->push_back(linears_[2]);
  } else {
    linears_ = {torch::nn::Linear(512, options.num_classes())};
    classifier_->push_back(linears_[0]);
  }
  register_module("classifier", classifier_);
  init_conv_weights(*this);
  for (auto& linear : linears_) {
    torch::nn::init::normal_(linear->weight, 0.0, 0.01);
    torch::nn::init::zeros_(linear->bias);
  }
}

void VGG16Impl::pretty_print(std::ostream& stream) const {
  stream << "dnn_gating::VGG16(model=" << model_name(options.conv(), options.layout())
         << (options.imagenet_stem() ? ", imagenet classifier" : ", cifar classifier") << ")";
}

torch::Tensor VGG16Impl::forward(const torch::Tensor& input) {
  torch::Tensor out = model_layout(options, input);
  for (Stage& stage : stages_) {
    out = normalised_activated(stage.conv, stage.bn, stage.act, out);
    if (stage.pool_after) out = torch::max_pool2d(out, 2, 2);
  }
  int64_t macs = 0;
  if (options.imagenet_stem()) {
    out = torch::adaptive_avg_pool2d(out, {7, 7}).flatten(1);
    for (size_t i = 0; i < linears_.size(); ++i) {
      out = linears_[i]->forward(out);
      macs += layers::dense_macs_per_image(linears_[i]->weight, out.sizes());
      if (i + 1 < linears_.size()) out = dropout_->forward(torch::relu(out));
    }
  } else {
    out = linears_[0]->forward(torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1));
    macs += layers::dense_macs_per_image(linears_[0]->weight, out.sizes());
  }
  record_macs(macs);
  return out;
}

Model make_model(const ResNetOptions& options) {
  switch (options.arch()) {
    case Arch::kResNet18: {
      ResNet18 model(options);
      return {model.ptr(), [model](const torch::Tensor& x) mutable { return model->forward(x); }};
    }
    case Arch::kVGG16: {
      VGG16 model(options);
      return {model.ptr(), [model](const torch::Tensor& x) mutable { return model->forward(x); }};
    }
    case Arch::kResNet:
      break;
  }
  ResNet model(options);
  return {model.ptr(), [model](const torch::Tensor& x) mutable { return model->forward(x); }};
}

}  // namespace dnn_gating::models
