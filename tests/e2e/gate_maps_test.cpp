// -t -p CKPT --maps DIR from the trainers: the pictures and the per-image
// cost table of a saved PG and CG model, their figures against the report
// of the same run, and refused values of --maps and --map-images.
#include <fstream>
#include <regex>
#include <sstream>

#include "dnn_gating/report/png.h"
#include "test_support.h"

namespace dgt = dnn_gating::testing;
namespace fs = std::filesystem;

namespace {

using dnn_gating::testing::quote;

class GateMaps : public ::testing::Test {
 protected:
  void SetUp() override { dgt::write_cifar_dir(tmp_.path() / "cifar", /*per_file=*/64); }
  std::string data_flags() const {
    return " --data-dir " + quote(tmp_.path() / "cifar") + " --batch-size 32 --threads 2 ";
  }
  // Trains one epoch of `flags` and returns the saved checkpoint.
  fs::path trained(const std::string& program, const std::string& flags, const std::string& name) {
    const fs::path dir = tmp_.path() / name;
    const auto r = dgt::run_command(program + flags + " --epochs 1 -s --train-limit 64" +
                                    data_flags() + "--save-dir " + quote(dir));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return dir / "model_resnet-20.pt";
  }
  dgt::TempDir tmp_;
};

// The mean of the CSV's effective_macs column, and its number of rows.
std::pair<double, int> csv_mean(const fs::path& csv) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("index,label,class,predicted,predicted_class,correct,effective_macs,", 0),
            0u)
      << line;
  double sum = 0;
  int rows = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream s(line);
    std::string cell;
    while (std::getline(s, cell, ',')) cells.push_back(cell);
    EXPECT_GE(cells.size(), 9u) << line;
    if (cells.size() < 9) continue;
    sum += std::stod(cells[6]);
    ++rows;
  }
  return {rows == 0 ? 0.0 : sum / rows, rows};
}

// The report's effective MACs and the per-image mean it prints.
void expect_mean_is_report(const std::string& output, const fs::path& csv) {
  std::smatch m;
  ASSERT_TRUE(std::regex_search(output, m, std::regex(R"(effective: (\d+) \(gate)"))) << output;
  const double effective = std::stod(m[1]);
  ASSERT_TRUE(std::regex_search(
      output, m, std::regex(R"(Per-image effective MACs over (\d+) test images: mean (\d+))")))
      << output;
  EXPECT_EQ(std::stoi(m[1]), 64);
  EXPECT_NEAR(std::stod(m[2]), effective, 1.0);
  const auto [mean, rows] = csv_mean(csv);
  EXPECT_EQ(rows, 64);
  EXPECT_NEAR(mean, effective, 1.0);
}

void expect_png(const fs::path& file) {
  ASSERT_TRUE(fs::exists(file)) << file;
  const auto picture = dnn_gating::train::read_png(file.string());
  EXPECT_GT(picture.width(), 100) << file;
  EXPECT_GT(picture.height(), 100) << file;
}

}  // namespace

TEST_F(GateMaps, PrecisionGatedCheckpoint) {
  const std::string pg = DG_PG_BINARY;
  const fs::path ckpt = trained(pg, " -pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact", "pg");
  const fs::path maps = tmp_.path() / "pg-maps";
  const auto r = dgt::run_command(pg + " -t -p " + quote(ckpt) + " --maps " + quote(maps) +
                                  " --map-images 3,17,40" + data_flags());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* name : {"image_3.png", "image_17.png", "image_40.png", "overview.png",
                           "image_costs_histogram.png", "image_costs_extremes.png"}) {
    expect_png(maps / name);
  }
  EXPECT_FALSE(fs::exists(maps / "image_0.png"));
  expect_mean_is_report(r.output, maps / "image_costs.csv");
  // One heatmap per PG layer (18) and the input, in 6 columns of 96 pixels.
  const auto picture = dnn_gating::train::read_png((maps / "image_3.png").string());
  EXPECT_GE(picture.width(), 6 * 96 + 96);
}

TEST_F(GateMaps, ChannelGatedCheckpointAndRefusedValues) {
  const std::string cg = DG_CG_BINARY;
  const fs::path ckpt = trained(cg, " -gi 0.0 -gt 1.0 -pt 4 -cg --sparse_bp --use_group", "cg");
  const fs::path maps = tmp_.path() / "cg-maps";
  const std::string evaluate = cg + " -t -p " + quote(ckpt) + data_flags();
  const auto r = dgt::run_command(evaluate + " --maps " + quote(maps));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 8; ++i) expect_png(maps / ("image_" + std::to_string(i) + ".png"));
  EXPECT_FALSE(fs::exists(maps / "image_8.png"));
  expect_png(maps / "overview.png");
  expect_mean_is_report(r.output, maps / "image_costs.csv");

  const auto expect_refused = [](const dgt::RunResult& result, const std::string& needle) {
    EXPECT_NE(result.exit_code, 0) << result.output;
    EXPECT_NE(result.output.find(needle), std::string::npos) << result.output;
    EXPECT_EQ(result.output.find("Exception raised from"), std::string::npos) << result.output;
  };
  const std::string other = " --maps " + quote(tmp_.path() / "other");
  for (const char* bad : {"0", "65", "abc", "3,,4", "-1", "3,3", "2.5", "3,+4"}) {
    SCOPED_TRACE(bad);
    expect_refused(dgt::run_command(evaluate + other + " --map-images '" + bad + "'"),
                   "--map-images");
  }
  expect_refused(dgt::run_command(evaluate + other + " --map-images 3,64"),
                 "--map-images: test image 64 does not exist");
  expect_refused(dgt::run_command(evaluate + " --map-images 3"), "--map-images");
  expect_refused(dgt::run_command(cg + other + " --epochs 1" + data_flags()), "--maps");
  EXPECT_FALSE(fs::exists(tmp_.path() / "other" / "image_costs.csv"));
  // A model without gates has nothing to draw.
  const fs::path plain = trained(cg, "", "float");
  expect_refused(dgt::run_command(cg + " -t -p " + quote(plain) + other + data_flags()),
                 "no gated layers");
}
