#pragma once
// torchvision's image transforms on 8-bit RGB images, written straight into
// a normalised float batch: RandomResizedCrop + RandomHorizontalFlip for
// training, Resize + CenterCrop for evaluation. Resampling is bilinear with
// antialiasing as PIL's (a triangle filter widened by the downscale factor).
#include <cstdint>
#include <random>
#include <vector>

#include "dnn_gating/data/image_file.h"

namespace dnn_gating::data {

/// A region of an image, in its pixels.
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

/// torchvision's RandomResizedCrop.get_params: scale 0.08-1 of the area,
/// aspect ratio 3/4-4/3 (log-uniform), ten tries, then the central crop of
/// the nearest allowed ratio.
CropBox random_resized_crop(int64_t height, int64_t width, std::mt19937_64& rng);

/// `box` of `image` resized to size x size, flipped left-right if `flip`,
/// written as (byte/255 - mean[c]) / std[c] into `out` ([3, size, size]).
void resized_crop_into(const RgbImage& image, const CropBox& box, int64_t size, bool flip,
                       const std::vector<float>& mean, const std::vector<float>& std, float* out);

/// Resize(round(size * 256 / 224)) (the shorter side; the longer as
/// torchvision computes it) then CenterCrop(size), into `out` as above.
void resize_center_crop_into(const RgbImage& image, int64_t size, const std::vector<float>& mean,
                             const std::vector<float>& std, float* out);

}  // namespace dnn_gating::data
