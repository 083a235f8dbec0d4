#include "dnn_gating/report/plot.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>

#include "dnn_gating/io/atomic_file.h"
#include "report/record_fields.h"

namespace dnn_gating::train {
namespace fs = std::filesystem;

namespace {

// Page geometry in SVG user units (pixels at 100 %).
constexpr double kWidth = 860;
constexpr double kHeight = 640;
constexpr double kPlotLeft = 80;
constexpr double kPlotRight = 780;
constexpr double kPanelHeight = 220;
constexpr double kTopPanel = 70;      // top edge of the loss/accuracy panel
constexpr double kBottomPanel = 360;  // top edge of the sparsity/cost panel
constexpr double kCharWidth = 6.6;    // rough width of a 12px sans-serif character, for the legend

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  std::string out = buffer;
  if (out.find_first_not_of("-0.") == std::string::npos)
    out.erase(0, out[0] == '-' ? 1 : 0);  // no "-0"
  return out;
}

std::string coordinate(double value) { return fixed(value, 2); }

std::string escape_xml(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters other than tab and newline are not allowed in XML 1.0 at all.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

// A value range with round tick positions.
struct Axis {
  double lo = 0;
  double hi = 1;
  double step = 0.2;

  int decimals() const {
    int d = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
    // 0.25 needs one place more than its magnitude says.
    while (d < 6 && std::abs(step * std::pow(10, d) - std::round(step * std::pow(10, d))) > 1e-6)
      ++d;
    return d;
  }
  std::vector<double> ticks() const {
    std::vector<double> out;
    const int count = static_cast<int>(std::round((hi - lo) / step));
    for (int i = 0; i <= count; ++i) out.push_back(lo + i * step);
    return out;
  }
};

// About `target` round steps (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi].
Axis nice_axis(double lo, double hi, int target, bool integer_steps) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / target;
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  double step = (norm <= 1     ? 1
                 : norm <= 2   ? 2
                 : norm <= 2.5 ? 2.5
                 : norm <= 5   ? 5
                               : 10) *
                magnitude;
  // Below 10 the only fractional steps are 2.5 and those under 1.
  if (integer_steps && step != std::floor(step)) step = step < 1 ? 1 : 5;
  Axis axis;
  axis.step = step;
  axis.lo = std::floor(lo / step + 1e-9) * step;
  axis.hi = std::ceil(hi / step - 1e-9) * step;
  return axis;
}

// Range of the finite values, widened to include zero (losses, bits and
// reductions read best against their zero).
Axis value_axis(const std::vector<double>& values) {
  double lo = 0, hi = 0;
  for (const double v : values) {
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (hi == lo) return Axis{lo, lo + 1, 0.2};  // nothing, or only zeros, to show
  return nice_axis(lo, hi, /*target=*/5, /*integer_steps=*/false);
}

Axis percent_axis() { return Axis{0, 100, 20}; }

struct Panel {
  double top;
  double bottom() const { return top + kPanelHeight; }
  double y(const Axis& axis, double value) const {
    return bottom() - (value - axis.lo) / (axis.hi - axis.lo) * kPanelHeight;
  }
};

struct Curve {
  std::string id;
  std::string label;
  std::string color;
  const Axis* axis;
  std::vector<std::pair<double, double>> points;  // (epoch, value), finite only
};

// The curve of the epoch field `id` (its JSON key).
Curve make_curve(std::string id, std::string label, std::string color, const Axis* axis,
                 const std::vector<EpochRecord>& epochs) {
  Curve curve{std::move(id), std::move(label), std::move(color), axis, {}};
  for (const auto& r : epochs) {
    const std::optional<double> value = epoch_scalar(r, curve.id);
    if (value && std::isfinite(*value))
      curve.points.emplace_back(static_cast<double>(r.epoch), *value);
  }
  return curve;
}

std::vector<double> values_of(const Curve& curve) {
  std::vector<double> out;
  for (const auto& point : curve.points) out.push_back(point.second);
  return out;
}

class SvgWriter {
 public:
  explicit SvgWriter(const Axis& x_axis) : x_axis_(x_axis) {}

  double x(double epoch) const {
    return kPlotLeft + (epoch - x_axis_.lo) / (x_axis_.hi - x_axis_.lo) * (kPlotRight - kPlotLeft);
  }

  void text(double x, double y, const std::string& content, const std::string& attributes = "") {
    out_ << "<text x=\"" << coordinate(x) << "\" y=\"" << coordinate(y) << "\"" << attributes << ">"
         << escape_xml(content) << "</text>\n";
  }

  void line(double x1, double y1, double x2, double y2, const std::string& attributes) {
    out_ << "<line x1=\"" << coordinate(x1) << "\" y1=\"" << coordinate(y1) << "\" x2=\""
         << coordinate(x2) << "\" y2=\"" << coordinate(y2) << "\" " << attributes << "/>\n";
  }

  // Frame, grid, epoch ticks and the left axis; the right axis only if given.
  void panel_frame(const Panel& panel, const Axis& left, const std::string& left_title,
                   const Axis* right, const std::string& right_title) {
    for (const double tick : x_axis_.ticks()) {
      line(x(tick), panel.top, x(tick), panel.bottom(), "stroke=\"#e5e5e5\"");
      text(x(tick), panel.bottom() + 16, fixed(tick, 0), " text-anchor=\"middle\"");
    }
    for (const double tick : left.ticks()) {
      const double y = panel.y(left, tick);
      line(kPlotLeft, y, kPlotRight, y, "stroke=\"#e5e5e5\"");
      line(kPlotLeft - 5, y, kPlotLeft, y, "stroke=\"#333\"");
      text(kPlotLeft - 8, y + 4, fixed(tick, left.decimals()), " text-anchor=\"end\"");
    }
    const double middle = panel.top + kPanelHeight / 2;
    text(24, middle, left_title,
         " text-anchor=\"middle\" transform=\"rotate(-90 24 " + coordinate(middle) + ")\"");
    if (right != nullptr) {
      for (const double tick : right->ticks()) {
        const double y = panel.y(*right, tick);
        line(kPlotRight, y, kPlotRight + 5, y, "stroke=\"#333\"");
        text(kPlotRight + 8, y + 4, fixed(tick, right->decimals()), " text-anchor=\"start\"");
      }
      const double x_title = kWidth - 20;
      text(x_title, middle, right_title,
           " text-anchor=\"middle\" transform=\"rotate(90 " + coordinate(x_title) + " " +
               coordinate(middle) + ")\"");
    }
    out_ << "<rect x=\"" << coordinate(kPlotLeft) << "\" y=\"" << coordinate(panel.top)
         << "\" width=\"" << coordinate(kPlotRight - kPlotLeft) << "\" height=\""
         << coordinate(kPanelHeight) << "\" fill=\"none\" stroke=\"#333\"/>\n";
  }

  // The curves and, above the panel, a legend of the ones drawn.
  void curves(const Panel& panel, const std::vector<const Curve*>& curves,
              const std::string& empty_note) {
    double legend_x = kPlotLeft;
    const double legend_y = panel.top - 12;
    for (const Curve* curve : curves) {
      if (curve->points.empty()) continue;
      out_ << "<polyline id=\"" << curve->id << "\" fill=\"none\" stroke=\"" << curve->color
           << "\" stroke-width=\"1.8\" stroke-linejoin=\"round\" points=\"";
      for (size_t i = 0; i < curve->points.size(); ++i) {
        const auto& [epoch, value] = curve->points[i];
        out_ << (i ? " " : "") << coordinate(x(epoch)) << ","
             << coordinate(panel.y(*curve->axis, value));
      }
      out_ << "\"><title>" << escape_xml(curve->label) << "</title></polyline>\n";
      if (curve->points.size() == 1) {
        // A polyline of one point draws nothing.
        const auto& [epoch, value] = curve->points.front();
        out_ << "<circle cx=\"" << coordinate(x(epoch)) << "\" cy=\""
             << coordinate(panel.y(*curve->axis, value)) << "\" r=\"3\" fill=\"" << curve->color
             << "\"/>\n";
      }
      line(legend_x, legend_y - 4, legend_x + 20, legend_y - 4,
           "stroke=\"" + curve->color + "\" stroke-width=\"2.5\"");
      text(legend_x + 26, legend_y, curve->label);
      legend_x += 26 + kCharWidth * static_cast<double>(curve->label.size()) + 22;
    }
    if (legend_x == kPlotLeft) {
      text((kPlotLeft + kPlotRight) / 2, panel.top + kPanelHeight / 2, empty_note,
           " text-anchor=\"middle\" fill=\"#888\"");
    }
  }

  std::ostringstream& out() { return out_; }

 private:
  Axis x_axis_;
  std::ostringstream out_;
};

}  // namespace

std::string training_plot_svg(const std::vector<EpochRecord>& epochs, const std::string& title) {
  const Axis accuracy_axis = percent_axis();
  const Axis sparsity_axis = percent_axis();
  // Filled in below, once the curves' values are known.
  Axis loss_axis;
  Axis cost_axis;

  const bool pg = std::any_of(epochs.begin(), epochs.end(),
                              [](const EpochRecord& r) { return r.pg_average_bits.has_value(); });
  Curve loss = make_curve("train_loss", "train loss", "#1f77b4", &loss_axis, epochs);
  Curve train_accuracy =
      make_curve("train_accuracy", "train accuracy %", "#2ca02c", &accuracy_axis, epochs);
  Curve test_accuracy =
      make_curve("test_accuracy", "test accuracy %", "#d62728", &accuracy_axis, epochs);
  Curve sparsity = make_curve("sparsity", "sparsity %", "#9467bd", &sparsity_axis, epochs);
  Curve cost =
      pg ? make_curve("pg_average_bits", "PG average bits", "#ff7f0e", &cost_axis, epochs)
         : make_curve("cg_flop_reduction", "CG FLOP reduction (x)", "#ff7f0e", &cost_axis, epochs);
  loss_axis = value_axis(values_of(loss));
  cost_axis = value_axis(values_of(cost));

  double first = 0, last = 0;
  for (size_t i = 0; i < epochs.size(); ++i) {
    const double e = static_cast<double>(epochs[i].epoch);
    first = i ? std::min(first, e) : e;
    last = i ? std::max(last, e) : e;
  }
  const Axis x_axis =
      epochs.empty() ? Axis{0, 1, 1} : nice_axis(first, last, /*target=*/8, /*integer_steps=*/true);

  SvgWriter svg(x_axis);
  auto& out = svg.out();
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" viewBox=\"0 0 " << kWidth << " " << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"12\" fill=\"#222\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!title.empty())
    svg.text(kWidth / 2, 26, title,
             " text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\"");

  const Panel top{kTopPanel};
  const Panel bottom{kBottomPanel};
  svg.panel_frame(top, loss_axis, "train loss", &accuracy_axis, "accuracy (%)");
  svg.curves(top, {&loss, &train_accuracy, &test_accuracy}, "no epochs recorded");
  const bool has_cost = !cost.points.empty();
  svg.panel_frame(bottom, sparsity_axis, "sparsity (%)", has_cost ? &cost_axis : nullptr,
                  pg ? "average bits" : "FLOP reduction (x)");
  svg.curves(bottom, {&sparsity, &cost}, "no sparsity or cost figures recorded");
  svg.text((kPlotLeft + kPlotRight) / 2, bottom.bottom() + 40, "epoch", " text-anchor=\"middle\"");
  out << "</svg>\n";
  return out.str();
}

void write_training_plot(const std::vector<EpochRecord>& epochs, const std::string& svg_path,
                         const std::string& title) {
  write_file_atomically(svg_path, training_plot_svg(epochs, title), "plot");
}

}  // namespace dnn_gating::train
