#include "dnn_gating/report/image_costs.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "dnn_gating/report/font.h"
#include "dnn_gating/report/gate_pictures.h"

namespace dnn_gating::train {
namespace {

constexpr Rgb kCorrectBar{59, 117, 175};
constexpr Rgb kWrongBar{239, 138, 48};
constexpr Rgb kWrongText{200, 30, 30};

std::string megas(double macs) { return fmt::format("{:.2f} M", macs / 1e6); }

}  // namespace

ImageCostSummary summarise(const std::vector<ImageCost>& costs) {
  ImageCostSummary s;
  s.images = static_cast<int64_t>(costs.size());
  if (costs.empty()) return s;
  s.min = s.max = costs.front().effective_macs;
  double sum = 0, sum_correct = 0, sum_wrong = 0;
  for (const ImageCost& c : costs) {
    sum += c.effective_macs;
    s.min = std::min(s.min, c.effective_macs);
    s.max = std::max(s.max, c.effective_macs);
    (c.correct() ? sum_correct : sum_wrong) += c.effective_macs;
    ++(c.correct() ? s.correct : s.wrong);
  }
  s.mean = sum / static_cast<double>(s.images);
  double squares = 0;
  for (const ImageCost& c : costs)
    squares += (c.effective_macs - s.mean) * (c.effective_macs - s.mean);
  s.std = std::sqrt(squares / static_cast<double>(s.images));
  if (s.correct > 0) s.mean_correct = sum_correct / static_cast<double>(s.correct);
  if (s.wrong > 0) s.mean_wrong = sum_wrong / static_cast<double>(s.wrong);
  if (s.correct > 0 && s.wrong > 0 && s.std > 0) {
    const double p = static_cast<double>(s.wrong) / static_cast<double>(s.images);
    s.correlation = (s.mean_wrong - s.mean_correct) / s.std * std::sqrt(p * (1 - p));
  }
  return s;
}

std::vector<std::string> image_cost_lines(const ImageCostSummary& s, int64_t dense_macs) {
  const auto share = [dense_macs](double macs) {
    return dense_macs > 0 ? 100.0 * macs / static_cast<double>(dense_macs) : 0.0;
  };
  std::vector<std::string> lines{fmt::format(
      "Per-image effective MACs over {} test images: mean {:.0f} ({:.1f} % of dense), min {:.0f} "
      "({:.1f} %), max {:.0f} ({:.1f} %), standard deviation {:.0f}",
      s.images, s.mean, share(s.mean), s.min, share(s.min), s.max, share(s.max), s.std)};
  if (s.wrong == 0 || s.correct == 0) {
    lines.push_back(fmt::format("Every image {}: no comparison of correct and misclassified costs",
                                s.wrong == 0 ? "correctly classified" : "misclassified"));
  } else {
    lines.push_back(fmt::format(
        "Correctly classified: mean {:.0f} ({} images); misclassified: mean {:.0f} ({} images); "
        "correlation of cost with misclassification {:+.3f}",
        s.mean_correct, s.correct, s.mean_wrong, s.wrong, s.correlation));
  }
  return lines;
}

std::string image_costs_csv(const std::vector<ImageCost>& costs, const Evaluation& evaluation,
                            const std::vector<std::string>& class_names) {
  std::string out =
      "index,label,class,predicted,predicted_class,correct,effective_macs,dense_fraction";
  for (const auto& layer : evaluation.layers) out += ",on_percent:" + layer.name;
  out += "\n";
  const double dense = static_cast<double>(std::max<int64_t>(evaluation.dense_macs, 1));
  const double images = static_cast<double>(std::max<int64_t>(evaluation.images, 1));
  for (const ImageCost& c : costs) {
    out += fmt::format("{},{},{},{},{},{},{:.1f},{:.6f}", c.index, c.label,
                       class_name(class_names, c.label), c.predicted,
                       class_name(class_names, c.predicted), c.correct() ? 1 : 0, c.effective_macs,
                       c.effective_macs / dense);
    for (size_t l = 0; l < c.layer_on.size() && l < evaluation.layers.size(); ++l) {
      const double per_image = static_cast<double>(evaluation.layers[l].counts.num_out) / images;
      out += fmt::format(",{:.4f}", per_image > 0 ? 100.0 * c.layer_on[l] / per_image : 0.0);
    }
    out += "\n";
  }
  return out;
}

Picture cost_histogram(const std::vector<ImageCost>& costs, int64_t dense_macs,
                       const std::string& title) {
  const Font& font = Font::standard();
  constexpr int64_t kWidth = 720, kHeight = 400, kLeft = 64, kRight = 24, kTop = 48, kBottom = 64;
  constexpr int64_t kBins = 40;
  Picture pic(kWidth, kHeight);
  font.draw(pic, kLeft, 12, title, 14, kTextColour);
  const ImageCostSummary s = summarise(costs);
  if (costs.empty()) return pic;
  // Bins over [min, max], widened where every cost is equal.
  const double low = s.min, high = s.max > s.min ? s.max : s.min + 1;
  std::vector<int64_t> right(kBins, 0), wrong(kBins, 0);
  for (const ImageCost& c : costs) {
    const auto bin = std::clamp<int64_t>(
        static_cast<int64_t>((c.effective_macs - low) / (high - low) * kBins), 0, kBins - 1);
    ++(c.correct() ? right : wrong)[bin];
  }
  int64_t tallest = 1;
  for (int64_t b = 0; b < kBins; ++b) tallest = std::max(tallest, right[b] + wrong[b]);
  const int64_t plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  const int64_t bar_w = plot_w / kBins;
  const int64_t base = kTop + plot_h;
  for (int64_t b = 0; b < kBins; ++b) {
    const int64_t x = kLeft + b * bar_w;
    const auto px = [&](int64_t n) { return n * plot_h / tallest; };
    const int64_t r = px(right[b]), w = px(right[b] + wrong[b]) - r;
    pic.fill(x, base - r, bar_w - 1, r, kCorrectBar);
    pic.fill(x, base - r - w, bar_w - 1, w, kWrongBar);
  }
  pic.fill(kLeft, base, plot_w, 1, kTextColour);
  pic.fill(kLeft - 1, kTop, 1, plot_h + 1, kTextColour);
  // The mean: the report's effective MACs.
  const auto mean_x = kLeft + static_cast<int64_t>((s.mean - low) / (high - low) * (bar_w * kBins));
  for (int64_t y = kTop; y < base; y += 4) pic.fill(mean_x, y, 1, 2, kTextColour);
  font.draw(pic, mean_x + 4, kTop, "mean " + megas(s.mean), 11, kTextColour);
  for (int64_t t = 0; t <= 4; ++t) {
    const double v = low + (high - low) * static_cast<double>(t) / 4;
    const int64_t x = kLeft + t * bar_w * kBins / 4;
    pic.fill(x, base, 1, 5, kTextColour);
    const std::string label =
        dense_macs > 0 ? fmt::format("{} ({:.1f} %)", megas(v), 100.0 * v / dense_macs) : megas(v);
    font.draw(pic, x - font.width(label, 11) / 2, base + 8, label, 11, kFaintTextColour);
  }
  font.draw(pic, kLeft, base + 28, "effective MACs per image (share of dense)", 12, kTextColour);
  const std::string top_count = std::to_string(tallest);
  font.draw(pic, kLeft - 8 - font.width(top_count, 11), kTop - 6, top_count, 11, kFaintTextColour);
  font.draw(pic, kLeft - 16, base - 7, "0", 11, kFaintTextColour);
  pic.fill(kWidth - 220, kTop, 12, 12, kCorrectBar);
  font.draw(pic, kWidth - 202, kTop - 1, fmt::format("correct ({})", s.correct), 12, kTextColour);
  pic.fill(kWidth - 220, kTop + 18, 12, 12, kWrongBar);
  font.draw(pic, kWidth - 202, kTop + 17, fmt::format("misclassified ({})", s.wrong), 12,
            kTextColour);
  return pic;
}

Picture cost_extremes(const std::vector<ImageCost>& costs, const torch::Tensor& images,
                      const std::vector<std::string>& class_names, int64_t count) {
  const Font& font = Font::standard();
  constexpr int64_t kScale = 3, kGap = 12, kMargin = 14, kCaption = 34, kTitle = 24;
  const int64_t h = images.size(2), w = images.size(3);
  const int64_t tile_w = w * kScale, tile_h = h * kScale;
  std::vector<ImageCost> sorted = costs;
  std::stable_sort(sorted.begin(), sorted.end(), [](const ImageCost& a, const ImageCost& b) {
    return a.effective_macs < b.effective_macs;
  });
  const int64_t shown = std::min<int64_t>(count, static_cast<int64_t>(sorted.size()));
  const int64_t width = 2 * kMargin + std::max<int64_t>(shown, 1) * (tile_w + kGap);
  const int64_t row_h = kTitle + tile_h + kCaption;
  Picture pic(std::max<int64_t>(width, 360), 2 * kMargin + 2 * row_h);
  const auto row = [&](int64_t y, const std::string& title, auto pick) {
    font.draw(pic, kMargin, y, title, 14, kTextColour);
    for (int64_t i = 0; i < shown; ++i) {
      const ImageCost& c = pick(i);
      const int64_t x = kMargin + i * (tile_w + kGap);
      pic.paste(image_picture(images[c.index], kScale), x, y + kTitle);
      const std::string names = c.correct() ? class_name(class_names, c.label)
                                            : class_name(class_names, c.label) + " -> " +
                                                  class_name(class_names, c.predicted);
      font.draw(pic, x, y + kTitle + tile_h + 2, names, 11, c.correct() ? kTextColour : kWrongText);
      font.draw(pic, x, y + kTitle + tile_h + 16,
                fmt::format("#{}  {}", c.index, megas(c.effective_macs)), 11, kFaintTextColour);
    }
  };
  const auto n = static_cast<int64_t>(sorted.size());
  row(kMargin, fmt::format("The {} cheapest test images", shown),
      [&](int64_t i) -> const ImageCost& { return sorted[i]; });
  row(kMargin + row_h, fmt::format("The {} most expensive test images", shown),
      [&](int64_t i) -> const ImageCost& { return sorted[n - 1 - i]; });
  return pic;
}

}  // namespace dnn_gating::train
