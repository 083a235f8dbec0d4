#pragma once
/// A whole training or evaluation job, as the two trainer programs run it.

#include <string>

#include "dnn_gating/job/config.h"

namespace dnn_gating::train {

/// What a finished job measured.
struct JobResult {
  double test_accuracy = 0;
  double sparsity = 0;
  std::string checkpoint_path;  ///< where `-s` saved, "" if not saved
};

/// Loads data and model, trains (unless test_only), saves, evaluates on the
/// whole test split and logs the report. Throws c10::Error / std::exception
/// with one clear message for bad input.
JobResult run_job(const JobConfig& config);

}  // namespace dnn_gating::train
