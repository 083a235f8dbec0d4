#pragma once
/// Pictures in memory and as PNG files (libpng): what the gate maps, the
/// cost histogram and the image grids are drawn into.

#include <cstdint>
#include <string>
#include <vector>

namespace dnn_gating::train {

/// An 8-bit colour.
struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
  bool operator!=(const Rgb& o) const { return !(*this == o); }
};

/// The colours of the text the report's pictures write: labels and axis
/// ticks, and fainter notes.
inline constexpr Rgb kTextColour{30, 30, 30};
inline constexpr Rgb kFaintTextColour{110, 110, 110};

/// An RGB picture, row by row. Drawing outside it is clipped.
class Picture {
 public:
  Picture() = default;
  Picture(int64_t width, int64_t height, Rgb background = {255, 255, 255});

  int64_t width() const { return width_; }
  int64_t height() const { return height_; }
  /// The pixel at column x, row y (which must be inside).
  Rgb at(int64_t x, int64_t y) const;
  void set(int64_t x, int64_t y, Rgb colour);
  /// `colour` over the pixel with opacity `alpha` in [0, 1].
  void blend(int64_t x, int64_t y, Rgb colour, double alpha);
  /// A filled rectangle.
  void fill(int64_t x, int64_t y, int64_t width, int64_t height, Rgb colour);
  /// A one-pixel rectangle outline.
  void frame(int64_t x, int64_t y, int64_t width, int64_t height, Rgb colour);
  /// `other` with its top-left corner at (x, y).
  void paste(const Picture& other, int64_t x, int64_t y);
  /// The bytes r, g, b of each pixel, row by row.
  const std::vector<uint8_t>& rgb() const { return rgb_; }
  /// The bytes of row y (0 <= y < height()), to write into.
  uint8_t* row(int64_t y);

 private:
  int64_t width_ = 0, height_ = 0;
  std::vector<uint8_t> rgb_;
};

/// The largest picture written or read: 2^26 pixels (8192 x 8192).
constexpr int64_t kMaxPicturePixels = int64_t{1} << 26;

/// `picture` as the bytes of an 8-bit RGB PNG file.
std::string encode_png(const Picture& picture);
/// Writes `picture` to `path` as a PNG file, atomically (write_file_atomically);
/// `what` names the picture in an error.
void write_png(const std::string& path, const Picture& picture, const std::string& what);

/// Decodes a PNG file's bytes (any bit depth and colour type, alpha dropped)
/// to RGB. Throws std::runtime_error naming `name` for anything that is not
/// a PNG or is larger than kMaxPicturePixels.
Picture decode_png(const std::string& bytes, const std::string& name);
/// Reads a PNG file (at most 256 MiB) with decode_png.
Picture read_png(const std::string& path);

}  // namespace dnn_gating::train
