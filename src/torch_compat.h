#pragma once
// The one place where the LibTorch versions this project builds against
// (Debian's 1.13 and current 2.x) differ in an API it uses.
#include <torch/optim/optimizer.h>
#include <torch/version.h>

#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

namespace dnn_gating::compat {

/// The key under which torch::optim::Optimizer::state() keeps a parameter's
/// state: the address of its TensorImpl as text in LibTorch 1.x, the address
/// itself in 2.x. Told from the map's key type rather than from
/// TORCH_VERSION_MAJOR, so a release that changes it fails to compile here.
using OptimizerStateKey =
    typename std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;

/// (A template so that only the branch of the version at hand is compiled.)
template <typename Key = OptimizerStateKey>
Key optimizer_state_key(const at::Tensor& parameter) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;  // what c10::guts::to_string, which 2.x removed, wrote
    key << parameter.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(parameter.unsafeGetTensorImpl());
  }
}

/// The LibTorch version as "major.minor.patch".
inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

}  // namespace dnn_gating::compat
