#pragma once
/// Image files decoded to 8-bit RGB: PNG (libpng) and JPEG (libjpeg-turbo),
/// whatever their colour type (grey, palette, alpha, 16-bit, CMYK/YCCK).
/// Memory follows the file: a header claiming more pixels than its bytes can
/// hold is refused before anything of that size is allocated.

#include <cstdint>
#include <string>
#include <vector>

namespace dnn_gating::data {

/// An image as bytes r, g, b of each pixel, row by row.
struct RgbImage {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> rgb;
};

/// The largest image read: 2^26 pixels (8192 x 8192).
constexpr int64_t kMaxImagePixels = int64_t{1} << 26;
/// The largest image file read.
constexpr int64_t kMaxImageFileBytes = int64_t{256} << 20;

/// Decodes PNG bytes; throws std::runtime_error naming `name` and why.
RgbImage decode_png(const std::string& bytes, const std::string& name);
/// Decodes JPEG bytes (corrupt or truncated data included: refused, not
/// filled in); throws std::runtime_error naming `name` and why.
RgbImage decode_jpeg(const std::string& bytes, const std::string& name);
/// Decodes PNG or JPEG bytes, told apart by their signature.
RgbImage decode_image(const std::string& bytes, const std::string& name);

/// The bytes of a file of at most kMaxImageFileBytes; throws naming it.
std::string read_image_bytes(const std::string& path);
/// decode_image of a file.
RgbImage read_image(const std::string& path);

}  // namespace dnn_gating::data
