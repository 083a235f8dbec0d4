#include "dnn_gating/report/font.h"

#include <ft2build.h>
#include FT_FREETYPE_H

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

namespace dnn_gating::train {
namespace {

std::vector<std::string> font_candidates() {
  std::vector<std::string> out;
  if (const char* chosen = std::getenv("DNN_GATING_FONT"); chosen != nullptr && *chosen) {
    out.emplace_back(chosen);
  }
  out.emplace_back("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
  out.emplace_back("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf");
  return out;
}

}  // namespace

// FreeType's library and face; one glyph at a time (FreeType faces are not
// shared between threads), so every use holds the mutex.
struct Font::Face {
  FT_Library library = nullptr;
  FT_Face face = nullptr;
  mutable std::mutex mutex;

  ~Face() {
    if (face != nullptr) FT_Done_Face(face);
    if (library != nullptr) FT_Done_FreeType(library);
  }
};

Font::Font() : face_(std::make_unique<Face>()) {
  if (FT_Init_FreeType(&face_->library) != 0) {
    face_->library = nullptr;
  } else {
    for (const std::string& path : font_candidates()) {
      std::error_code ignored;
      if (!std::filesystem::is_regular_file(path, ignored)) continue;
      if (FT_New_Face(face_->library, path.c_str(), 0, &face_->face) == 0) break;
      face_->face = nullptr;
    }
  }
  if (face_->face == nullptr) {
    spdlog::warn(
        "warning: no font found (install fonts-dejavu-core or set DNN_GATING_FONT): pictures "
        "are drawn without text");
  }
}

Font::~Font() = default;

const Font& Font::standard() {
  static const Font font;
  return font;
}

bool Font::available() const { return face_->face != nullptr; }

int64_t Font::width(const std::string& text, int pixel_size) const {
  if (!available()) return 0;
  std::lock_guard<std::mutex> lock(face_->mutex);
  FT_Set_Pixel_Sizes(face_->face, 0, static_cast<FT_UInt>(pixel_size));
  int64_t advance = 0;
  for (const unsigned char c : text) {
    if (FT_Load_Char(face_->face, c < 128 ? c : '?', FT_LOAD_DEFAULT) != 0) continue;
    advance += face_->face->glyph->advance.x >> 6;
  }
  return advance;
}

int64_t Font::draw(Picture& picture, int64_t x, int64_t top, const std::string& text,
                   int pixel_size, Rgb colour) const {
  if (!available()) return 0;
  std::lock_guard<std::mutex> lock(face_->mutex);
  FT_Face face = face_->face;
  FT_Set_Pixel_Sizes(face, 0, static_cast<FT_UInt>(pixel_size));
  const int64_t baseline = top + (face->size->metrics.ascender >> 6);
  int64_t pen = x;
  for (const unsigned char c : text) {
    if (FT_Load_Char(face, c < 128 ? c : '?', FT_LOAD_RENDER) != 0) continue;
    const FT_GlyphSlot glyph = face->glyph;
    const FT_Bitmap& bitmap = glyph->bitmap;
    // Anti-aliased glyphs only (a bitmap font's 1-bit glyphs are skipped).
    if (bitmap.pixel_mode != FT_PIXEL_MODE_GRAY || bitmap.buffer == nullptr) {
      pen += glyph->advance.x >> 6;
      continue;
    }
    for (unsigned row = 0; row < bitmap.rows; ++row) {
      for (unsigned col = 0; col < bitmap.width; ++col) {
        const uint8_t coverage =
            bitmap.buffer[static_cast<int64_t>(row) * bitmap.pitch + static_cast<int64_t>(col)];
        if (coverage == 0) continue;
        picture.blend(pen + glyph->bitmap_left + col, baseline - glyph->bitmap_top + row, colour,
                      coverage / 255.0);
      }
    }
    pen += glyph->advance.x >> 6;
  }
  return pen - x;
}

}  // namespace dnn_gating::train
