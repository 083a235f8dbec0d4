#pragma once
/// What a run records: one record per trained epoch and one for the final
/// evaluation. The runner fills them, the metrics files and plots write and
/// read them, and a resumable checkpoint carries the epochs so far.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dnn_gating::train {

/// One epoch of a training run, as written to the metrics files.
struct EpochRecord {
  int64_t epoch = 0;                    ///< 1-based
  double lr = 0;                        ///< learning rate of the epoch's first step
  double train_loss = 0;                ///< mean over the epoch's batches (cross entropy + gating)
  double train_accuracy = 0;            ///< percent
  std::optional<double> test_accuracy;  ///< percent, only on epochs that evaluated
  std::optional<double> sparsity;       ///< update-phase sparsity, percent
  /// Gated layer -> fraction of its outputs that took the update phase
  /// (evaluated epochs; empty otherwise), in the model's layer order.
  std::vector<std::pair<std::string, double>> layer_on_fraction;
  std::optional<double> pg_average_bits;    ///< PG cost figure
  std::optional<double> cg_flop_reduction;  ///< CG cost figure (x)
  double seconds = 0;                       ///< wall time of the epoch
  double images_per_second = 0;             ///< training throughput of the epoch
};

/// The final record: the report of the final evaluation.
struct FinalRecord {
  std::string program;                      ///< "pg-cifar10" or "cg-cifar10"
  int64_t epochs = 0;                       ///< epochs trained (0 for an evaluation-only run)
  int64_t test_images = 0;                  ///< images the evaluation saw
  double test_accuracy = 0;                 ///< percent
  double sparsity = 0;                      ///< update-phase sparsity, percent
  std::optional<double> pg_average_bits;    ///< PG cost figure
  std::optional<double> cg_flop_reduction;  ///< CG cost figure (x)
  /// Gated layer -> on fraction, in the model's layer order.
  std::vector<std::pair<std::string, double>> layer_on_fraction;
  std::vector<std::vector<int64_t>> confusion;  ///< rows: true class, cols: predicted
  std::vector<std::string> class_names;         ///< names of the confusion matrix's classes
  std::string checkpoint;                       ///< "" if none
  /// `--timing`: images per second as evaluated and computed densely (the
  /// dense figure only for a model with gated layers), the gated over the
  /// dense time, effective over dense MACs, and the realisation of that
  /// counted saving (absent where it is 0).
  std::optional<double> timing_gated_images_per_second;
  std::optional<double> timing_dense_images_per_second;
  std::optional<double> timing_time_ratio;
  std::optional<double> timing_mac_fraction;
  std::optional<double> timing_realisation;
};

}  // namespace dnn_gating::train
