#pragma once
/// A member handle to a child module that `gate()` may replace.
///
/// C++ modules call their children through members (`conv1(x)`), so a module
/// swapped in the registry alone would never run. A Slot is such a member
/// whose module `gate()` can change: hold a convolution (or a ReLU to become
/// PACT) in a Slot, register it under its name as usual, and call
/// `slot.forward(x)`. Modules held by a torch::nn::Sequential need no slot.

#include <torch/torch.h>

#include <memory>
#include <stdexcept>

namespace dnn_gating::layers {

/// A child module called through a handle that `gate()` rebinds when it
/// replaces the module. Copies share the handle (a module's clone() that
/// rebuilds its members in reset(), as torch::nn::Cloneable does, gets slots
/// of its own).
class Slot {
 public:
  /// An empty slot (bind it by assigning a Slot holding a module).
  Slot() = default;
  /// A slot holding `module`.
  explicit Slot(torch::nn::AnyModule module);
  /// A slot holding a module holder (torch::nn::Conv2d, PGConv2d, ...).
  template <typename M>
  explicit Slot(const torch::nn::ModuleHolder<M>& holder) : Slot(torch::nn::AnyModule(holder)) {}

  /// The module's forward pass on one tensor.
  torch::Tensor forward(const torch::Tensor& x) {
    if (!cell_) throw std::logic_error("an empty dnn_gating::layers::Slot was called");
    return cell_->forward(x);
  }
  torch::Tensor operator()(const torch::Tensor& x) { return forward(x); }

  /// The module now held (for registering it, or asking what it is).
  std::shared_ptr<torch::nn::Module> ptr() const { return cell_ ? cell_->ptr() : nullptr; }
  /// The module now held as `M`, or null if it is of another class.
  template <typename M>
  std::shared_ptr<M> as() const {
    return std::dynamic_pointer_cast<M>(ptr());
  }
  bool is_empty() const { return cell_ == nullptr; }

 private:
  std::shared_ptr<torch::nn::AnyModule> cell_;
};

}  // namespace dnn_gating::layers
