#include "png_writer.h"

#include <png.h>

#include <stdexcept>

namespace dnn_gating::testing {
namespace {

struct Written {
  std::string bytes;
  std::string error;
};

void append(png_structp png, png_bytep data, png_size_t length) {
  static_cast<Written*>(png_get_io_ptr(png))
      ->bytes.append(reinterpret_cast<const char*>(data), length);
}
void flush(png_structp) {}
void on_error(png_structp png, png_const_charp message) {
  static_cast<Written*>(png_get_error_ptr(png))->error = message;
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}

int channels(PngColour colour) {
  switch (colour) {
    case PngColour::kGrey:
    case PngColour::kPalette:
      return 1;
    case PngColour::kGreyAlpha:
      return 2;
    case PngColour::kRgb:
      return 3;
    case PngColour::kRgba:
      return 4;
  }
  return 0;
}

// The calls that may longjmp, in a frame of their own with nothing to
// destroy; false after an error (its message kept by on_error).
bool write_png(png_structp png, png_infop info, const PngLayout& layout, png_colorp palette,
               int palette_size, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, layout.width, layout.height, layout.bit_depth,
               static_cast<int>(layout.colour),
               layout.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (palette_size > 0) png_set_PLTE(png, info, palette, palette_size);
  if (!layout.transparency.empty()) {
    png_set_tRNS(png, info, layout.transparency.data(),
                 static_cast<int>(layout.transparency.size()), nullptr);
  }
  png_write_info(png, info);
  png_set_interlace_handling(png);  // Adam7: every pass from the whole rows
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

std::string encode_png_samples(const std::vector<uint8_t>& rows, const PngLayout& layout) {
  const size_t row_bytes =
      (static_cast<size_t>(layout.width) * channels(layout.colour) * layout.bit_depth + 7) / 8;
  if (rows.size() != row_bytes * layout.height) {
    throw std::invalid_argument("encode_png_samples: samples do not match the layout");
  }
  std::vector<png_color> palette;
  for (size_t i = 0; i + 2 < layout.palette.size(); i += 3) {
    palette.push_back({layout.palette[i], layout.palette[i + 1], layout.palette[i + 2]});
  }
  std::vector<png_bytep> row_pointers;
  for (int y = 0; y < layout.height; ++y) {
    row_pointers.push_back(const_cast<png_bytep>(rows.data() + row_bytes * y));
  }
  Written written;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &written, on_error, on_warning);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &written, append, flush);
  const bool ok = write_png(png, info, layout, palette.data(), static_cast<int>(palette.size()),
                            row_pointers.data());
  png_destroy_write_struct(&png, &info);
  if (!ok) throw std::invalid_argument("encode_png_samples: " + written.error);
  return written.bytes;
}

}  // namespace dnn_gating::testing
