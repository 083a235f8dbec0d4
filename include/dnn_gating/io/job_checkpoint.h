#pragma once
/// The checkpoints of a job: where it saves them, what their description
/// holds, and how a job takes over the settings of the checkpoint it starts
/// from (`-p`) or continues (`--resume`).

#include <cstdint>
#include <optional>
#include <string>

#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/job/config.h"

namespace dnn_gating::train {

/// Path of the checkpoint a job saves: <save_dir>/model_<network>.pt (network: resnet-<depth>,
/// resnet-18 or vgg-16).
std::string checkpoint_file(const JobConfig& config);

/// Path of a job's resumable checkpoint: <save_dir>/resume_<network>.pt.
std::string resume_file(const JobConfig& config);

/// Where an epoch's training stands, as a resumable checkpoint records it.
struct ResumePoint {
  int64_t epoch = 0;    ///< 0-based epoch to continue
  int64_t batch = 0;    ///< first batch of that epoch still to train
  double loss_sum = 0;  ///< of the epoch's batches so far
  int64_t correct = 0;  ///< right answers of the epoch so far
};

/// The checkpoint a job starts from, read and taken over.
struct JobStart {
  /// The requested job with the checkpoint's model and dataset (and, when
  /// resuming, every training setting); the requested job as it is when
  /// there is no checkpoint.
  JobConfig config;
  /// The file read: the resume path, else the load path ("" for none).
  std::string path;
  /// Its weights (and, when resuming, the training state).
  Checkpoint checkpoint;
  /// Where training continues (resuming only).
  std::optional<ResumePoint> resume;
  /// The metrics JSON-lines text of the epochs trained so far (resuming only).
  std::string history;
};

/// Reads the checkpoint `requested` names and takes over what its
/// description says. Throws naming the file when resuming from a checkpoint
/// that is not resumable, when its description is not JSON, or when
/// explicit settings contradict it (then naming their flags).
JobStart open_job_checkpoint(const JobConfig& requested);

/// The description a finished job's checkpoint carries (JSON text): the
/// program, model, dataset and job settings, the epochs trained and the
/// final test accuracy and sparsity (percent).
std::string final_description(const JobConfig& config, double test_accuracy, double sparsity);

/// The description of a resumable checkpoint (JSON text): the job as in
/// final_description, where training stands and the metrics JSON-lines text
/// of the epochs so far.
std::string resume_description(const JobConfig& config, const ResumePoint& at,
                               const std::string& history);

}  // namespace dnn_gating::train
