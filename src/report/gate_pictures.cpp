#include "dnn_gating/report/gate_pictures.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "dnn_gating/report/font.h"

namespace dnn_gating::train {
namespace {

constexpr Rgb kBorder{200, 200, 200};

// Viridis at 0, 1/8, ..., 1.
constexpr std::array<Rgb, 9> kViridis{{{68, 1, 84},
                                       {71, 44, 122},
                                       {59, 81, 139},
                                       {44, 113, 142},
                                       {33, 144, 141},
                                       {39, 173, 129},
                                       {92, 200, 99},
                                       {170, 220, 50},
                                       {253, 231, 37}}};

// A heatmap of `map` at `height` x `width` pixels, each scaled `scale` times.
Picture heatmap_picture(const LayerMap& map, int64_t height, int64_t width, int64_t scale) {
  const std::vector<double> shares = upsampled(map, height, width);
  Picture out(width * scale, height * scale);
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      out.fill(x * scale, y * scale, scale, scale, share_colour(shares[y * width + x]));
    }
  }
  return out;
}

// "layer2.0.conv1" -> "2.0.conv1": columns of the overview are narrow.
std::string short_name(const std::string& name) {
  return name.rfind("layer", 0) == 0 ? name.substr(5) : name;
}

std::string what_is_on(layers::GateKind kind) {
  return kind == layers::GateKind::kChannel ? "share of output channels on the full path"
                                            : "share of outputs computed at high precision";
}

// A horizontal colour scale from 0 % to 100 % at (x, y).
void colour_scale(Picture& picture, int64_t x, int64_t y, int64_t width, const std::string& label) {
  const Font& font = Font::standard();
  for (int64_t i = 0; i < width; ++i) {
    picture.fill(x + i, y, 1, 12, share_colour(static_cast<double>(i) / (width - 1)));
  }
  picture.frame(x - 1, y - 1, width + 2, 14, kBorder);
  font.draw(picture, x, y + 15, "0 %", 11, kFaintTextColour);
  font.draw(picture, x + width - font.width("100 %", 11), y + 15, "100 %", 11, kFaintTextColour);
  font.draw(picture, x + width + 10, y - 1, label, 12, kTextColour);
}

}  // namespace

Rgb share_colour(double share) {
  const double s = std::clamp(std::isnan(share) ? 0.0 : share, 0.0, 1.0) * 8.0;
  const auto i = std::min<int64_t>(static_cast<int64_t>(s), 7);
  const double t = s - static_cast<double>(i);
  const Rgb a = kViridis[i], b = kViridis[i + 1];
  const auto mix = [t](uint8_t from, uint8_t to) {
    return static_cast<uint8_t>(std::lround(from + (to - from) * t));
  };
  return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}

std::vector<double> upsampled(const LayerMap& map, int64_t height, int64_t width) {
  std::vector<double> out(static_cast<size_t>(height * width));
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      out[y * width + x] = map.share(y * map.height / height, x * map.width / width);
    }
  }
  return out;
}

Picture image_picture(const torch::Tensor& image, int64_t scale) {
  TORCH_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) &&
                  image.scalar_type() == torch::kByte,
              "image_picture: a uint8 [1 or 3, H, W] image, got ", image.sizes());
  const torch::Tensor img = image.contiguous();
  const int64_t c = img.size(0), h = img.size(1), w = img.size(2);
  const uint8_t* p = img.data_ptr<uint8_t>();
  Picture out(w * scale, h * scale);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const uint8_t r = p[y * w + x];
      const Rgb colour = c == 1 ? Rgb{r, r, r} : Rgb{r, p[(h + y) * w + x], p[(2 * h + y) * w + x]};
      out.fill(x * scale, y * scale, scale, scale, colour);
    }
  }
  return out;
}

std::string class_name(const std::vector<std::string>& class_names, int64_t label) {
  return label >= 0 && label < static_cast<int64_t>(class_names.size()) ? class_names[label]
                                                                        : std::to_string(label);
}

MapPicture image_maps_picture(const ImageMaps& maps, const std::vector<std::string>& class_names,
                              int64_t dense_macs) {
  const Font& font = Font::standard();
  constexpr int64_t kScale = 3, kColumns = 6, kGap = 12, kMargin = 14, kCaption = 32;
  const int64_t h = maps.image.size(1), w = maps.image.size(2);
  const int64_t tile_w = w * kScale, tile_h = h * kScale;
  const auto layers = static_cast<int64_t>(maps.layers.size());
  const int64_t rows = std::max<int64_t>(1, (layers + kColumns - 1) / kColumns);
  const int64_t grid_x = kMargin + tile_w + 2 * kGap;
  const int64_t top = kMargin + 26;
  const int64_t width =
      grid_x + std::min<int64_t>(std::max<int64_t>(layers, 1), kColumns) * (tile_w + kGap) +
      kMargin;
  const int64_t height = top + rows * (tile_h + kCaption + kGap) + 44;
  MapPicture out{Picture(std::max<int64_t>(width, 560), height), {}};
  Picture& pic = out.picture;

  const ImageCost& cost = maps.cost;
  const std::string title = fmt::format(
      "test image {}: {}, predicted {}{}   effective MACs {:.2f} M ({:.1f} % of dense)", cost.index,
      class_name(class_names, cost.label), class_name(class_names, cost.predicted),
      cost.correct() ? "" : " (wrong)", cost.effective_macs / 1e6,
      dense_macs > 0 ? 100.0 * cost.effective_macs / static_cast<double>(dense_macs) : 0.0);
  font.draw(pic, kMargin, kMargin, title, 14, kTextColour);

  pic.paste(image_picture(maps.image, kScale), kMargin, top);
  out.tiles.push_back({"", kMargin, top, kScale});
  font.draw(pic, kMargin, top + tile_h + 3, "input", 12, kTextColour);

  for (int64_t l = 0; l < layers; ++l) {
    const LayerMap& map = maps.layers[l];
    const int64_t x = grid_x + (l % kColumns) * (tile_w + kGap);
    const int64_t y = top + (l / kColumns) * (tile_h + kCaption + kGap);
    pic.paste(heatmap_picture(map, h, w, kScale), x, y);
    out.tiles.push_back({map.name, x, y, kScale});
    font.draw(pic, x, y + tile_h + 2, map.name, 11, kTextColour);
    font.draw(pic, x, y + tile_h + 16,
              fmt::format("{:.1f} % on ({}x{})", 100.0 * map.on_fraction(), map.height, map.width),
              11, kFaintTextColour);
  }
  const layers::GateKind kind =
      maps.layers.empty() ? layers::GateKind::kChannel : maps.layers.front().kind;
  colour_scale(pic, grid_x, height - 36, 160, what_is_on(kind) + " at each position");
  return out;
}

MapPicture maps_overview(const std::vector<ImageMaps>& maps,
                         const std::vector<std::string>& class_names) {
  const Font& font = Font::standard();
  constexpr int64_t kScale = 2, kGap = 6, kMargin = 12, kHeader = 22, kCaption = 15;
  if (maps.empty()) return {Picture(1, 1), {}};
  const int64_t h = maps.front().image.size(1), w = maps.front().image.size(2);
  const int64_t tile_w = w * kScale, tile_h = h * kScale;
  const auto columns = static_cast<int64_t>(maps.front().layers.size()) + 1;
  const int64_t width = 2 * kMargin + columns * (tile_w + kGap) + 8;
  const int64_t row_h = tile_h + kCaption + kGap;
  const int64_t height = kMargin + kHeader + static_cast<int64_t>(maps.size()) * row_h + 44;
  MapPicture out{Picture(std::max<int64_t>(width, 560), height), {}};
  Picture& pic = out.picture;
  const auto column_x = [&](int64_t c) { return kMargin + c * (tile_w + kGap) + (c > 0 ? 8 : 0); };
  font.draw(pic, column_x(0), kMargin, "input", 10, kTextColour);
  for (size_t l = 0; l < maps.front().layers.size(); ++l) {
    font.draw(pic, column_x(static_cast<int64_t>(l) + 1), kMargin,
              short_name(maps.front().layers[l].name), 9, kTextColour);
  }
  for (size_t i = 0; i < maps.size(); ++i) {
    const ImageMaps& m = maps[i];
    const int64_t y = kMargin + kHeader + static_cast<int64_t>(i) * row_h;
    pic.paste(image_picture(m.image, kScale), column_x(0), y);
    out.tiles.push_back({"", column_x(0), y, kScale});
    font.draw(pic, column_x(0), y + tile_h + 1,
              fmt::format("#{} {}{}", m.cost.index, class_name(class_names, m.cost.label),
                          m.cost.correct() ? "" : " x"),
              9, m.cost.correct() ? kTextColour : Rgb{200, 30, 30});
    for (size_t l = 0; l < m.layers.size(); ++l) {
      const int64_t x = column_x(static_cast<int64_t>(l) + 1);
      pic.paste(heatmap_picture(m.layers[l], h, w, kScale), x, y);
      out.tiles.push_back({m.layers[l].name, x, y, kScale});
      font.draw(pic, x, y + tile_h + 1, fmt::format("{:.0f} %", 100.0 * m.layers[l].on_fraction()),
                9, kFaintTextColour);
    }
  }
  const layers::GateKind kind =
      maps.front().layers.empty() ? layers::GateKind::kChannel : maps.front().layers.front().kind;
  colour_scale(pic, column_x(1), height - 34, 160, what_is_on(kind) + " at each position");
  return out;
}

}  // namespace dnn_gating::train
