#include "data/image_transforms.h"

#include <algorithm>
#include <cmath>

namespace dnn_gating::data {
namespace {

// The taps of one output pixel along one axis: input pixels [first, first +
// weights.size()) with their normalised weights.
struct Taps {
  int64_t first = 0;
  std::vector<float> weights;
};

// Output pixels [out_first, out_first + out_count) of resizing input pixels
// [in_start, in_start + in_len) to out_len pixels (PIL's bilinear filter
// with antialiasing; taps stay inside the input range, as after a crop).
std::vector<Taps> axis_taps(int64_t in_start, int64_t in_len, int64_t out_len, int64_t out_first,
                            int64_t out_count) {
  const double scale = static_cast<double>(in_len) / static_cast<double>(out_len);
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // the triangle's support is 1
  std::vector<Taps> out(static_cast<size_t>(out_count));
  for (int64_t i = 0; i < out_count; ++i) {
    const double center = (static_cast<double>(out_first + i) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_len);
    Taps& taps = out[static_cast<size_t>(i)];
    taps.first = in_start + lo;
    double sum = 0;
    std::vector<double> w;
    for (int64_t x = lo; x < hi; ++x) {
      const double t = std::abs((static_cast<double>(x) - center + 0.5) / filter_scale);
      w.push_back(std::max(0.0, 1.0 - t));
      sum += w.back();
    }
    if (w.empty() || sum <= 0) {  // a degenerate range: the nearest pixel
      const int64_t nearest = std::clamp<int64_t>(static_cast<int64_t>(center), 0, in_len - 1);
      taps.first = in_start + nearest;
      taps.weights = {1.0f};
      continue;
    }
    for (const double v : w) taps.weights.push_back(static_cast<float>(v / sum));
  }
  return out;
}

// Resamples `image` with the given row and column taps (out_h x out_w) and
// writes it normalised, channel-major, flipped if asked.
void resample_into(const RgbImage& image, const std::vector<Taps>& rows,
                   const std::vector<Taps>& cols, bool flip, const std::vector<float>& mean,
                   const std::vector<float>& std, float* out) {
  const auto out_h = static_cast<int64_t>(rows.size());
  const auto out_w = static_cast<int64_t>(cols.size());
  // Horizontal pass over the input rows the vertical taps reach.
  int64_t row_lo = image.height, row_hi = 0;
  for (const Taps& t : rows) {
    row_lo = std::min(row_lo, t.first);
    row_hi = std::max(row_hi, t.first + static_cast<int64_t>(t.weights.size()));
  }
  std::vector<float> horizontal(static_cast<size_t>((row_hi - row_lo) * out_w * 3));
  for (int64_t y = row_lo; y < row_hi; ++y) {
    const uint8_t* src = image.rgb.data() + y * image.width * 3;
    float* dst = horizontal.data() + (y - row_lo) * out_w * 3;
    for (int64_t x = 0; x < out_w; ++x) {
      const Taps& t = cols[static_cast<size_t>(x)];
      float r = 0, g = 0, b = 0;
      const uint8_t* p = src + t.first * 3;
      for (size_t k = 0; k < t.weights.size(); ++k, p += 3) {
        r += t.weights[k] * p[0];
        g += t.weights[k] * p[1];
        b += t.weights[k] * p[2];
      }
      dst[x * 3] = r;
      dst[x * 3 + 1] = g;
      dst[x * 3 + 2] = b;
    }
  }
  // Vertical pass, then normalisation into [3, out_h, out_w].
  float scale[3], shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * std[c]);
    shift[c] = -mean[c] / std[c];
  }
  const int64_t plane = out_h * out_w;
  for (int64_t y = 0; y < out_h; ++y) {
    const Taps& t = rows[static_cast<size_t>(y)];
    for (int64_t x = 0; x < out_w; ++x) {
      float v[3] = {0, 0, 0};
      for (size_t k = 0; k < t.weights.size(); ++k) {
        const float* p =
            horizontal.data() + ((t.first + static_cast<int64_t>(k) - row_lo) * out_w + x) * 3;
        for (int c = 0; c < 3; ++c) v[c] += t.weights[k] * p[c];
      }
      const int64_t ox = flip ? out_w - 1 - x : x;
      for (int c = 0; c < 3; ++c) {
        const float byte = std::clamp(v[c], 0.0f, 255.0f);
        out[c * plane + y * out_w + ox] = byte * scale[c] + shift[c];
      }
    }
  }
}

}  // namespace

CropBox random_resized_crop(int64_t height, int64_t width, std::mt19937_64& rng) {
  const double area = static_cast<double>(height) * static_cast<double>(width);
  std::uniform_real_distribution<double> scale(0.08, 1.0);
  std::uniform_real_distribution<double> log_ratio(std::log(3.0 / 4.0), std::log(4.0 / 3.0));
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * scale(rng);
    const double ratio = std::exp(log_ratio(rng));
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target * ratio)));
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const int64_t top = std::uniform_int_distribution<int64_t>(0, height - h)(rng);
      const int64_t left = std::uniform_int_distribution<int64_t>(0, width - w)(rng);
      return {top, left, h, w};
    }
  }
  // The central crop of the allowed ratio nearest the image's.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < 3.0 / 4.0) {
    h = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / (3.0 / 4.0)));
  } else if (in_ratio > 4.0 / 3.0) {
    w = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * (4.0 / 3.0)));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

void resized_crop_into(const RgbImage& image, const CropBox& box, int64_t size, bool flip,
                       const std::vector<float>& mean, const std::vector<float>& std, float* out) {
  resample_into(image, axis_taps(box.top, box.height, size, 0, size),
                axis_taps(box.left, box.width, size, 0, size), flip, mean, std, out);
}

void resize_center_crop_into(const RgbImage& image, int64_t size, const std::vector<float>& mean,
                             const std::vector<float>& std, float* out) {
  const auto shorter =
      static_cast<int64_t>(std::nearbyint(static_cast<double>(size) * 256.0 / 224.0));
  // torchvision's Resize(int): the shorter side to `shorter`, the longer
  // scaled and truncated.
  int64_t rh = shorter, rw = shorter;
  if (image.width < image.height) {
    rh = shorter * image.height / image.width;
  } else {
    rw = shorter * image.width / image.height;
  }
  // CenterCrop: offsets rounded half to even, as Python's round() in torchvision's (a crop larger
  // than the resized image cannot happen: size <= shorter).
  const auto top = static_cast<int64_t>(std::nearbyint(static_cast<double>(rh - size) / 2.0));
  const auto left = static_cast<int64_t>(std::nearbyint(static_cast<double>(rw - size) / 2.0));
  resample_into(image, axis_taps(0, image.height, rh, top, size),
                axis_taps(0, image.width, rw, left, size), /*flip=*/false, mean, std, out);
}

}  // namespace dnn_gating::data
