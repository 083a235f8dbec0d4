// The SVG training plot: curves on shared axes, checked with libxml2's xmllint.
#include "dnn_gating/report/plot.h"

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "record_fixtures.h"
#include "test_support.h"

namespace dnn_gating::train {
namespace {

using namespace fixtures;
using dnn_gating::testing::TempDir;

/// Where xmllint is not installed, the test is skipped on a user's machine
/// and fails under CI (which installs it).
#define DG_REQUIRE_XMLLINT()                                                         \
  if (dnn_gating::testing::run_command("command -v xmllint").exit_code != 0) {       \
    if (std::getenv("CI") != nullptr) FAIL() << "xmllint not installed (CI is set)"; \
    GTEST_SKIP() << "xmllint not installed (Debian package libxml2-utils)";          \
  }

/// "" if libxml2's xmllint reads `doc` as well-formed XML whose root is
/// <svg>, else what it said (tests that call it start with DG_REQUIRE_XMLLINT).
std::string xml_problem(const std::string& doc) {
  TempDir dir;
  const fs::path file = dir.path() / "doc.svg";
  write_text(file, doc);
  const auto lint = dnn_gating::testing::run_command("xmllint --noout '" + file.string() + "'");
  if (lint.exit_code != 0) return lint.output.empty() ? "xmllint failed" : lint.output;
  const auto root =
      dnn_gating::testing::run_command("xmllint --xpath 'local-name(/*)' '" + file.string() + "'");
  if (root.output != "svg" && root.output != "svg\n")
    return "the root is <" + root.output + ">, not <svg>";
  return "";
}

std::vector<std::pair<double, double>> polyline_points(const std::string& svg,
                                                       const std::string& id) {
  std::vector<std::pair<double, double>> out;
  const size_t at = svg.find("<polyline id=\"" + id + "\"");
  if (at == std::string::npos) return out;
  const size_t start = svg.find("points=\"", at) + 8;
  std::istringstream points(svg.substr(start, svg.find('"', start) - start));
  double x, y;
  char comma;
  while (points >> x >> comma >> y) out.emplace_back(x, y);
  return out;
}

// The checker itself: it must be able to fail.
TEST(XmlCheck, RejectsBrokenDocuments) {
  DG_REQUIRE_XMLLINT();
  EXPECT_EQ(xml_problem("<svg><g></g><line x=\"1\"/></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g>"), "");
  EXPECT_NE(xml_problem("<svg><text>a & b</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text a=\"x<y\">t</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=\"1\" a=\"2\"/>"), "");
  EXPECT_NE(xml_problem("<svg/><svg/>"), "");
  EXPECT_NE(xml_problem("<html/>"), "");
}

TEST(TrainingPlot, PgRunHasFiveCurvesOnSharedAxes) {
  DG_REQUIRE_XMLLINT();
  const std::string svg = training_plot_svg(pg_run(), "pg-cifar10: metrics.jsonl");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(
      svg.rfind(
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"",
          0),
      0u);
  EXPECT_EQ(svg.find("href"), std::string::npos);  // nothing external
  EXPECT_EQ(count(svg, "<polyline"), 5u);
  EXPECT_EQ(count(svg, "<circle"), 0u);
  for (const char* id :
       {"train_loss", "train_accuracy", "test_accuracy", "sparsity", "pg_average_bits"}) {
    EXPECT_EQ(count(svg, std::string("<polyline id=\"") + id + "\""), 1u) << id;
  }
  EXPECT_EQ(count(svg, "cg_flop_reduction"), 0u);
  for (const char* label :
       {">train loss<", ">train accuracy %<", ">test accuracy %<", ">sparsity %<",
        ">PG average bits<", ">accuracy (%)<", ">average bits<", ">epoch<"}) {
    EXPECT_TRUE(has_substr(svg, label));
  }

  const auto train = polyline_points(svg, "train_accuracy");
  const auto test = polyline_points(svg, "test_accuracy");
  const auto loss = polyline_points(svg, "train_loss");
  ASSERT_EQ(train.size(), 3u);
  ASSERT_EQ(test.size(), 2u);
  ASSERT_EQ(loss.size(), 3u);
  // Epochs evenly spaced; accuracy linear on its axis.
  EXPECT_NEAR(train[1].first - train[0].first, train[2].first - train[1].first, 0.011);
  EXPECT_GT(train[1].first, train[0].first);
  EXPECT_NEAR(train[1].second, (train[0].second + train[2].second) / 2, 0.011);
  EXPECT_LT(train[2].second, train[0].second);  // 100 % above 0 %
  // Test accuracy shares the epoch and accuracy axes: 100 % at epoch 3 lies on train's.
  EXPECT_EQ(test[1], train[2]);
  EXPECT_EQ(test[0].first, train[1].first);
  EXPECT_NEAR(test[0].second, train[0].second + 0.4 * (train[2].second - train[0].second), 0.011);
  // The loss axis runs 0..2 (step 0.5): 2 at the top, 1 halfway, like 100 % and 50 %.
  EXPECT_EQ(loss[0].second, train[2].second);
  EXPECT_EQ(loss[1].second, train[1].second);
  EXPECT_NEAR(loss[2].second, train[0].second + 0.25 * (train[2].second - train[0].second), 0.011);
  for (const char* tick : {">0.0<", ">0.5<", ">1.0<", ">1.5<", ">2.0<", ">0<", ">20<", ">100<"}) {
    EXPECT_TRUE(has_substr(svg, tick));
  }

  // Bottom panel: sparsity 80, 90 on 0..100; bits 3.0, 2.5 on 0..3 (step 1).
  const auto sparsity = polyline_points(svg, "sparsity");
  const auto bits = polyline_points(svg, "pg_average_bits");
  ASSERT_EQ(sparsity.size(), 2u);
  ASSERT_EQ(bits.size(), 2u);
  EXPECT_EQ(sparsity[0].first, train[1].first);
  const double height = train[0].second - train[2].second;  // both panels are as tall
  const double bottom = sparsity[0].second + 0.8 * height;
  EXPECT_NEAR(sparsity[1].second, bottom - 0.9 * height, 0.011);
  EXPECT_NEAR(bits[0].second, bottom - height, 0.011);
  EXPECT_NEAR(bits[1].second, bottom - 2.5 / 3.0 * height, 0.011);
}

TEST(TrainingPlot, CgRunDrawsFlopReduction) {
  DG_REQUIRE_XMLLINT();
  std::vector<EpochRecord> epochs = pg_run();
  for (auto& r : epochs) {
    r.cg_flop_reduction = r.pg_average_bits;
    r.pg_average_bits.reset();
  }
  const std::string svg = training_plot_svg(epochs, "cg");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "<polyline"), 5u);
  EXPECT_EQ(count(svg, "<polyline id=\"cg_flop_reduction\""), 1u);
  EXPECT_EQ(count(svg, "pg_average_bits"), 0u);
  EXPECT_TRUE(has_substr(svg, ">CG FLOP reduction (x)<"));
  EXPECT_TRUE(has_substr(svg, ">FLOP reduction (x)<"));
}

TEST(TrainingPlot, AccuracyOnlyRunHasThreeCurves) {
  DG_REQUIRE_XMLLINT();
  std::vector<EpochRecord> epochs = pg_run();
  for (auto& r : epochs) {
    r.sparsity.reset();
    r.pg_average_bits.reset();
  }
  const std::string svg = training_plot_svg(epochs, "dense");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "<polyline"), 3u);
  EXPECT_EQ(polyline_points(svg, "sparsity").size(), 0u);
  EXPECT_TRUE(has_substr(svg, ">no sparsity or cost figures recorded<"));
  EXPECT_EQ(count(svg, "average bits"), 0u);  // no cost axis without a cost curve

  for (auto& r : epochs) r.test_accuracy.reset();
  EXPECT_EQ(count(training_plot_svg(epochs, "no eval"), "<polyline"), 2u);
}

TEST(TrainingPlot, SinglePointCurveGetsAMarker) {
  DG_REQUIRE_XMLLINT();
  std::vector<EpochRecord> epochs = pg_run();
  epochs[1].test_accuracy.reset();
  const std::string svg = training_plot_svg(epochs, "t");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "<polyline"), 5u);
  const auto test = polyline_points(svg, "test_accuracy");
  ASSERT_EQ(test.size(), 1u);
  ASSERT_EQ(count(svg, "<circle"), 1u);
  std::ostringstream marker;
  marker << std::fixed << std::setprecision(2) << "<circle cx=\"" << test[0].first << "\" cy=\""
         << test[0].second << "\"";
  EXPECT_TRUE(has_substr(svg, marker.str()));

  // A one-epoch run: every curve is a single point.
  const std::string one = training_plot_svg({epochs[2]}, "one");
  ASSERT_EQ(xml_problem(one), "");
  EXPECT_EQ(count(one, "<polyline"), 5u);
  EXPECT_EQ(count(one, "<circle"), 5u);
}

TEST(TrainingPlot, NonFiniteValuesAreLeftOut) {
  DG_REQUIRE_XMLLINT();
  std::vector<EpochRecord> epochs = pg_run();
  epochs[1].train_loss = std::numeric_limits<double>::quiet_NaN();
  epochs[2].train_loss = std::numeric_limits<double>::infinity();
  const std::string svg = training_plot_svg(epochs, "diverged");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(polyline_points(svg, "train_loss").size(), 1u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

TEST(TrainingPlot, NoEpochsStillMakesAValidPicture) {
  DG_REQUIRE_XMLLINT();
  const std::string svg = training_plot_svg({}, "empty");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "<polyline"), 0u);
  EXPECT_TRUE(has_substr(svg, ">no epochs recorded<"));
}

TEST(TrainingPlot, TitleIsEscaped) {
  DG_REQUIRE_XMLLINT();
  const std::string svg = training_plot_svg(pg_run(), "a<b & \"c\" 'd'\x01");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_TRUE(has_substr(svg, ">a&lt;b &amp; &quot;c&quot; &apos;d&apos; </text>"));
}

TEST(TrainingPlot, WritesTheFileThroughATemporary) {
  TempDir dir;
  const fs::path svg = dir.path() / "plots" / "run.svg";
  write_training_plot(pg_run(), svg.string(), "run");
  EXPECT_EQ(read_text(svg), training_plot_svg(pg_run(), "run"));
  // Overwrites, and leaves nothing beside it.
  write_training_plot({}, svg.string(), "again");
  EXPECT_EQ(read_text(svg), training_plot_svg({}, "again"));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(svg.parent_path()))
    names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"run.svg"});

  write_text(dir.path() / "plain", "x");
  const std::string below_file = (dir.path() / "plain" / "run.svg").string();
  EXPECT_TRUE(has_substr(error_of([&] { write_training_plot(pg_run(), below_file, "t"); }),
                         below_file + ": cannot create the directory"));
}

}  // namespace
}  // namespace dnn_gating::train
