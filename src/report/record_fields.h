#pragma once
// The fields of the run records, each named once: one table per record
// serves the JSON-lines writer and reader, the CSV and the plot (as
// job_meta.cpp's for_each_setting does for a job's settings). Keys are the
// JSON keys, in the order a line lists them.
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>

#include "dnn_gating/job/records.h"

namespace dnn_gating::train {

/// A field that a record's line may leave out (read back as empty).
inline constexpr bool kMayBeAbsent = true;

/// Calls visit(key, field) for every field of an epoch record, in order.
/// Optional numbers are left out of a line where absent.
template <typename Record, typename Visitor>
void for_each_epoch_field(Record& r, Visitor&& visit) {
  visit("epoch", r.epoch);
  visit("lr", r.lr);
  visit("train_loss", r.train_loss);
  visit("train_accuracy", r.train_accuracy);
  visit("test_accuracy", r.test_accuracy);
  visit("sparsity", r.sparsity);
  // Only evaluated epochs measure the gates; an empty object would say "no gates".
  visit("layer_on_fraction", r.layer_on_fraction, kMayBeAbsent);
  visit("pg_average_bits", r.pg_average_bits);
  visit("cg_flop_reduction", r.cg_flop_reduction);
  visit("seconds", r.seconds);
  visit("images_per_second", r.images_per_second);
}

/// Calls visit(key, field) for every field of the final record, in order.
template <typename Record, typename Visitor>
void for_each_final_field(Record& r, Visitor&& visit) {
  visit("program", r.program);
  visit("epochs", r.epochs);
  visit("test_images", r.test_images);
  visit("test_accuracy", r.test_accuracy);
  visit("sparsity", r.sparsity);
  visit("pg_average_bits", r.pg_average_bits);
  visit("cg_flop_reduction", r.cg_flop_reduction);
  visit("layer_on_fraction", r.layer_on_fraction);
  visit("confusion", r.confusion);
  visit("class_names", r.class_names);
  visit("checkpoint", r.checkpoint, kMayBeAbsent);
  visit("timing_gated_images_per_second", r.timing_gated_images_per_second);
  visit("timing_dense_images_per_second", r.timing_dense_images_per_second);
  visit("timing_time_ratio", r.timing_time_ratio);
  visit("timing_mac_fraction", r.timing_mac_fraction);
  visit("timing_realisation", r.timing_realisation);
}

/// Whether an epoch field is one number per epoch (a CSV column, a curve).
template <typename T>
inline constexpr bool kIsScalar = std::is_same_v<T, int64_t> || std::is_same_v<T, double> ||
                                  std::is_same_v<T, std::optional<double>>;

/// A scalar field as an optional number.
template <typename T>
std::optional<double> scalar_value(const T& value) {
  if constexpr (std::is_same_v<T, std::optional<double>>) {
    return value;
  } else {
    return static_cast<double>(value);
  }
}

/// The scalar epoch field `key` of `r` (nullopt where absent or unknown).
inline std::optional<double> epoch_scalar(const EpochRecord& r, std::string_view key) {
  std::optional<double> out;
  for_each_epoch_field(r, [&](std::string_view k, const auto& value, bool = false) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (kIsScalar<T>) {
      if (k == key) out = scalar_value(value);
    }
  });
  return out;
}

}  // namespace dnn_gating::train
