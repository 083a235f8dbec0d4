#pragma once
// The data a job reads: a split of its dataset, cut to the job's limit, and
// the batches it serves.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dnn_gating/data/batches.h"
#include "dnn_gating/data/image_folder.h"
#include "dnn_gating/data/image_set.h"
#include "dnn_gating/job/config.h"

namespace dnn_gating::train {

/// One split of a job's data: held in memory (CIFAR-10, Fashion-MNIST) or
/// listed from an image folder and decoded batch by batch.
struct SplitData {
  std::string name;  ///< "CIFAR-10", "Fashion-MNIST", "image folder DIR/train"
  int64_t size = 0;
  int64_t channels = 0;
  std::vector<std::string> class_names;
  std::optional<data::ImageSet> images;     ///< in-memory data sets
  std::optional<data::ImageFolder> folder;  ///< --dataset imagefolder
};

/// The `split` of the job's dataset (from its data_dir, or the dataset's
/// default directory; an image folder's `train` and `val`), only `limit`
/// images when limit > 0 (the first ones; of an image folder, spread over
/// its classes). A limit beyond the split is a SettingError of train_limit
/// or test_limit.
SplitData load_split(const JobConfig& config, data::Split split, int64_t limit);

/// The batches of `split` as `options` say (an image folder's at the job's
/// image size, decoded on the job's loader threads: by default this
/// process's share of the cores among `processes`).
std::unique_ptr<data::Batches> make_batches(const JobConfig& config, const SplitData& split,
                                            const data::LoaderOptions& options, int64_t processes);

}  // namespace dnn_gating::train
