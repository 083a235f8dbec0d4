#pragma once
// PNG files of every colour type for the tests (the report's writer makes
// 8-bit RGB only): samples as the PNG stores them, through libpng.
#include <cstdint>
#include <string>
#include <vector>

namespace dnn_gating::testing {

/// PNG colour types, numbered as the format numbers them.
enum class PngColour { kGrey = 0, kRgb = 2, kPalette = 3, kGreyAlpha = 4, kRgba = 6 };

/// What a PNG file holds besides its samples.
struct PngLayout {
  int width = 0;
  int height = 0;
  PngColour colour = PngColour::kRgb;
  int bit_depth = 8;                  ///< 1, 2, 4, 8 or 16 as the colour type allows
  bool interlaced = false;            ///< Adam7
  std::vector<uint8_t> palette;       ///< r, g, b of each entry (kPalette)
  std::vector<uint8_t> transparency;  ///< tRNS: alpha of the first palette entries
};

/// The PNG bytes of `rows`: each row's samples packed as the format packs
/// them (bit depths below 8 most significant bits first, each row starting
/// on a byte; 16-bit samples big-endian), rows one after the other.
std::string encode_png_samples(const std::vector<uint8_t>& rows, const PngLayout& layout);

}  // namespace dnn_gating::testing
