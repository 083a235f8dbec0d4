#include "dnn_gating/train/report.h"

#include <cstdio>

namespace dnn_gating::train {
namespace {

template <typename... Args>
std::string format(const char* fmt, Args... args) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, fmt, args...);
  return buffer;
}

}  // namespace

CostFigures cost_figures(const Evaluation& evaluation, int64_t dense_macs) {
  CostFigures out;
  out.sparsity = evaluation.sparsity();
  out.dense_macs = dense_macs;
  double gated_dense = 0, gated_effective = 0, pg_macs = 0, pg_bits = 0;
  for (const auto& layer : evaluation.layers) {
    const double f = layer.counts.on_fraction();
    const double macs = static_cast<double>(layer.dense_macs_per_image);
    gated_dense += macs;
    gated_effective += macs * layer.cost.cost_fraction(f);
    if (layer.cost.full_bits > 0) {
      out.has_pg = true;
      out.pg_full_bits = layer.cost.full_bits;
      pg_macs += macs;
      pg_bits += macs * layer.cost.full_bits * layer.cost.cost_fraction(f);
    } else {
      out.has_cg = true;
    }
  }
  out.effective_macs = static_cast<double>(dense_macs) - gated_dense + gated_effective;
  if (pg_macs > 0) out.pg_average_bits = pg_bits / pg_macs;
  if (out.effective_macs > 0) out.cg_flop_reduction = static_cast<double>(dense_macs) / out.effective_macs;
  return out;
}

std::vector<std::string> accuracy_lines(const Evaluation& evaluation,
                                        const std::vector<std::string>& class_names) {
  std::vector<std::string> lines;
  lines.push_back(format("Accuracy of the network on the %lld test images: %.1f %%",
                         static_cast<long long>(evaluation.images), evaluation.accuracy()));
  lines.push_back(format("Sparsity of the update phase: %.1f %%", evaluation.sparsity()));
  for (size_t c = 0; c < evaluation.class_total.size(); ++c) {
    const double total = static_cast<double>(evaluation.class_total[c]);
    const double acc = total == 0 ? 0.0 : 100.0 * evaluation.class_correct[c] / total;
    const std::string name = c < class_names.size() ? class_names[c] : std::to_string(c);
    lines.push_back(format("Accuracy of %5s : %.1f %%", name.c_str(), acc));
  }
  return lines;
}

std::vector<std::string> gate_report_lines(const Evaluation& evaluation, const CostFigures& costs) {
  std::vector<std::string> lines;
  if (evaluation.layers.empty()) return lines;
  lines.push_back(format("%-16s %12s %7s %12s %14s", "gated layer", "positions", "on %",
                         "dense MACs", "effective MACs"));
  for (const auto& layer : evaluation.layers) {
    const double f = layer.counts.on_fraction();
    lines.push_back(format("%-16s %12lld %7.2f %12lld %14.0f", layer.name.c_str(),
                           static_cast<long long>(layer.counts.num_out), 100.0 * f,
                           static_cast<long long>(layer.dense_macs_per_image),
                           layer.dense_macs_per_image * layer.cost.cost_fraction(f)));
  }
  lines.push_back(format("Dense MACs per image: %lld, effective: %.0f (gate overhead not counted)",
                         static_cast<long long>(costs.dense_macs), costs.effective_macs));
  if (costs.has_pg) {
    lines.push_back(format("PG average activation bits: %.2f (of %lld)", costs.pg_average_bits,
                           static_cast<long long>(costs.pg_full_bits)));
  }
  if (costs.has_cg) {
    lines.push_back(format("CG FLOP reduction: %.2fx (gate overhead not counted)",
                           costs.cg_flop_reduction));
  }
  return lines;
}

}  // namespace dnn_gating::train
