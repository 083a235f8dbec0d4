// The trainer programs end to end on small synthetic CIFAR-format data:
// train one epoch, save, evaluate the checkpoint; and bad input.
#include <regex>
#include <sstream>

#include "test_support.h"

namespace dgt = dnn_gating::testing;
namespace fs = std::filesystem;

namespace {

std::string quote(const fs::path& p) { return "'" + p.string() + "'"; }

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
  const std::regex effective("effective: ([0-9]+)");
  std::smatch a, b;
  ASSERT_TRUE(std::regex_search(never, a, effective)) << never;
  ASSERT_TRUE(std::regex_search(always, b, effective)) << always;
  EXPECT_NEAR(std::stod(a[1]), std::stod(b[1]), 1e-5 * std::stod(a[1]));
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
