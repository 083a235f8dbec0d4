#include "dnn_gating/report/png.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "dnn_gating/data/image_file.h"
#include "dnn_gating/io/atomic_file.h"

namespace dnn_gating::train {
namespace {

// libpng reports errors through longjmp: its message is kept for the throw.
struct PngErrors {
  std::string message;
};

void on_error(png_structp png, png_const_charp message) {
  auto* errors = static_cast<PngErrors*>(png_get_error_ptr(png));
  errors->message = message;
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}

void write_bytes(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))
      ->append(reinterpret_cast<const char*>(data), length);
}
void flush_bytes(png_structp) {}

}  // namespace

Picture::Picture(int64_t width, int64_t height, Rgb background) : width_(width), height_(height) {
  if (width < 0 || height < 0 || width * height > kMaxPicturePixels) {
    throw std::invalid_argument("a picture of " + std::to_string(width) + " x " +
                                std::to_string(height) + " pixels is out of range");
  }
  rgb_.resize(static_cast<size_t>(width * height * 3));
  for (size_t i = 0; i < rgb_.size(); i += 3) {
    rgb_[i] = background.r;
    rgb_[i + 1] = background.g;
    rgb_[i + 2] = background.b;
  }
}

Rgb Picture::at(int64_t x, int64_t y) const {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) {
    throw std::out_of_range("pixel (" + std::to_string(x) + ", " + std::to_string(y) +
                            ") outside the picture");
  }
  const size_t i = static_cast<size_t>((y * width_ + x) * 3);
  return {rgb_[i], rgb_[i + 1], rgb_[i + 2]};
}

void Picture::set(int64_t x, int64_t y, Rgb colour) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  const size_t i = static_cast<size_t>((y * width_ + x) * 3);
  rgb_[i] = colour.r;
  rgb_[i + 1] = colour.g;
  rgb_[i + 2] = colour.b;
}

void Picture::blend(int64_t x, int64_t y, Rgb colour, double alpha) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  const Rgb old = at(x, y);
  const auto mix = [alpha](uint8_t under, uint8_t over) {
    return static_cast<uint8_t>(std::lround(under + (over - under) * alpha));
  };
  set(x, y, {mix(old.r, colour.r), mix(old.g, colour.g), mix(old.b, colour.b)});
}

void Picture::fill(int64_t x, int64_t y, int64_t width, int64_t height, Rgb colour) {
  for (int64_t r = std::max<int64_t>(y, 0); r < std::min(y + height, height_); ++r) {
    for (int64_t c = std::max<int64_t>(x, 0); c < std::min(x + width, width_); ++c)
      set(c, r, colour);
  }
}

void Picture::frame(int64_t x, int64_t y, int64_t width, int64_t height, Rgb colour) {
  fill(x, y, width, 1, colour);
  fill(x, y + height - 1, width, 1, colour);
  fill(x, y, 1, height, colour);
  fill(x + width - 1, y, 1, height, colour);
}

void Picture::paste(const Picture& other, int64_t x, int64_t y) {
  for (int64_t r = 0; r < other.height(); ++r) {
    for (int64_t c = 0; c < other.width(); ++c) set(x + c, y + r, other.at(c, r));
  }
}

namespace {

// The libpng calls that may longjmp, each in a frame of its own that holds
// only trivially destructible locals and modifies none after setjmp; the
// C++ objects they fill belong to the caller. They return false after a
// libpng error (its message in the PngErrors).

bool write_rows(png_structp png, png_infop info, const Picture* picture) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, static_cast<png_uint_32>(picture->width()),
               static_cast<png_uint_32>(picture->height()), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int64_t y = 0; y < picture->height(); ++y) {
    png_write_row(png, const_cast<png_bytep>(picture->rgb().data() + y * picture->width() * 3));
  }
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

uint8_t* Picture::row(int64_t y) { return rgb_.data() + y * width_ * 3; }

std::string encode_png(const Picture& picture) {
  if (picture.width() < 1 || picture.height() < 1) {
    throw std::invalid_argument("an empty picture has no PNG form");
  }
  std::string out;
  out.reserve(static_cast<size_t>(picture.width() * picture.height() * 3 / 2 + 1024));
  PngErrors errors;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &errors, on_error, on_warning);
  if (png == nullptr) throw std::runtime_error("libpng: out of memory");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    throw std::runtime_error("libpng: out of memory");
  }
  png_set_write_fn(png, &out, write_bytes, flush_bytes);
  const bool written = write_rows(png, info, &picture);
  png_destroy_write_struct(&png, &info);
  if (!written) throw std::runtime_error("libpng: " + errors.message);
  return out;
}

void write_png(const std::string& path, const Picture& picture, const std::string& what) {
  write_file_atomically(path, encode_png(picture), what);
}

Picture decode_png(const std::string& bytes, const std::string& name) {
  const data::RgbImage image = data::decode_png(bytes, name);
  Picture picture(image.width, image.height);
  std::copy(image.rgb.begin(), image.rgb.end(), picture.row(0));
  return picture;
}

Picture read_png(const std::string& path) { return decode_png(data::read_image_bytes(path), path); }

}  // namespace dnn_gating::train
