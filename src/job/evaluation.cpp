#include "dnn_gating/job/evaluation.h"

namespace dnn_gating::train {

double Evaluation::accuracy() const {
  return images == 0 ? 0.0 : 100.0 * static_cast<double>(correct) / static_cast<double>(images);
}

double Evaluation::sparsity() const {
  layers::GateCounts sum;
  for (const auto& layer : layers) sum += layer.counts;
  return sum.num_out == 0 ? 0.0 : 100.0 - 100.0 * sum.on_fraction();
}

}  // namespace dnn_gating::train
