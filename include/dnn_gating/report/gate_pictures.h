#pragma once
/// Pictures of what the gates decided for single images: one heatmap per
/// gated layer beside the input image, and an overview of several images.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dnn_gating/job/image_gates.h"
#include "dnn_gating/report/png.h"

namespace dnn_gating::train {

/// The colour of a share in [0, 1] on the maps' scale (viridis: dark violet
/// at 0, yellow at 1); values outside are clamped.
Rgb share_colour(double share);

/// A layer's map at the image's size, row by row: pixel (y, x) takes the
/// share of the position covering it, (y * h / height, x * w / width).
std::vector<double> upsampled(const LayerMap& map, int64_t height, int64_t width);

/// An image (uint8 [C, H, W], 1 or 3 channels) scaled up `scale` times.
Picture image_picture(const torch::Tensor& image, int64_t scale);

/// Where a picture shows an image or a layer's heatmap: image pixel (y, x)
/// covers the `scale` x `scale` square at (x0 + x * scale, y0 + y * scale).
struct Tile {
  std::string layer;  ///< "" for the input image
  int64_t x0 = 0, y0 = 0, scale = 1;
};

/// A picture and where its tiles are.
struct MapPicture {
  Picture picture;
  std::vector<Tile> tiles;
};

/// One image's picture: its index, label, prediction and cost on top, the
/// input, then one heatmap per gated layer (captioned with the layer's name
/// and its on-% for this image), and the colour scale.
MapPicture image_maps_picture(const ImageMaps& maps, const std::vector<std::string>& class_names,
                              int64_t dense_macs);

/// Every image of `maps` in one picture: a row per image, a column per
/// gated layer.
MapPicture maps_overview(const std::vector<ImageMaps>& maps,
                         const std::vector<std::string>& class_names);

/// "cat" for class 3, the number where there is no name.
std::string class_name(const std::vector<std::string>& class_names, int64_t label);

}  // namespace dnn_gating::train
