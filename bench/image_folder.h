#pragma once
// The image-folder pipeline at ImageNet's size: JPEG decoding,
// RandomResizedCrop to 224 x 224, flip and normalisation on the loader's
// threads, against the float ResNet-18 training step it must keep busy.
#include <map>
#include <string>

namespace dnn_gating::bench {

/// Registers the pipeline and the ResNet-18 step with Google Benchmark.
void register_image_folder();

/// Prints both as images per second and the pipeline's capacity against the
/// step's demand; nothing when they did not run.
void print_image_folder(const std::map<std::string, double>& times);

}  // namespace dnn_gating::bench
