// gating-report, the program: summary, plot and CSV of a metrics file, and its errors.
#include <filesystem>
#include <string>

#include "dnn_gating/report/metrics.h"
#include "dnn_gating/report/plot.h"
#include "report/record_fixtures.h"
#include "test_support.h"

namespace dnn_gating::train {
namespace {

using namespace fixtures;
using dnn_gating::testing::TempDir;

/// The gating-report program beside the trainers (a dependency of the test
/// executable); skipped when only the test executable was built, failed
/// under CI, which builds everything.
#define DG_REPORT_BINARY_OR_SKIP(var)                                          \
  const std::string var = std::string(DG_BINARY_DIR) + "/gating-report";       \
  if (!fs::exists(var)) {                                                      \
    if (std::getenv("CI") != nullptr) FAIL() << var << " missing (CI is set)"; \
    GTEST_SKIP() << "gating-report not built (make gating-report)";            \
  }

/// Runs the program with `arguments`. ctest sets OMP_NUM_THREADS to "", which
/// makes libgomp print a complaint into the output these tests read.
dnn_gating::testing::RunResult run_report(const std::string& binary, const std::string& arguments) {
  return dnn_gating::testing::run_command("env -u OMP_NUM_THREADS " + binary + " " + arguments);
}

TEST(GatingReport, SummarisesPlotsAndConverts) {
  DG_REPORT_BINARY_OR_SKIP(binary);
  TempDir dir;
  const std::string jsonl = (dir.path() / "metrics.jsonl").string();
  {
    MetricsWriter writer(jsonl, "");
    for (const auto& r : pg_run()) writer.write_epoch(r);
    writer.write_final(full_final());
  }
  const std::string svg = (dir.path() / "out" / "plot.svg").string();
  const std::string csv = (dir.path() / "out.csv").string();
  const auto run = run_report(binary, jsonl + " --plot " + svg + " --csv " + csv);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(has_substr(run.output, "pg-cifar10, 2 epochs:"));
  // The trainers' report lines, from the same function.
  EXPECT_TRUE(has_substr(run.output, "Accuracy of the network on the 20 test images: 45.0 %"));
  EXPECT_TRUE(has_substr(run.output, "Sparsity of the update phase: 91.2 %"));
  EXPECT_TRUE(has_substr(run.output, "PG average activation bits: 2.375"));
  EXPECT_TRUE(has_substr(run.output, "Accuracy of   car : 62.5 %"));
  EXPECT_TRUE(has_substr(run.output, "layer1.0.conv1     75.00"));
  EXPECT_TRUE(
      has_substr(run.output, "    3       0.1   0.5000   100.00  100.00      90.00     2.500"));
  EXPECT_EQ(read_text(svg), training_plot_svg(pg_run(), "pg-cifar10: metrics.jsonl"));
  EXPECT_EQ(lines_of(read_text(csv)).size(), 4u);
  EXPECT_EQ(lines_of(read_text(csv)).at(3), "3,0.1,0.5,100,100,90,2.5,,1,0");
}

TEST(GatingReport, ErrorsAreOneLineWithExitCode) {
  DG_REPORT_BINARY_OR_SKIP(binary);
  TempDir dir;
  const std::string missing = (dir.path() / "absent.jsonl").string();
  auto run = run_report(binary, missing);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.output, "gating-report: error: " + missing +
                            ": cannot open the metrics file (no such file?)\n");

  write_text(dir.path() / "m.jsonl", "{}\n");
  run = run_report(
      binary, (dir.path() / "m.jsonl").string() + " --csv " + (dir.path() / "m.jsonl").string());
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(has_substr(run.output, "that is the metrics file being read"));
  EXPECT_EQ(read_text(dir.path() / "m.jsonl"), "{}\n");

  run = run_report(binary, "--bogus");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(count(run.output, "\n"), 1u) << run.output;
  EXPECT_EQ(run.output.rfind("gating-report: error: ", 0), 0u) << run.output;
}

}  // namespace
}  // namespace dnn_gating::train
