#include "dnn_gating/io/float_weights.h"

#include <fmt/format.h>

#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace dnn_gating::train {
namespace {

std::string shape(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// "a, b, c and 5 more"
std::string listed(const std::vector<std::string>& names, size_t at_most = 6) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < at_most; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > at_most) out += fmt::format(" and {} more", names.size() - at_most);
  return out;
}

}  // namespace

FloatImport import_float_weights(torch::nn::Module& model,
                                 const std::map<std::string, torch::Tensor>& state,
                                 const std::string& path) {
  torch::NoGradGuard no_grad;
  FloatImport out;
  std::map<std::string, torch::Tensor> mine;
  for (const auto& p : model.named_parameters()) mine[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) mine[b.key()] = b.value();
  std::set<std::string> used;
  for (const auto& [key, tensor] : mine) {
    const auto found = state.find(key);
    if (found == state.end()) {
      out.initial.push_back(key);
    } else if (found->second.sizes() != tensor.sizes()) {
      out.initial.push_back(key);
    } else {
      tensor.copy_(found->second);
      out.loaded.push_back(key);
      used.insert(key);
    }
  }
  // Biases of convolutions followed by a BatchNorm (torchvision's VGG):
  // BN(conv(x) + b) is BN(conv(x)) with the running mean lowered by b.
  const std::regex conv_bias(R"(^(.*\.)(\d+)\.bias$)");
  for (const auto& [key, tensor] : state) {
    if (used.count(key) > 0) continue;
    std::smatch m;
    if (std::regex_match(key, m, conv_bias)) {
      const std::string weight = m[1].str() + m[2].str() + ".weight";
      const std::string mean =
          m[1].str() + std::to_string(std::stoll(m[2].str()) + 1) + ".running_mean";
      const auto w = mine.find(weight), rm = mine.find(mean);
      if (w != mine.end() && w->second.dim() == 4 && rm != mine.end() &&
          rm->second.sizes() == tensor.sizes() && mine.count(key) == 0) {
        rm->second.sub_(tensor.to(rm->second.dtype()));
        out.folded.push_back(key);
        continue;
      }
    }
    const auto own = mine.find(key);
    out.unused.push_back(
        own == mine.end() ? key : key + " " + shape(tensor) + " vs " + shape(own->second));
  }
  if (out.loaded.empty()) {
    throw std::invalid_argument(path +
                                ": no tensor of this state dict has a name and shape of "
                                "the model (expected e.g. torchvision's names: " +
                                listed(out.initial, 3) + ")");
  }
  return out;
}

std::vector<std::string> float_import_lines(const FloatImport& import, const std::string& path) {
  std::vector<std::string> lines{fmt::format(
      "Started from the float weights of {}: {} tensors loaded, {} convolution biases folded into "
      "the BatchNorm after them, {} kept their initial values, {} of the file not used",
      path, import.loaded.size(), import.folded.size(), import.initial.size(),
      import.unused.size())};
  if (!import.initial.empty()) lines.push_back("Initial values kept: " + listed(import.initial));
  if (!import.unused.empty()) lines.push_back("Not used: " + listed(import.unused));
  return lines;
}

}  // namespace dnn_gating::train
