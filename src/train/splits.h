#pragma once
// The data a job reads: a split of its dataset, cut to the job's limit.
#include <cstdint>

#include "dnn_gating/data/image_set.h"
#include "dnn_gating/job/config.h"

namespace dnn_gating::train {

/// The `split` of the job's dataset (from its data_dir, or the dataset's
/// default directory), only its first `limit` images when limit > 0. A limit
/// beyond the split is a SettingError of train_limit or test_limit.
data::ImageSet load_split(const JobConfig& config, data::Split split, int64_t limit);

}  // namespace dnn_gating::train
