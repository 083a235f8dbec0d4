#pragma once
/// The text a job prints after an evaluation: the original's accuracy,
/// sparsity and per-class lines, then the per-layer gate table and the cost
/// figures (average activation bits for PG, FLOP reduction for CG).

#include <string>
#include <vector>

#include "dnn_gating/job/evaluation.h"
#include "dnn_gating/job/timing.h"

namespace dnn_gating::train {

/// Model-level cost figures of an evaluation.
struct CostFigures {
  double sparsity = 0;        ///< update-phase sparsity, percent
  int64_t dense_macs = 0;     ///< whole network, per image
  double effective_macs = 0;  ///< ungated layers + sum over gated layers of C_l
  bool has_pg = false;
  double pg_average_bits = 0;  ///< sum(F_l B_l) / sum(F_l) over PG layers
  int64_t pg_full_bits = 0;    ///< abits of the PG layers
  bool has_cg = false;
  double cg_flop_reduction = 1;  ///< dense_macs / effective_macs

  /// effective_macs / dense_macs: the least share of the dense cost the
  /// gated model can take (1 for an empty network).
  double mac_fraction() const {
    return dense_macs > 0 ? effective_macs / static_cast<double>(dense_macs) : 1.0;
  }
};

/// Cost figures of `evaluation` (its layers' counts and the network's dense MACs).
CostFigures cost_figures(const Evaluation& evaluation);

/// The original's final lines that log parsers rely on, exactly: accuracy
/// over N test images, sparsity of the update phase, then
/// `Accuracy of <class> : x %` per class (from the confusion matrix, rows:
/// true class). Accuracy and sparsity in percent.
std::vector<std::string> accuracy_lines(int64_t images, double accuracy, double sparsity,
                                        const std::vector<std::vector<int64_t>>& confusion,
                                        const std::vector<std::string>& class_names);
/// The same lines for an evaluation.
std::vector<std::string> accuracy_lines(const Evaluation& evaluation,
                                        const std::vector<std::string>& class_names);

/// Per-layer table (name, positions, on %, dense MACs, effective MACs) and
/// the model figures; empty for a model without gates.
std::vector<std::string> gate_report_lines(const Evaluation& evaluation, const CostFigures& costs);

/// `--timing`'s lines, after the report: each way's images per second, the
/// gated over the dense time and where it ran; both ways' accuracy; the
/// floor (effective over dense MACs) and the realisation of that counted
/// saving. A model without gates gets one line, its time.
std::vector<std::string> timing_lines(const GatingTiming& timing, const CostFigures& costs);

}  // namespace dnn_gating::train
