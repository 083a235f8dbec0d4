#pragma once
/// A job's training settings as JSON text, so that a resumable checkpoint
/// carries everything needed to continue the run. The keys are the settings'
/// names as the trainers' flags refer to them (`epochs`, `batch_size`, `lr`,
/// `gtarget`, ...); the model is described separately (model_meta.h).

#include <string>
#include <vector>

#include "dnn_gating/job/config.h"

namespace dnn_gating::train {

/// JSON object of the job's settings (program, data, schedule, recipe, outputs).
std::string job_to_json(const JobConfig& job);

/// `job` with the settings of a job_to_json description; keys absent keep
/// their value. Throws naming the key that has the wrong type.
JobConfig job_from_json(const std::string& json, JobConfig job);

/// Names of the settings whose values differ between two jobs.
std::vector<std::string> differing_job_settings(const JobConfig& a, const JobConfig& b);

}  // namespace dnn_gating::train
