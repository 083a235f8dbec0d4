#pragma once
// What the benchmarks feed the models: 32x32 crops of natural photographs
// (those python3-skimage ships), or uniform noise. Photographs matter: a
// kernel whose speed depends on the data showed its slow path on natural
// images and on noise, never on Fashion-MNIST's flat black background.
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace dnn_gating::bench {

/// The input the benchmarks time, from DNN_GATING_BENCH_INPUT: "photos"
/// (the default) or "noise".
std::string input_kind();

/// n images [n, 3, 32, 32], normalised with the CIFAR-10 trainers' mean and
/// standard deviation: crops of the photographs in DNN_GATING_PHOTO_DIR
/// (default: python3-skimage's data folder), each photograph first reduced
/// 2, 4 or 8 times (box filter) so that objects span a crop as in CIFAR-10;
/// or standard normal noise. The same `seed` gives the same batch. Throws
/// naming the folder where photographs are wanted and none is found.
torch::Tensor input_images(int64_t n, uint64_t seed);

}  // namespace dnn_gating::bench
