#pragma once
/// The papers' larger networks in torchvision's layout and parameter names
/// (so that torchvision's float weights load by name), each float,
/// quantized, precision-gated or channel-gated through the same
/// ResNetOptions as the CIFAR ResNets; and `make_model`, which builds any
/// network of the family.

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

#include "dnn_gating/layers/dense_macs.h"
#include "dnn_gating/layers/slot.h"
#include "dnn_gating/models/resnet.h"
#include "dnn_gating/quant/pact.h"

namespace dnn_gating::models {

/// ResNet-18 (torchvision's `resnet18`: conv1, bn1, layer1..4 of two
/// BasicBlocks with `downsample` projection shortcuts, fc). Its blocks are
/// ResNet-20's by kind and layout (the gated kinds gate the first
/// convolution of a block); the stem and the 1x1 shortcuts stay plain. The
/// stem is CIFAR's (3x3, stride 1, no max-pool, as the CG paper's CIFAR
/// ResNet-18) unless `imagenet_stem`. It counts the dense MACs of its linear
/// layer; every convolution counts its own.
class ResNet18Impl : public torch::nn::Cloneable<ResNet18Impl>, public layers::CountsMacs {
 public:
  explicit ResNet18Impl(ResNetOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);

  ResNetOptions options;

 private:
  layers::Slot conv1_;
  torch::nn::BatchNorm2d bn1_{nullptr};
  layers::Slot act_;  // `relu`
  torch::nn::Sequential layer1_{nullptr}, layer2_{nullptr}, layer3_{nullptr}, layer4_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ResNet18);

/// VGG-16 with BatchNorm (torchvision's `vgg16_bn`: `features.<i>` with
/// thirteen 3x3 convolutions, each followed by BatchNorm and ReLU, five
/// max-pools; `classifier.<i>`). The first convolution is plain, the others
/// of the model's kind; ReLUs are PACT in quantized and PG models with
/// `pact`. Torchvision's convolutions carry a bias, which the BatchNorm after
/// each makes redundant: these have none (io's torchvision import folds a
/// loaded bias into the BatchNorm's running mean). The classifier is one
/// linear layer after the last pool (CIFAR, `classifier.0`) unless
/// `imagenet_stem`: then torchvision's 7x7 average pool and three linear
/// layers with dropout (`classifier.0`, `.3`, `.6`).
class VGG16Impl : public torch::nn::Cloneable<VGG16Impl>, public layers::CountsMacs {
 public:
  explicit VGG16Impl(ResNetOptions options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);

  ResNetOptions options;

 private:
  // One 3x3 convolution, its BatchNorm and activation (PACT where set).
  struct Stage {
    layers::Slot conv;
    torch::nn::BatchNorm2d bn{nullptr};
    layers::Slot act;  // ReLU, or PACT
    bool pool_after = false;
  };
  std::vector<Stage> stages_;
  torch::nn::Sequential features_{nullptr}, classifier_{nullptr};
  std::vector<torch::nn::Linear> linears_;
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(VGG16);

/// A network of the family and its forward function.
struct Model {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
};

/// The network `options.arch()` names, validated (`validate`).
Model make_model(const ResNetOptions& options);

}  // namespace dnn_gating::models
