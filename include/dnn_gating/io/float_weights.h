#pragma once
/// Starting a gated network from float weights (torchvision's `resnet18` or
/// `vgg16_bn` state dicts, as the papers' runs start): every tensor whose
/// name and shape the network shares is copied, the rest is said.

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace dnn_gating::train {

/// What a float-weights import did.
struct FloatImport {
  std::vector<std::string> loaded;   ///< model keys copied from the file
  std::vector<std::string> initial;  ///< model keys the file lacks: their initial values kept
  std::vector<std::string> folded;   ///< convolution biases folded into the BatchNorm after them
  std::vector<std::string>
      unused;  ///< file keys not used ("name [shape] vs [shape]" where shapes differ)
};

/// Copies into `model` every tensor of `state` with the same name and shape.
/// A convolution bias the model has no place for (`features.<i>.bias`, with
/// the BatchNorm `features.<i+1>` after it, as torchvision's VGG) is folded
/// into that BatchNorm's running mean, which computes the same function in
/// evaluation and changes nothing in training. Throws naming `path` when
/// nothing at all matches.
FloatImport import_float_weights(torch::nn::Module& model,
                                 const std::map<std::string, torch::Tensor>& state,
                                 const std::string& path);

/// The lines a job logs about an import: counts, and which tensors kept
/// their initial values or were not used.
std::vector<std::string> float_import_lines(const FloatImport& import, const std::string& path);

}  // namespace dnn_gating::train
