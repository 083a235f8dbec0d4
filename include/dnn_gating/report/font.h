#pragma once
/// Text in pictures, drawn with FreeType from a font Debian ships (DejaVu
/// Sans, package fonts-dejavu-core). Where no such font file exists the
/// pictures carry no text, and the first use says so once.

#include <cstdint>
#include <memory>
#include <string>

#include "dnn_gating/report/png.h"

namespace dnn_gating::train {

class Font {
 public:
  /// The font every picture uses, loaded on first use from
  /// $DNN_GATING_FONT or DejaVu Sans' Debian path.
  static const Font& standard();
  ~Font();

  /// Whether a font file was found (otherwise draw() draws nothing).
  bool available() const;
  /// Width in pixels of `text` (ASCII) at `pixel_size`.
  int64_t width(const std::string& text, int pixel_size) const;
  /// Draws `text` with the top of its line at `top`, anti-aliased, in
  /// `colour`; returns the width drawn.
  int64_t draw(Picture& picture, int64_t x, int64_t top, const std::string& text, int pixel_size,
               Rgb colour) const;

 private:
  Font();
  struct Face;
  std::unique_ptr<Face> face_;
};

}  // namespace dnn_gating::train
