#pragma once
/// What every gated layer (PGConv2d, CGConv2d) reports about its gate.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dnn_gating::layers {

/// Gate decisions: output positions evaluated and how many took the
/// expensive path (PG: high precision; CG: the full convolution).
struct GateCounts {
  int64_t num_out = 0;
  int64_t num_on = 0;

  GateCounts& operator+=(const GateCounts& other) {
    num_out += other.num_out;
    num_on += other.num_on;
    return *this;
  }
  /// num_on / num_out (0 when nothing was counted).
  double on_fraction() const {
    return num_out == 0 ? 0.0 : static_cast<double>(num_on) / static_cast<double>(num_out);
  }
};

/// How a gated layer's cost depends on its gate: a `base_fraction` of the
/// dense cost is always paid, the rest only where the gate is on. PG:
/// pred_bits / abits of the bit-serial cost (full_bits = abits); CG: 1/p of
/// the multiply-accumulates (full_bits = 0).
struct GateCost {
  double base_fraction = 0;
  int64_t full_bits = 0;

  /// Fraction of the dense cost paid at on-fraction f.
  double cost_fraction(double f) const { return base_fraction + (1.0 - base_fraction) * f; }
};

/// Mixin of a gated convolution: counters of the last forward pass and their
/// sum since `reset_counts()`, and the layer's dense cost per image.
class GatedLayer {
 public:
  virtual ~GatedLayer() = default;

  /// Counters of the last forward pass (SPEC: num_out, num_high / num_full).
  const GateCounts& last_counts() const { return last_; }
  /// Counters summed over every forward pass since the last reset.
  const GateCounts& total_counts() const { return total_; }
  /// Clears the running sums (the trainer does this before each evaluation).
  void reset_counts() { total_ = GateCounts{}; }
  /// Dense multiply-accumulates per image of the last forward (0 before any).
  int64_t dense_macs_per_image() const { return dense_macs_; }
  /// The layer's cost model.
  virtual GateCost gate_cost() const = 0;

 protected:
  /// Records the gate `mask` [N, C_out, H, W] (1 = on) of one forward pass; the
  /// dense cost per image is C_out * H * W * in_channels_per_group * kernel_elements.
  void record_gate(const torch::Tensor& mask, int64_t in_channels_per_group,
                   int64_t kernel_elements);
  /// The same from a count: `num_on` open gates among outputs of `shape`.
  void record_gate(int64_t num_on, torch::IntArrayRef shape, int64_t in_channels_per_group,
                   int64_t kernel_elements);

 private:
  GateCounts last_;
  GateCounts total_;
  int64_t dense_macs_ = 0;
};

/// Every gated layer of a module tree with its state-dict prefix (e.g.
/// `layer2.0.conv1`), in registration order.
std::vector<std::pair<std::string, GatedLayer*>> gated_layers(torch::nn::Module& root);

/// Sum of the running counters of every gated layer in the tree.
GateCounts total_counts(torch::nn::Module& root);
/// Calls reset_counts() on every gated layer in the tree.
void reset_counts(torch::nn::Module& root);

}  // namespace dnn_gating::layers
