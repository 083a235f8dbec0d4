#pragma once
/// What `--timing` measured: one checkpoint's evaluation of the test split
/// timed as it is (its gated layers skipping closed work) and with the same
/// weights computed densely, as the runner measures it and the report and
/// the metrics file read it.

#include <cstdint>
#include <optional>
#include <string>

namespace dnn_gating::train {

/// The best whole-split pass of each way, and what it ran on.
struct GatingTiming {
  /// Whether the model has gated layers (without, only the gated pass is timed).
  bool has_gates = false;
  /// Seconds of the fastest pass over the split as the model evaluates
  /// (`--skipping`, by default fastest).
  double gated_seconds = 0;
  /// The same with every gated layer computing every output
  /// (Skipping::kNever); 0 without gated layers.
  double dense_seconds = 0;
  int64_t images = 0;
  /// Images each way classified correctly (equal: skipping changes no prediction).
  int64_t gated_correct = 0;
  int64_t dense_correct = 0;
  int64_t batch_size = 0;
  /// Passes timed each way, after one warm-up pass each.
  int repeats = 0;
  /// Whether the times include reading the batches (a split too large to
  /// hold in memory); otherwise the batches were read once beforehand.
  bool includes_loading = false;
  /// Where it ran: "2 threads, avx512 kernels" on the CPU, "cuda:0" on a device.
  std::string machine;

  /// Images per second of the gated and the dense pass.
  double gated_images_per_second() const;
  double dense_images_per_second() const;
  /// Time of the gated pass over the dense pass's.
  double time_ratio() const;
  /// The share of the counted saving that the time saving realises:
  /// (1 - time_ratio()) / (1 - mac_fraction), mac_fraction being the
  /// report's effective over dense MACs; nullopt where that counted saving
  /// is 0 (or less).
  std::optional<double> realisation(double mac_fraction) const;
};

}  // namespace dnn_gating::train
