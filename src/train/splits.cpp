#include "train/splits.h"

#include <spdlog/spdlog.h>

#include <string>

#include "dnn_gating/setting_error.h"

namespace dnn_gating::train {

data::ImageSet load_split(const JobConfig& config, data::Split split, int64_t limit) {
  const std::string dir =
      config.data_dir.empty() ? default_data_dir(config.dataset) : config.data_dir;
  data::ImageSet set = data::read_dataset(config.dataset, dir, split);
  const bool train = split == data::Split::kTrain;
  if (limit > set.size()) {
    const std::string setting = train ? "train_limit" : "test_limit";
    throw SettingError(setting, "{" + setting + "} " + std::to_string(limit) + " exceeds the " +
                                    (train ? "training" : "test") + " split of " + set.name + " (" +
                                    std::to_string(set.size()) + " images)");
  }
  if (limit > 0 && limit < set.size()) {
    spdlog::info("Using the first {} of {} {} images", limit, set.size(),
                 train ? "training" : "test");
    set = set.first(limit);
  }
  return set;
}

}  // namespace dnn_gating::train
