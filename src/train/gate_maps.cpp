#include "dnn_gating/train/gate_maps.h"

#include <fmt/format.h>

#include <filesystem>

#include "dnn_gating/io/atomic_file.h"
#include "dnn_gating/report/gate_pictures.h"
#include "dnn_gating/report/image_costs.h"
#include "dnn_gating/report/png.h"
#include "dnn_gating/setting_error.h"

namespace dnn_gating::train {

std::vector<int64_t> map_image_indices(const JobConfig& config, int64_t test_images) {
  std::vector<int64_t> out = config.map_images;
  if (out.empty()) {
    for (int64_t i = 0; i < std::min(config.map_image_count, test_images); ++i) out.push_back(i);
  }
  for (const int64_t index : out) {
    if (index < 0 || index >= test_images) {
      throw SettingError("map_images", "{map_images}: test image " + std::to_string(index) +
                                           " does not exist (the test split has " +
                                           std::to_string(test_images) + " images: 0 to " +
                                           std::to_string(test_images - 1) + ")");
    }
  }
  return out;
}

std::vector<std::string> write_gate_maps(const std::string& dir, const GateRecorder& recorder,
                                         const Evaluation& evaluation,
                                         const data::ImageSet& test_set,
                                         const std::string& model_title) {
  namespace fs = std::filesystem;
  const auto path = [&dir](const std::string& name) { return (fs::path(dir) / name).string(); };
  const std::vector<ImageMaps> maps = recorder.maps(evaluation);
  for (const ImageMaps& m : maps) {
    write_png(path(fmt::format("image_{}.png", m.cost.index)),
              image_maps_picture(m, test_set.class_names, evaluation.dense_macs).picture,
              "gate map");
  }
  write_png(path("overview.png"), maps_overview(maps, test_set.class_names).picture,
            "gate map overview");
  const std::vector<ImageCost> costs = recorder.costs(evaluation);
  write_file_atomically(path("image_costs.csv"),
                        image_costs_csv(costs, evaluation, test_set.class_names),
                        "per-image cost table");
  write_png(path("image_costs_histogram.png"),
            cost_histogram(costs, evaluation.dense_macs,
                           fmt::format("{}: effective MACs of {} {} test images", model_title,
                                       costs.size(), test_set.name)),
            "per-image cost histogram");
  write_png(path("image_costs_extremes.png"),
            cost_extremes(costs, test_set.images, test_set.class_names), "image grid");
  std::vector<std::string> lines = image_cost_lines(summarise(costs), evaluation.dense_macs);
  lines.push_back(fmt::format(
      "Wrote the gate maps of {} test images to {} (overview.png, image_<index>.png) and every "
      "image's cost to {}",
      maps.size(), dir, path("image_costs.csv")));
  return lines;
}

}  // namespace dnn_gating::train
