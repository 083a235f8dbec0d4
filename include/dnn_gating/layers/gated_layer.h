#pragma once
/// What every gated layer (PGConv2d, CGConv2d) reports about its gate.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dnn_gating/layers/dense_macs.h"

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

/// What a layer's gate decides.
enum class GateKind {
  kPrecision,  ///< PG: whether an output adds its input's least significant bits
  kChannel,    ///< CG: whether an output sums over all input channels
};

/// How a gated layer computes, in a forward pass without gradients (evaluation,
/// inference), the work that only its open gates need (PG: the LSB
/// contribution; CG: the channels outside the base path). Training always
/// computes every output, since the gate's gradient needs them. CG layers
/// whose input groups have fewer than 16 channels compute their full and
/// partial sums together in one pass (the library has no faster base path
/// for them), so there every mode runs that pass.
enum class Skipping {
  /// Whichever of the two below is faster at the layer's shape and the
  /// pass's on-fraction, as timed on the layer's own passes in this process.
  kFastest,
  /// Every output in full, then the gate selects (what the original does).
  kNever,
  /// Only the open outputs.
  kAlways,
};

/// "fastest", "never", "always".
std::string to_string(Skipping skipping);
/// The inverse of to_string; throws SettingError (of `skipping`) naming
/// the accepted names.
Skipping skipping_from_string(const std::string& name);
/// Writes to_string(skipping).
std::ostream& operator<<(std::ostream& out, Skipping skipping);

/// The instruction-set level the gated layers' own kernels run at in this
/// process ("avx512", "avx2" or "baseline", as the environment variable
/// DNN_GATING_MAX_ISA that caps it names them).
std::string kernel_level();

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

/// How a gated layer's forward pass computed its outputs (what `Skipping`
/// chose, or the one-pass kernel).
enum class InferenceWay {
  /// Every output in full, then the gate selects (training, `kNever`, and
  /// `kFastest` where that was measured faster).
  kEveryOutput,
  /// The part every output needs, then the rest only at open outputs.
  kOpenOutputs,
  /// CG: full and partial sums in one pass of its own kernel, every product
  /// computed once, the gate decided and applied in the same pass.
  kOnePass,
  /// CG: the partial sums and the gates in one pass of its own kernel, then
  /// the rest of each sum only over tiles of positions of one channel that
  /// hold an open gate (kernels/tile_conv.h).
  kOpenTiles,
};

/// Mixin of a gated convolution: its gate kind and learned threshold,
/// counters of the last forward pass and their sum since `reset_counts()`,
/// and (from CountsMacs) the layer's dense cost per image. On the CPU a
/// forward pass counts its open gates at once; on another device (CUDA) the
/// count stays there, summed by the device, and is read when
/// `last_counts()` or `total_counts()` asks for it, so a forward pass never
/// waits for the device.
class GatedLayer : public CountsMacs {
 public:
  /// What the gate decides.
  virtual GateKind gate_kind() const = 0;
  /// The learned per-output-channel threshold [1, C_out, 1, 1] (the
  /// parameter `threshold` of the state dict), which the gating loss pulls
  /// towards its target and which takes no weight decay.
  const torch::Tensor& threshold() const { return threshold_; }
  /// Makes the layer compute with `threshold` (of the same shape) instead
  /// of the tensor it registered, e.g. one that a Python module holds (the
  /// PyTorch extension's layers do, so that gradients reach Python's
  /// parameter); the layer's own state dict keeps the registered tensor.
  void compute_with_threshold(torch::Tensor threshold);

  /// Counters of the last forward pass (SPEC: num_out, num_high / num_full).
  /// Reads a count still on the device (one synchronising read).
  const GateCounts& last_counts() const;
  /// Counters summed over every forward pass since the last reset. Reads
  /// the sum still on the device (one synchronising read).
  const GateCounts& total_counts() const;
  /// Clears the running sums (the trainer does this before each evaluation).
  void reset_counts();
  /// The layer's cost model.
  virtual GateCost gate_cost() const = 0;
  /// How the layer computes without gradients (its options' `skipping`).
  virtual Skipping skipping() const = 0;
  virtual void set_skipping(Skipping skipping) = 0;
  /// How the last forward pass computed its outputs.
  InferenceWay last_way() const { return last_way_; }

  /// Whether forward passes keep their gate decisions for `last_decisions()`
  /// (off by default: keeping them costs memory and, on some ways, a pass
  /// over the gate's input). Keeping changes no output and no count.
  void keep_decisions(bool keep);
  bool keeps_decisions() const { return keep_decisions_; }
  /// The gate decisions of the last forward pass, uint8 [N, C_out, H, W]
  /// (1 = on, the outputs `last_counts()` counted as num_on), in any memory
  /// format; undefined unless keep_decisions(true) was set before that pass.
  const torch::Tensor& last_decisions() const { return last_decisions_; }

 protected:
  /// Keeps `decisions` (any tensor of the output's shape, nonzero = on) as
  /// last_decisions() if this layer keeps decisions.
  void record_decisions(const torch::Tensor& decisions);
  /// Keeps (if this layer keeps decisions) the decisions of its gate on a
  /// float `gate_input` (PG: the MSB output; CG: bn(partial)), decided as
  /// every way of computing the layer decides them.
  void record_decisions_of(const torch::Tensor& gate_input, double alpha);
  /// A uint8 tensor for a kernel to write the decisions of an output of
  /// `shape` into (channels-last), or undefined if decisions are not kept.
  torch::Tensor decisions_buffer(torch::IntArrayRef shape);

  /// Records the gate `mask` [N, C_out, H, W] (1 = on) of one forward pass
  /// of a convolution with `weight`.
  void record_gate(const torch::Tensor& mask, const torch::Tensor& weight);
  /// The same from a count: `num_on` open gates among outputs of `shape`.
  void record_gate(int64_t num_on, torch::IntArrayRef shape, const torch::Tensor& weight);

  void record_way(InferenceWay way) { last_way_ = way; }

  /// The on-fraction of the previous forward pass if its output had `shape`,
  /// else -1.
  double previous_on_fraction(torch::IntArrayRef shape) const;

  /// Set by the layer when it registers its `threshold` parameter.
  torch::Tensor threshold_;

 private:
  // Counts read so far; on a device, the open gates not yet read are held in
  // the 0-dim int64 tensors below (undefined when nothing is pending).
  mutable GateCounts last_;
  mutable GateCounts total_;
  mutable torch::Tensor pending_last_on_;
  mutable torch::Tensor pending_total_on_;
  InferenceWay last_way_ = InferenceWay::kEveryOutput;
  bool keep_decisions_ = false;
  torch::Tensor last_decisions_;
};

/// Every gated layer of a module tree with its state-dict prefix (e.g.
/// `layer2.0.conv1`), in registration order.
std::vector<std::pair<std::string, GatedLayer*>> gated_layers(torch::nn::Module& root);

/// Sum of the running counters of every gated layer in the tree.
GateCounts total_counts(torch::nn::Module& root);
/// Calls reset_counts() on every gated layer in the tree.
void reset_counts(torch::nn::Module& root);
/// Calls keep_decisions(keep) on every gated layer in the tree.
void keep_decisions(torch::nn::Module& root, bool keep);
/// Sets how every gated layer in the tree computes without gradients.
void set_skipping(torch::nn::Module& root, Skipping skipping);

}  // namespace dnn_gating::layers
