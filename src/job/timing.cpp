#include "dnn_gating/job/timing.h"

namespace dnn_gating::train {

double GatingTiming::gated_images_per_second() const {
  return gated_seconds > 0 ? static_cast<double>(images) / gated_seconds : 0.0;
}

double GatingTiming::dense_images_per_second() const {
  return dense_seconds > 0 ? static_cast<double>(images) / dense_seconds : 0.0;
}

double GatingTiming::time_ratio() const {
  return dense_seconds > 0 ? gated_seconds / dense_seconds : 1.0;
}

std::optional<double> GatingTiming::realisation(double mac_fraction) const {
  const double counted_saving = 1.0 - mac_fraction;
  if (!(counted_saving > 0)) return std::nullopt;
  return (1.0 - time_ratio()) / counted_saving;
}

}  // namespace dnn_gating::train
