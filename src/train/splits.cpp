#include "train/splits.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <thread>

#include "dnn_gating/data/folder_loader.h"
#include "dnn_gating/data/loader.h"
#include "dnn_gating/setting_error.h"

namespace dnn_gating::train {
namespace {

SplitData folder_split(const JobConfig& config, data::Split split) {
  check_setting(!config.data_dir.empty(), "data_dir",
                "--dataset imagefolder needs {data_dir} DIR (DIR/train/<class>/<image>, "
                "DIR/val/<class>/<image>)");
  const std::string root =
      (std::filesystem::path(config.data_dir) / (split == data::Split::kTrain ? "train" : "val"))
          .string();
  SplitData out;
  out.folder = data::scan_image_folder(root);
  out.name = "image folder " + root;
  out.size = out.folder->size();
  out.channels = 3;
  out.class_names = out.folder->class_names;
  return out;
}

SplitData memory_split(const JobConfig& config, data::Split split) {
  check_setting(config.image_size == 0, "image_size",
                "{image_size} sizes the images of an image folder; " + config.dataset +
                    " has images of its own size");
  for (const char* setting : {"bad_images", "loader_threads"}) {
    check_setting(config.explicit_settings.count(setting) == 0, setting,
                  std::string("{") + setting +
                      "} is for image folders (--dataset imagefolder), not " + config.dataset);
  }
  const std::string dir =
      config.data_dir.empty() ? default_data_dir(config.dataset) : config.data_dir;
  SplitData out;
  out.images = data::read_dataset(config.dataset, dir, split);
  out.name = out.images->name;
  out.size = out.images->size();
  out.channels = out.images->channels();
  out.class_names = out.images->class_names;
  return out;
}

}  // namespace

SplitData load_split(const JobConfig& config, data::Split split, int64_t limit) {
  SplitData set =
      config.dataset == "imagefolder" ? folder_split(config, split) : memory_split(config, split);
  const bool train = split == data::Split::kTrain;
  if (limit > set.size) {
    const std::string setting = train ? "train_limit" : "test_limit";
    throw SettingError(setting, "{" + setting + "} " + std::to_string(limit) + " exceeds the " +
                                    (train ? "training" : "test") + " split of " + set.name + " (" +
                                    std::to_string(set.size) + " images)");
  }
  if (limit > 0 && limit < set.size) {
    spdlog::info("Using {} {} of {} {} images", set.folder ? "" : "the first", limit, set.size,
                 train ? "training" : "test");
    if (set.images) set.images = set.images->first(limit);
    if (set.folder) set.folder = set.folder->spread(limit);
    set.size = limit;
  }
  return set;
}

std::unique_ptr<data::Batches> make_batches(const JobConfig& config, const SplitData& split,
                                            const data::LoaderOptions& options, int64_t processes) {
  if (split.images) return std::make_unique<data::BatchLoader>(*split.images, options);
  // The processes of a data-parallel run on one machine share its cores.
  const int64_t cores =
      std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  return std::make_unique<data::FolderLoader>(
      *split.folder, options,
      data::FolderOptions()
          .image_size(config.image_size > 0 ? config.image_size : 224)
          .threads(config.loader_threads > 0 ? config.loader_threads
                                             : std::max<int64_t>(1, cores / processes))
          .bad_images(config.bad_images == "skip" ? data::BadImages::kSkip
                                                  : data::BadImages::kRefuse)
          .on_skipped([](const std::string& message) { spdlog::warn("{}", message); }));
}

}  // namespace dnn_gating::train
