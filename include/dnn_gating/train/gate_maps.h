#pragma once
/// The files of `--maps DIR`: what the gates decided, image by image.

#include <string>
#include <vector>

#include "dnn_gating/data/image_set.h"
#include "dnn_gating/job/config.h"
#include "dnn_gating/job/evaluation.h"
#include "dnn_gating/train/gate_recorder.h"

namespace dnn_gating::train {

/// The indices of the test images a job draws maps of: `map_images` as
/// given, or the first `map_image_count`; throws SettingError (of
/// `map_images`) for an index outside a split of `test_images`.
std::vector<int64_t> map_image_indices(const JobConfig& config, int64_t test_images);

/// Writes into `dir`: image_<index>.png (the input and one heatmap per gated
/// layer), overview.png (every chosen image), image_costs.csv (every test
/// image), image_costs_histogram.png and image_costs_extremes.png (the 8
/// cheapest and most expensive images). Returns the lines the report prints.
std::vector<std::string> write_gate_maps(const std::string& dir, const GateRecorder& recorder,
                                         const Evaluation& evaluation,
                                         const data::ImageSet& test_set,
                                         const std::string& model_title);

}  // namespace dnn_gating::train
