// The trainer programs end to end on small synthetic CIFAR-format data:
// train one epoch, save, evaluate the checkpoint; and bad input.
#include <algorithm>
#include <cmath>
#include <regex>
#include <sstream>

#include "dnn_gating/report/metrics.h"
#include "test_support.h"

namespace dgt = dnn_gating::testing;
namespace fs = std::filesystem;

namespace {

using dnn_gating::testing::quote;

// Runs one of scripts/ against the executables of this build.
std::string script(const std::string& name) {
  return "DNN_GATING_BUILD_DIR=" + quote(DG_BINARY_DIR) + " " +
         quote(fs::path(DG_SOURCE_DIR) / "scripts" / name);
}

// Pulls "<value>" out of "<prefix><value> %" lines.
double percent_after(const std::string& output, const std::string& prefix) {
  const std::regex re(prefix + "([0-9.]+) %");
  std::smatch m;
  if (!std::regex_search(output, m, re)) return -1;
  return std::stod(m[1]);
}

// The report's cost lines against an independent count from its own
// per-layer table (name, positions, on %, dense MACs, effective MACs) and
// the ResNet-20 architecture at 32x32 with 3 channels: dense MACs of every
// convolution and the linear layer; a gated layer's effective MACs are its
// dense MACs times base + (1 - base) f, base = 1/p for CG and pb/b for PG
// (SPEC.md), and PG's average bits pb + (b - pb) f weighted by MACs.
struct GateFormula {
  bool pg;
  double base;   // 1/p or pb/b
  double pb, b;  // PG only
};

void expect_cost_lines_follow_table(const std::string& output, const GateFormula& gate,
                                    int gated_layers) {
  SCOPED_TRACE(output);
  const size_t begin = output.find("gated layer");
  ASSERT_NE(begin, std::string::npos);
  std::istringstream in(output.substr(begin));
  std::string line;
  std::getline(in, line);  // header
  const std::regex row(R"(^(\S+)\s+(\d+)\s+([0-9.]+)\s+(\d+)\s+(\d+)$)");
  double gated_dense = 0, gated_effective = 0, bits = 0;
  int rows = 0;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) break;
    const double f = std::stod(m[3]) / 100.0, dense = std::stod(m[4]);
    const double layer_effective = dense * (gate.base + (1 - gate.base) * f);
    // The table's own column: to its rounding of f (two decimals of %).
    EXPECT_NEAR(std::stod(m[5]), layer_effective, 5e-5 * dense + 1) << line;
    gated_dense += dense;
    gated_effective += layer_effective;
    if (gate.pg) bits += dense * (gate.pb + (gate.b - gate.pb) * f);
    ++rows;
  }
  // ResNet-20: stem 3->16 at 32x32; per stage 6 convolutions, the first of
  // stages 2 and 3 from half the channels at half the size; linear 64->10.
  const double conv = 9.0 * 16 * 16 * 32 * 32;  // every 3x3 16->16 layer at 32x32, and so on
  const double dense_total = 9.0 * 3 * 16 * 1024 + 6 * conv + 2 * (5 * conv + conv / 2) + 640;
  ASSERT_EQ(rows, gated_layers) << "rows of the per-layer table";
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(output, m, std::regex(R"(Dense MACs per image: (\d+), effective: (\d+))")));
  EXPECT_EQ(std::stod(m[1]), dense_total);
  const double effective = dense_total - gated_dense + gated_effective;
  // The on % column has two decimals: 5e-5 of each layer's MACs.
  EXPECT_NEAR(std::stod(m[2]), effective, 5e-5 * gated_dense + 1);
  if (gate.pg) {
    ASSERT_TRUE(
        std::regex_search(output, m, std::regex(R"(PG average activation bits: ([0-9.]+))")));
    EXPECT_NEAR(std::stod(m[1]), bits / gated_dense, 0.005 + 1e-4);
  } else {
    ASSERT_TRUE(std::regex_search(output, m, std::regex(R"(CG FLOP reduction: ([0-9.]+)x)")));
    EXPECT_NEAR(std::stod(m[1]), dense_total / effective, 0.005 + 1e-4);
  }
}

class TrainerEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override { dgt::write_cifar_dir(tmp_.path() / "cifar", /*per_file=*/64); }
  std::string data_flags() const {
    return " --data-dir " + quote(tmp_.path() / "cifar") + " --batch-size 32 --threads 2 ";
  }
  dgt::TempDir tmp_;
};

}  // namespace

TEST_F(TrainerEndToEnd, PgTrainsSavesAndEvaluatesCheckpoint) {
  const fs::path save_dir = tmp_.path() / "save";
  const auto train = dgt::run_command(
      std::string(DG_PG_BINARY) + " -pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact -gpu 0 --epochs 1 -s" +
      data_flags() + "--save-dir " + quote(save_dir));
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("[1,"), std::string::npos) << train.output;  // progress line
  EXPECT_NE(train.output.find("Accuracy of the network on the 64 test images: "),
            std::string::npos);
  const double sparsity = percent_after(train.output, "Sparsity of the update phase: ");
  EXPECT_GE(sparsity, 0.0);
  EXPECT_LE(sparsity, 100.0);
  EXPECT_NE(train.output.find("Accuracy of plane : "), std::string::npos);
  // Without CUDA, -gpu says so once and runs on the CPU.
  EXPECT_NE(train.output.find("running on the CPU"), std::string::npos);
  const fs::path ckpt = save_dir / "model_resnet-20.pt";
  ASSERT_TRUE(fs::exists(ckpt));

  // The checkpoint describes its model: -t -p needs no other flag.
  const auto test =
      dgt::run_command(std::string(DG_PG_BINARY) + " -t -p " + quote(ckpt) + data_flags());
  ASSERT_EQ(test.exit_code, 0) << test.output;
  // Evaluating the saved model reproduces the accuracy and sparsity of training's final report.
  EXPECT_DOUBLE_EQ(percent_after(test.output, "test images: "),
                   percent_after(train.output, "test images: "));
  EXPECT_DOUBLE_EQ(percent_after(test.output, "Sparsity of the update phase: "), sparsity);
  EXPECT_EQ(test.output.find("Epoch 1/"), std::string::npos) << "-t must not train";
  expect_cost_lines_follow_table(test.output, {true, 2.0 / 3.0, 2, 3}, /*gated_layers=*/9);
}

TEST_F(TrainerEndToEnd, CgScriptsTrainAndEvaluate) {
  for (const std::string name : {"train_cg.sh", "train_cg_postact.sh"}) {
    const fs::path save_dir = tmp_.path() / ("save-" + name);
    const auto train = dgt::run_command(script(name) + " --epochs 1 -s" + data_flags() +
                                        "--save-dir " + quote(save_dir));
    ASSERT_EQ(train.exit_code, 0) << name << "\n" << train.output;
    const double sparsity = percent_after(train.output, "Sparsity of the update phase: ");
    EXPECT_GE(sparsity, 0.0) << train.output;
    const fs::path ckpt = save_dir / "model_resnet-20.pt";
    ASSERT_TRUE(fs::exists(ckpt));
    // Consistent flags are accepted alongside the checkpoint's own description.
    const std::string model_flags =
        name == "train_cg.sh" ? " -cg -pt 4 --use_group" : " -cg -pt 2 --use_group -postact";
    const auto test = dgt::run_command(std::string(DG_CG_BINARY) + model_flags + " -t -p " +
                                       quote(ckpt) + data_flags());
    ASSERT_EQ(test.exit_code, 0) << test.output;
    EXPECT_DOUBLE_EQ(percent_after(test.output, "Sparsity of the update phase: "), sparsity);
  }
  // Gate counts cover every test image exactly, whatever the batch size and
  // thread count: the per-layer table is identical (CG's gate sees each
  // image alone in eval mode).
  const fs::path ckpt = tmp_.path() / "save-train_cg.sh" / "model_resnet-20.pt";
  auto table = [&](const std::string& flags) {
    const auto r = dgt::run_command(std::string(DG_CG_BINARY) + " -t -p " + quote(ckpt) +
                                    " --data-dir " + quote(tmp_.path() / "cifar") + flags);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    const auto begin = r.output.find("gated layer");
    return begin == std::string::npos ? std::string() : r.output.substr(begin);
  };
  // (Every output computed: which way is faster may differ between batch
  // sizes, and the two ways round differently.)
  const std::string by_7 = table(" --batch-size 7 --threads 1 --skipping never");
  // layer3.2.conv1 evaluates 64 images x 64 channels x 8 x 8 positions.
  EXPECT_NE(by_7.find("layer3.2.conv1         262144"), std::string::npos) << by_7;
  EXPECT_EQ(by_7, table(" --batch-size 128 --threads 2 --skipping never"));
  // The trained model evaluated computing every output, then only the open
  // ones: the same on-fraction in every layer to the printed digits. The two
  // ways round the open outputs differently, so a later layer's gate input
  // may move by a rounding step and a few of its 10^6 gates flip: the
  // effective MACs agree to 1e-5, not exactly.
  const auto columns = [](const std::string& text, size_t count) {
    std::istringstream in(text);
    std::string line, out;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string word;
      for (size_t i = 0; i < count && words >> word; ++i) out += word + " ";
      out += "\n";
    }
    return out;
  };
  const std::string never = table(" --batch-size 32 --skipping never");
  const std::string always = table(" --batch-size 32 --skipping always");
  EXPECT_EQ(columns(never, 3), columns(always, 3));
  expect_cost_lines_follow_table(never, {false, 1.0 / 4.0, 0, 0}, /*gated_layers=*/9);
  const std::regex effective("effective: ([0-9]+)");
  std::smatch a, b;
  ASSERT_TRUE(std::regex_search(never, a, effective)) << never;
  ASSERT_TRUE(std::regex_search(always, b, effective)) << always;
  EXPECT_NEAR(std::stod(a[1]), std::stod(b[1]), 1e-5 * std::stod(a[1]));
}

// --timing: the checkpoint evaluated as it is and densely, with the saving
// in time against the counted one. Figures are checked for form, finiteness
// and agreement with the report, not for speed.
TEST_F(TrainerEndToEnd, TimingComparesGatedAndDenseEvaluation) {
  const std::string cg = DG_CG_BINARY;
  const fs::path save_dir = tmp_.path() / "timed";
  ASSERT_EQ(dgt::run_command(cg + " -gi 1.0 -gt 1.0 -pt 4 -cg --sparse_bp --use_group --epochs 1" +
                             " -s --train-limit 64 --test-limit 64" + data_flags() + "--save-dir " +
                             quote(save_dir))
                .exit_code,
            0);
  const fs::path metrics = tmp_.path() / "timing.jsonl";
  const auto run = dgt::run_command(cg + " -t -p " + quote(save_dir / "model_resnet-20.pt") +
                                    " --timing --metrics " + quote(metrics) + data_flags());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  SCOPED_TRACE(run.output);
  // After the report.
  EXPECT_GT(run.output.find("timing: "), run.output.find("Dense MACs per image: "));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      run.output, m,
      std::regex(R"(timing: gated ([0-9.]+) img/s, dense ([0-9.]+) img/s, gated/dense time )"
                 R"(([0-9.]+)x \(batch 32, (1|2) threads?, (avx512|avx2|baseline) kernels, )"
                 R"(int8 on [a-z0-9_]+\))")));
  const double gated = std::stod(m[1]), dense = std::stod(m[2]), ratio = std::stod(m[3]);
  for (double v : {gated, dense, ratio}) EXPECT_TRUE(std::isfinite(v) && v > 0) << v;
  ASSERT_TRUE(std::regex_search(
      run.output, m,
      std::regex(R"(timing: accuracy gated ([0-9.]+) %, dense ([0-9.]+) % over 64 test images; )"
                 R"(best of 3 passes each, data loading excluded)")));
  EXPECT_EQ(m[1].str(), m[2].str());
  EXPECT_DOUBLE_EQ(std::stod(m[1]), percent_after(run.output, "test images: "));
  std::smatch macs;
  ASSERT_TRUE(std::regex_search(run.output, macs,
                                std::regex(R"(Dense MACs per image: (\d+), effective: (\d+))")));
  ASSERT_TRUE(std::regex_search(
      run.output, m,
      std::regex(R"(floor: effective/dense MACs ([0-9.]+) \(the least the gated model can )"
                 R"(cost\); realisation (?:(-?[0-9]+)% of the counted saving turned into time|)"
                 R"(n/a \(the counted saving is 0\)))")));
  const double floor = std::stod(m[1]);
  EXPECT_NEAR(floor, std::stod(macs[2]) / std::stod(macs[1]), 0.005 + 1e-6);
  // The metrics file's final record holds the same figures.
  const auto final_record = dnn_gating::train::read_metrics(metrics.string()).final_record;
  ASSERT_TRUE(final_record.has_value());
  ASSERT_TRUE(final_record->timing_time_ratio && final_record->timing_mac_fraction);
  EXPECT_NEAR(*final_record->timing_time_ratio, ratio, 0.005 + 1e-9);
  // The report's own effective and dense MACs, not a second count.
  EXPECT_NEAR(*final_record->timing_mac_fraction, std::stod(macs[2]) / std::stod(macs[1]), 1e-6);
  EXPECT_NEAR(*final_record->timing_gated_images_per_second, gated, 0.5 + 1e-9);
  EXPECT_NEAR(*final_record->timing_dense_images_per_second, dense, 0.5 + 1e-9);
  EXPECT_NEAR(
      *final_record->timing_time_ratio,
      *final_record->timing_dense_images_per_second / *final_record->timing_gated_images_per_second,
      1e-9);
  if (m[2].matched) {
    ASSERT_TRUE(final_record->timing_realisation.has_value());
    const double realisation = *final_record->timing_realisation;
    EXPECT_TRUE(std::isfinite(realisation));
    EXPECT_NEAR(100 * realisation, std::stod(m[2]), 0.5 + 1e-9);
    EXPECT_NEAR(realisation,
                (1 - *final_record->timing_time_ratio) / (1 - *final_record->timing_mac_fraction),
                1e-9);
  } else {
    EXPECT_FALSE(final_record->timing_realisation.has_value());
    EXPECT_EQ(macs[1].str(), macs[2].str()) << "n/a only without a counted saving";
  }

  // A model without gated layers: its own time and nothing to compare.
  const fs::path float_dir = tmp_.path() / "timed-float";
  ASSERT_EQ(dgt::run_command(cg + " --epochs 1 -s --train-limit 64 --test-limit 64" + data_flags() +
                             "--save-dir " + quote(float_dir))
                .exit_code,
            0);
  const auto plain = dgt::run_command(cg + " -t -p " + quote(float_dir / "model_resnet-20.pt") +
                                      " --timing" + data_flags());
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const auto lines = dgt::matching_lines(plain.output, "(timing|floor): .*");
  ASSERT_EQ(lines.size(), 1u) << plain.output;
  EXPECT_TRUE(std::regex_match(lines[0], std::regex(R"(timing: gated [0-9]+ img/s \(batch 32, )"
                                                    R"(.+\); no gated layers: nothing to skip)")))
      << lines[0];
}

TEST_F(TrainerEndToEnd, PgScriptParsesAndRuns) {
  const auto run = dgt::run_command(script("train_pg_pact.sh") + " --epochs 1" + data_flags() +
                                    "--train-limit 64 --test-limit 32");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("Accuracy of the network on the 32 test images: "), std::string::npos);
}

// --quiet prints the final report and nothing of the training on the way.
TEST_F(TrainerEndToEnd, QuietPrintsOnlyTheFinalReport) {
  const auto run =
      dgt::run_command(std::string(DG_PG_BINARY) + " -pg -w 8 -a 3 -pb 2 --epochs 1 --quiet" +
                       data_flags() + "--train-limit 64 --test-limit 32");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output.find("Accuracy of the network on the 32 test images: "), 0u) << run.output;
  EXPECT_NE(run.output.find("PG average activation bits: "), std::string::npos) << run.output;
  for (const char* chatter : {"Training ", "Epoch 1", "Using the first", "[1,", "learning rate"}) {
    EXPECT_EQ(run.output.find(chatter), std::string::npos) << chatter << " in\n" << run.output;
  }
}

TEST_F(TrainerEndToEnd, BadInputGivesOneLineAndNonZeroExit) {
  auto expect_error = [](const dgt::RunResult& r, const std::string& needle) {
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos)
        << "no stack traces: " << r.output;
    EXPECT_EQ(r.output.find("frame #"), std::string::npos) << r.output;
  };
  const std::string pg = DG_PG_BINARY;
  expect_error(
      dgt::run_command(pg + " --data-dir " + quote(tmp_.path() / "nothing") + " --epochs 1"),
      "data_batch_1.bin");
  expect_error(dgt::run_command(pg + " -pg -a 3 -pb 4"), "-pb");
  expect_error(dgt::run_command(pg + " -w"), "-w");
  expect_error(dgt::run_command(std::string(DG_CG_BINARY) + " -cg -pt 5"), "-pt");
  // --timing times the evaluation of a checkpoint: without -t it is refused in one line.
  const auto timing = dgt::run_command(std::string(DG_CG_BINARY) + " -cg --timing --epochs 1");
  expect_error(timing, "--timing");
  EXPECT_NE(timing.output.find("-t -p"), std::string::npos) << timing.output;
  EXPECT_EQ(std::count(timing.output.begin(), timing.output.end(), '\n'), 1) << timing.output;

  // A checkpoint of another model is refused, naming the file; the good
  // checkpoint in the save directory is left untouched by a failed run.
  const fs::path save_dir = tmp_.path() / "keep";
  fs::create_directories(save_dir);
  const fs::path ckpt = save_dir / "model_resnet-20.pt";
  ASSERT_EQ(dgt::run_command(pg + " --epochs 1 -s --train-limit 32 --test-limit 32" + data_flags() +
                             "--save-dir " + quote(save_dir))
                .exit_code,
            0);
  const auto size_before = fs::file_size(ckpt);
  const auto time_before = fs::last_write_time(ckpt);
  expect_error(dgt::run_command(pg + " -pg -w 8 -a 3 -pb 2 -t -p " + quote(ckpt) + data_flags()),
               ckpt.string());
  expect_error(dgt::run_command(pg + " --epochs 1 -s -p " + quote(ckpt) + " -pg -a 3 -pb 2" +
                                data_flags() + "--save-dir " + quote(save_dir)),
               "contradict");
  EXPECT_EQ(fs::file_size(ckpt), size_before);
  EXPECT_EQ(fs::last_write_time(ckpt), time_before);
  const fs::path garbage = tmp_.path() / "garbage.pt";
  std::ofstream(garbage) << "not a checkpoint";
  expect_error(dgt::run_command(pg + " -t -p " + quote(garbage) + data_flags()), "garbage.pt");
}

TEST(TrainerHelp, ListsOriginalSpellingsAndDefaults) {
  const auto help = dgt::run_command(std::string(DG_PG_BINARY) + " --help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag :
       {"-pg", "-pb", "-gtar", "-spbp", "-pact", "-sg", "-gpu", "--epochs", "--threads"}) {
    EXPECT_NE(help.output.find(flag), std::string::npos) << flag;
  }
  const auto cg_help = dgt::run_command(std::string(DG_CG_BINARY) + " --help");
  for (const char* flag :
       {"-lr", "-wd", "-pt", "-gi", "-gt", "-group", "-cg", "-shuffle", "-postact"}) {
    EXPECT_NE(cg_help.output.find(flag), std::string::npos) << flag;
  }
}
