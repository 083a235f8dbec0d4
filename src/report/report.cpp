#include "dnn_gating/report/report.h"

#include <fmt/format.h>

#include <cmath>
#include <numeric>
#include <optional>

namespace dnn_gating::train {

CostFigures cost_figures(const Evaluation& evaluation) {
  CostFigures out;
  out.sparsity = evaluation.sparsity();
  out.dense_macs = evaluation.dense_macs;
  double pg_macs = 0, pg_bits = 0;
  for (const auto& layer : evaluation.layers) {
    const double f = layer.counts.on_fraction();
    const double macs = static_cast<double>(layer.dense_macs_per_image);
    if (layer.kind == layers::GateKind::kPrecision) {
      out.has_pg = true;
      out.pg_full_bits = layer.cost.full_bits;
      pg_macs += macs;
      pg_bits += macs * layer.cost.full_bits * layer.cost.cost_fraction(f);
    } else {
      out.has_cg = true;
    }
  }
  const double dense = static_cast<double>(out.dense_macs);
  out.effective_macs = evaluation.effective_macs();
  if (pg_macs > 0) out.pg_average_bits = pg_bits / pg_macs;
  if (out.effective_macs > 0) out.cg_flop_reduction = dense / out.effective_macs;
  return out;
}

std::vector<std::string> accuracy_lines(int64_t images, double accuracy, double sparsity,
                                        const std::vector<std::vector<int64_t>>& confusion,
                                        const std::vector<std::string>& class_names) {
  std::vector<std::string> lines{
      fmt::format("Accuracy of the network on the {} test images: {:.1f} %", images, accuracy),
      fmt::format("Sparsity of the update phase: {:.1f} %", sparsity)};
  for (size_t c = 0; c < confusion.size(); ++c) {
    const int64_t total = std::accumulate(confusion[c].begin(), confusion[c].end(), int64_t{0});
    const int64_t right = c < confusion[c].size() ? confusion[c][c] : 0;
    const double percent =
        total == 0 ? 0.0 : 100.0 * static_cast<double>(right) / static_cast<double>(total);
    const std::string name = c < class_names.size() ? class_names[c] : std::to_string(c);
    lines.push_back(fmt::format("Accuracy of {:>5} : {:.1f} %", name, percent));
  }
  return lines;
}

std::vector<std::string> accuracy_lines(const Evaluation& evaluation,
                                        const std::vector<std::string>& class_names) {
  return accuracy_lines(evaluation.images, evaluation.accuracy(), evaluation.sparsity(),
                        evaluation.confusion, class_names);
}

std::vector<std::string> gate_report_lines(const Evaluation& evaluation, const CostFigures& costs) {
  std::vector<std::string> lines;
  if (evaluation.layers.empty()) return lines;
  lines.push_back(fmt::format("{:<16} {:>12} {:>7} {:>12} {:>14}", "gated layer", "positions",
                              "on %", "dense MACs", "effective MACs"));
  for (const auto& layer : evaluation.layers) {
    const double f = layer.counts.on_fraction();
    lines.push_back(fmt::format("{:<16} {:>12} {:>7.2f} {:>12} {:>14.0f}", layer.name,
                                layer.counts.num_out, 100.0 * f, layer.dense_macs_per_image,
                                layer.dense_macs_per_image * layer.cost.cost_fraction(f)));
  }
  lines.push_back(
      fmt::format("Dense MACs per image: {}, effective: {:.0f} (gate overhead not counted)",
                  costs.dense_macs, costs.effective_macs));
  if (costs.has_pg) {
    lines.push_back(fmt::format("PG average activation bits: {:.2f} (of {})", costs.pg_average_bits,
                                costs.pg_full_bits));
  }
  if (costs.has_cg) {
    lines.push_back(fmt::format("CG FLOP reduction: {:.2f}x (gate overhead not counted)",
                                costs.cg_flop_reduction));
  }
  return lines;
}

std::vector<std::string> timing_lines(const GatingTiming& timing, const CostFigures& costs) {
  if (!timing.has_gates) {
    return {
        fmt::format("timing: gated {:.0f} img/s (batch {}, {}); no gated layers: nothing to skip",
                    timing.gated_images_per_second(), timing.batch_size, timing.machine)};
  }
  const auto accuracy = [&](int64_t correct) {
    return timing.images == 0
               ? 0.0
               : 100.0 * static_cast<double>(correct) / static_cast<double>(timing.images);
  };
  const std::optional<double> realisation = timing.realisation(costs.mac_fraction());
  // Whole percent, without a "-0".
  const double realised_percent = realisation ? std::round(100.0 * *realisation) + 0.0 : 0.0;
  return {
      fmt::format("timing: gated {:.0f} img/s, dense {:.0f} img/s, gated/dense time {:.2f}x "
                  "(batch {}, {})",
                  timing.gated_images_per_second(), timing.dense_images_per_second(),
                  timing.time_ratio(), timing.batch_size, timing.machine),
      fmt::format("timing: accuracy gated {:.2f} %, dense {:.2f} % over {} test images; best of "
                  "{} passes each, data loading {}",
                  accuracy(timing.gated_correct), accuracy(timing.dense_correct), timing.images,
                  timing.repeats, timing.includes_loading ? "included" : "excluded"),
      fmt::format("floor: effective/dense MACs {:.2f} (the least the gated model can cost); {}",
                  costs.mac_fraction(),
                  realisation ? fmt::format("realisation {:.0f}% of the counted saving turned "
                                            "into time",
                                            realised_percent)
                              : std::string("realisation n/a (the counted saving is 0)")),
  };
}

}  // namespace dnn_gating::train
