#include "dnn_gating/data/image_file.h"

// clang-format off
#include <cstdio>  // jpeglib.h needs FILE and size_t first
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace dnn_gating::data {
namespace {

// Memory follows the file: images up to this many pixels are always read
// (12 MiB of RGB); larger ones only if the file could hold them. Deflate
// expands a byte to at most 1032 and a PNG pixel takes at least one bit; a
// baseline JPEG block of 64 pixels takes at least two bits.
constexpr uint64_t kAlwaysReadPixels = uint64_t{1} << 22;
constexpr uint64_t kPngPixelsPerByte = 1032 * 8;
constexpr uint64_t kJpegPixelsPerByte = 1024;

void check_size(uint64_t width, uint64_t height, size_t bytes, const std::string& name,
                const char* format, uint64_t pixels_per_byte) {
  const uint64_t pixels = width * height;
  const auto refuse = [&](const std::string& why) {
    return std::runtime_error(name + ": not a readable " + format + " file (" + why + ")");
  };
  if (width == 0 || height == 0) throw refuse("no pixels");
  if (pixels > static_cast<uint64_t>(kMaxImagePixels)) {
    throw refuse("larger than 8192 x 8192 pixels");
  }
  if (pixels > kAlwaysReadPixels && pixels > static_cast<uint64_t>(bytes) * pixels_per_byte) {
    throw refuse(std::to_string(width) + " x " + std::to_string(height) +
                 " pixels cannot be stored in " + std::to_string(bytes) + " bytes");
  }
}

// ---- PNG ----

struct PngErrors {
  std::string message;
};

void on_png_error(png_structp png, png_const_charp message) {
  static_cast<PngErrors*>(png_get_error_ptr(png))->message = message;
  png_longjmp(png, 1);
}
void on_png_warning(png_structp, png_const_charp) {}

struct ReadCursor {
  const std::string* bytes;
  size_t at = 0;
};

void read_png_bytes(png_structp png, png_bytep out, png_size_t length) {
  auto* cursor = static_cast<ReadCursor*>(png_get_io_ptr(png));
  if (length > cursor->bytes->size() - cursor->at) png_error(png, "the file ends early");
  std::memcpy(out, cursor->bytes->data() + cursor->at, length);
  cursor->at += length;
}

// The libpng and libjpeg calls that may longjmp, each in a frame of its own
// that holds only trivially destructible locals and modifies none after
// setjmp; the C++ objects they fill belong to the caller. They return false
// after an error (its message kept by the error handler).

bool read_png_header(png_structp png, png_infop info, png_uint_32* width, png_uint_32* height) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  *width = png_get_image_width(png, info);
  *height = png_get_image_height(png, info);
  if (png_get_rowbytes(png, info) != static_cast<size_t>(*width) * 3) {
    png_error(png, "an unexpected row layout");
  }
  return true;
}

bool read_png_rows(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

// ---- JPEG ----

struct JpegErrors {
  jpeg_error_mgr manager;  // first: libjpeg sees this struct as its error manager
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_jpeg_error(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  longjmp(errors->jump, 1);
}

// Missing data is a warning to libjpeg, which fills in grey and goes on; an
// image folder must not train on that, so it is an error here (as a
// truncated file is to PIL). Other warnings (extraneous bytes) are not.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0 &&
      (cinfo->err->msg_code == JWRN_JPEG_EOF || cinfo->err->msg_code == JWRN_HIT_MARKER)) {
    on_jpeg_error(cinfo);
  }
}

bool read_jpeg_header(jpeg_decompress_struct* cinfo, JpegErrors* errors) {
  if (setjmp(errors->jump)) return false;
  jpeg_read_header(cinfo, TRUE);
  const bool cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  cinfo->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  return true;
}

bool read_jpeg_rows(jpeg_decompress_struct* cinfo, JpegErrors* errors, uint8_t* out,
                    size_t row_bytes) {
  if (setjmp(errors->jump)) return false;
  jpeg_start_decompress(cinfo);
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out + static_cast<size_t>(cinfo->output_scanline) * row_bytes;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

}  // namespace

RgbImage decode_png(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) != 0) {
    throw std::runtime_error(name + ": not a PNG file");
  }
  PngErrors errors;
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &errors, on_png_error, on_png_warning);
  if (png == nullptr) throw std::runtime_error("libpng: out of memory");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw std::runtime_error("libpng: out of memory");
  }
  struct Destroy {
    png_structp* png;
    png_infop* info;
    ~Destroy() { png_destroy_read_struct(png, info, nullptr); }
  } destroy{&png, &info};
  const auto refuse = [&](const std::string& why) {
    return std::runtime_error(name + ": not a readable PNG file (" + why + ")");
  };
  ReadCursor cursor{&bytes, 0};
  png_set_read_fn(png, &cursor, read_png_bytes);
  png_set_user_limits(png, 1u << 20, 1u << 20);
  png_set_chunk_malloc_max(png, 8u << 20);
  png_uint_32 width = 0, height = 0;
  if (!read_png_header(png, info, &width, &height)) throw refuse(errors.message);
  check_size(width, height, bytes.size(), name, "PNG", kPngPixelsPerByte);
  RgbImage image{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  std::vector<png_bytep> rows(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = image.rgb.data() + size_t{y} * width * 3;
  if (!read_png_rows(png, rows.data())) throw refuse(errors.message);
  return image;
}

RgbImage decode_jpeg(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 3 || static_cast<uint8_t>(bytes[0]) != 0xFF ||
      static_cast<uint8_t>(bytes[1]) != 0xD8 || static_cast<uint8_t>(bytes[2]) != 0xFF) {
    throw std::runtime_error(name + ": not a JPEG file");
  }
  jpeg_decompress_struct cinfo{};
  JpegErrors errors{};
  cinfo.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = on_jpeg_error;
  errors.manager.emit_message = on_jpeg_message;
  jpeg_create_decompress(&cinfo);
  struct Destroy {
    jpeg_decompress_struct* cinfo;
    ~Destroy() { jpeg_destroy_decompress(cinfo); }
  } destroy{&cinfo};
  const auto refuse = [&](const std::string& why) {
    return std::runtime_error(name + ": not a readable JPEG file (" + why + ")");
  };
  cinfo.mem->max_memory_to_use = 512L << 20;
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  if (!read_jpeg_header(&cinfo, &errors)) throw refuse(errors.message);
  check_size(cinfo.image_width, cinfo.image_height, bytes.size(), name, "JPEG", kJpegPixelsPerByte);
  const bool cmyk = cinfo.out_color_space == JCS_CMYK;
  const size_t width = cinfo.image_width, height = cinfo.image_height;
  const size_t channels = cmyk ? 4 : 3;
  std::vector<uint8_t> samples(width * height * channels);
  if (!read_jpeg_rows(&cinfo, &errors, samples.data(), width * channels)) {
    throw refuse(errors.message);
  }
  RgbImage image{static_cast<int64_t>(width), static_cast<int64_t>(height), {}};
  if (!cmyk) {
    image.rgb = std::move(samples);
    return image;
  }
  // CMYK as PIL converts it; Adobe's files store the inks inverted.
  image.rgb.resize(width * height * 3);
  const bool inverted = cinfo.saw_Adobe_marker != 0;
  for (size_t i = 0; i < width * height; ++i) {
    const uint8_t* p = samples.data() + i * 4;
    const int k = inverted ? p[3] : 255 - p[3];
    for (int c = 0; c < 3; ++c) {
      const int ink = inverted ? p[c] : 255 - p[c];
      image.rgb[i * 3 + c] = static_cast<uint8_t>((ink * k + 127) / 255);
    }
  }
  return image;
}

RgbImage decode_image(const std::string& bytes, const std::string& name) {
  if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
      static_cast<uint8_t>(bytes[1]) == 0xD8) {
    return decode_jpeg(bytes, name);
  }
  if (bytes.size() >= 8 &&
      png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) == 0) {
    return decode_png(bytes, name);
  }
  throw std::runtime_error(name + ": neither a JPEG nor a PNG file");
}

std::string read_image_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error(path + ": cannot open the image file");
  const std::streamoff size = in.tellg();
  if (size < 0 || size > kMaxImageFileBytes) {
    throw std::runtime_error(path + ": not an image file of at most 256 MiB");
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  in.read(bytes.data(), size);
  if (!in) throw std::runtime_error(path + ": cannot read the image file");
  return bytes;
}

RgbImage read_image(const std::string& path) { return decode_image(read_image_bytes(path), path); }

}  // namespace dnn_gating::data
