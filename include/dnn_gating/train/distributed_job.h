#pragma once
/// How a job shares its work among the processes of a data-parallel run:
/// rank 0 writes and prints, every rank trains on its share of each batch
/// and evaluates every world_size-th batch, and the counts behind every
/// figure are summed so that the report equals a single process's.

#include <torch/torch.h>

#include "dnn_gating/io/job_checkpoint.h"
#include "dnn_gating/job/config.h"
#include "dnn_gating/job/evaluation.h"
#include "dnn_gating/train/distributed.h"

namespace dnn_gating::train {

/// The job as this rank runs it: on ranks other than 0 without outputs
/// (checkpoints, metrics, plots, export), quiet, and logging warnings only.
/// Throws SettingError when the batch does not divide among the ranks, and
/// for a CUDA device in a run of more than one process.
JobConfig for_this_rank(const Distributed& dist, JobConfig config);

/// Throws SettingError (of batch_size) when the training split's last batch
/// of `images` would leave a process without an image (fewer images than
/// processes): every process needs a share of every batch.
void check_last_batch(const Distributed& dist, int64_t images, int64_t batch_size);

/// Makes an evaluation of this rank's share of a split (evaluate with
/// part = rank, parts = world_size) the whole split's: every count summed
/// over ranks.
void sum_over_ranks(const Distributed& dist, Evaluation& evaluation);

/// The epoch's loss sum and right answers so far, summed over ranks.
void sum_over_ranks(const Distributed& dist, ResumePoint& position);

/// Throws unless `model`'s parameters and buffers are bit for bit the same
/// on every rank (as they must be after training); logs the checksum.
void check_ranks_agree(const Distributed& dist, torch::nn::Module& model);

}  // namespace dnn_gating::train
