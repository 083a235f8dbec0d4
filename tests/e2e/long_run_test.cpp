// Long runs that survive: resume after an interruption to the same weights
// and metrics, clean stops on SIGINT and SIGTERM, divergence, unwritable
// directories and full disks, refused before or without losing anything.
#include <csignal>
#include <fstream>
#include <regex>

#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/report/metrics.h"
#include "test_support.h"

namespace dgt = dnn_gating::testing;
namespace dtr = dnn_gating::train;
namespace fs = std::filesystem;

namespace {

using dnn_gating::testing::quote;

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Files a save left behind half-written.
std::vector<std::string> partial_files(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.path().extension() == ".partial") out.push_back(entry.path().string());
  }
  return out;
}

// Epoch records without their timings, as JSON lines.
std::vector<std::string> epochs_without_timing(const fs::path& metrics) {
  std::vector<std::string> out;
  for (auto record : dtr::read_metrics(metrics.string()).epochs) {
    record.seconds = 0;
    record.images_per_second = 0;
    dtr::MetricsWriter writer("", "", {record});
    out.push_back(writer.jsonl());
  }
  return out;
}

class LongRun : public ::testing::Test {
 protected:
  void SetUp() override { dgt::write_cifar_dir(tmp_.path() / "cifar", /*per_file=*/64); }
  // One thread: the same seed then gives the same bits.
  std::string pg(const std::string& flags) const {
    return std::string(DG_PG_BINARY) + " -pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact --data-dir " +
           quote(tmp_.path() / "cifar") + " --batch-size 32 --threads 1 " + flags;
  }
  fs::path path(const std::string& name) const { return tmp_.path() / name; }
  dgt::TempDir tmp_;
};

}  // namespace

// 4 epochs straight, and 4 epochs stopped by SIGINT part-way and resumed,
// give bit-identical weights and metrics (but for the timings).
TEST_F(LongRun, InterruptedAndResumedRunEqualsAStraightOne) {
  const std::string common = "--epochs 4 --milestones 2,3 -s ";
  const auto straight = dgt::run_command(pg(common + "--save-dir " + quote(path("straight")) +
                                            " --metrics " + quote(path("straight.jsonl"))));
  ASSERT_EQ(straight.exit_code, 0) << straight.output;

  const fs::path metrics = path("resumed.jsonl");
  const fs::path log = path("interrupted.log");
  dgt::Background run(pg(common + "--save-every 1 --save-dir " + quote(path("resumed")) +
                         " --metrics " + quote(metrics) + " --metrics-csv " +
                         quote(path("resumed.csv")) + " --plot " + quote(path("resumed.svg"))),
                      log);
  // Stop it once its first epoch is on record: some batches of the second.
  ASSERT_TRUE(dgt::wait_until(
      [&] { return read_text(metrics).find("\"epoch\":1") != std::string::npos; }, 120))
      << read_text(log);
  run.signal(SIGINT);
  ASSERT_EQ(run.wait(120), 130) << read_text(log);
  const std::string stopped = read_text(log);
  const fs::path resume = path("resumed") / "resume_resnet-20.pt";
  EXPECT_NE(stopped.find("stopped by SIGINT"), std::string::npos) << stopped;
  EXPECT_NE(stopped.find("Resume with: pg-cifar10 --resume " + resume.string()), std::string::npos)
      << stopped;
  EXPECT_TRUE(partial_files(tmp_.path()).empty());
  ASSERT_TRUE(fs::exists(resume));

  // No other flag needed; the log says where it continues.
  const auto resumed =
      dgt::run_command(std::string(DG_PG_BINARY) + " --resume " + quote(resume) + " --threads 1");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(std::regex_search(resumed.output,
                                std::regex("Resuming pg-cifar10 from .*: epoch [2-4] of 4")))
      << resumed.output;

  const auto a = dtr::read_checkpoint((path("straight") / "model_resnet-20.pt").string());
  const auto b = dtr::read_checkpoint((path("resumed") / "model_resnet-20.pt").string());
  ASSERT_EQ(a.state.size(), b.state.size());
  for (const auto& [key, tensor] : a.state) {
    EXPECT_TRUE(torch::equal(tensor, b.state.at(key))) << key;
  }
  // The metrics files continued instead of starting over: four epochs each.
  const auto expected = epochs_without_timing(path("straight.jsonl"));
  ASSERT_EQ(expected.size(), 4u);
  EXPECT_EQ(epochs_without_timing(metrics), expected);
  const auto final_resumed = dtr::read_metrics(metrics.string()).final_record;
  const auto final_straight = dtr::read_metrics(path("straight.jsonl").string()).final_record;
  ASSERT_TRUE(final_resumed && final_straight);
  EXPECT_EQ(final_resumed->test_accuracy, final_straight->test_accuracy);
  EXPECT_EQ(final_resumed->confusion, final_straight->confusion);
  const std::string csv = read_text(path("resumed.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5) << csv;
  EXPECT_NE(read_text(path("resumed.svg")).find("<polyline id=\"train_loss\""), std::string::npos);
}

// SIGTERM stops like SIGINT (exit 143); a second signal ends the run at once,
// still leaving no partial file.
TEST_F(LongRun, SigtermStopsCleanlyAndASecondSignalAtOnce) {
  const fs::path log = path("term.log");
  {
    dgt::Background run(pg("--epochs 50 --save-dir " + quote(path("term"))), log);
    ASSERT_TRUE(dgt::wait_until(
        [&] { return read_text(log).find("Epoch 1/50") != std::string::npos; }, 120))
        << read_text(log);
    run.signal(SIGTERM);
    ASSERT_EQ(run.wait(120), 143) << read_text(log);
  }
  EXPECT_NE(read_text(log).find("stopped by SIGTERM"), std::string::npos) << read_text(log);
  EXPECT_TRUE(fs::exists(path("term") / "resume_resnet-20.pt"));

  dgt::Background run(pg("--epochs 50 --save-dir " + quote(path("twice"))), path("twice.log"));
  ASSERT_TRUE(dgt::wait_until(
      [&] { return read_text(path("twice.log")).find("Epoch 1/50") != std::string::npos; }, 120));
  run.signal(SIGINT);
  run.signal(SIGINT);
  EXPECT_EQ(run.wait(120), 130) << read_text(path("twice.log"));
  EXPECT_TRUE(partial_files(tmp_.path()).empty());
  // Whatever was saved is whole.
  const fs::path resume = path("twice") / "resume_resnet-20.pt";
  if (fs::exists(resume)) EXPECT_NO_THROW(dtr::read_checkpoint(resume.string()));
}

TEST_F(LongRun, ResumeRefusesContradictingFlagsAndOtherCheckpoints) {
  ASSERT_EQ(
      dgt::run_command(pg("--epochs 1 --save-every 1 -s --save-dir " + quote(path("s")))).exit_code,
      0);
  const fs::path resume = path("s") / "resume_resnet-20.pt";
  auto run = dgt::run_command(std::string(DG_PG_BINARY) + " --resume " + quote(resume) +
                              " -a 4 --batch-size 16");
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("flags contradict the checkpoint: -a/--abits (abits 4, checkpoint 3), "
                            "--batch-size (batch_size 16, checkpoint 32)"),
            std::string::npos)
      << run.output;
  run = dgt::run_command(std::string(DG_PG_BINARY) + " --resume " +
                         quote(path("s") / "model_resnet-20.pt"));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("not a resumable checkpoint"), std::string::npos) << run.output;
  // A finished run resumes to its final report.
  run = dgt::run_command(std::string(DG_PG_BINARY) + " --resume " + quote(resume));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("Accuracy of the network on the 64 test images"), std::string::npos);
}

// A diverging run stops at once, naming epoch and batch, and keeps the last
// good checkpoint.
TEST_F(LongRun, DivergenceStopsAndKeepsTheLastGoodCheckpoint) {
  const std::string cg =
      std::string(DG_CG_BINARY) + " -cg --data-dir " + quote(tmp_.path() / "cifar") +
      " --batch-size 32 --threads 1 --epochs 1 -s" + " --save-dir " + quote(path("cg"));
  ASSERT_EQ(dgt::run_command(cg).exit_code, 0);
  const fs::path model = path("cg") / "model_resnet-20.pt";
  const std::string good = read_text(model);
  const auto run = dgt::run_command(cg + " -lr 1e30");
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_TRUE(
      std::regex_search(run.output, std::regex("training diverged at epoch 1 batch [0-9]+: ")))
      << run.output;
  EXPECT_EQ(read_text(model), good);
}

// Saving where it cannot is found out before the first epoch; a disk that
// fills up during a save leaves the previous checkpoint and no partial file.
TEST_F(LongRun, UnwritableDirectoriesAndFullDisks) {
  std::ofstream(path("plain-file")) << "x";
  auto run = dgt::run_command(pg("--epochs 1 -s --save-dir " + quote(path("plain-file") / "save")));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find((path("plain-file") / "save").string()), std::string::npos)
      << run.output;
  EXPECT_EQ(run.output.find("Epoch 1/"), std::string::npos) << "checked before training";

  ASSERT_EQ(dgt::run_command(pg("--epochs 1 -s --save-dir " + quote(path("full")))).exit_code, 0);
  const fs::path model = path("full") / "model_resnet-20.pt";
  const std::string good = read_text(model);
  // A 200 KiB file size limit: the 1 MiB checkpoint cannot be written.
  run = dgt::run_command("ulimit -f 200; exec " +
                         pg("--epochs 1 -s --save-dir " + quote(path("full"))));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find(model.string() + ": cannot write the checkpoint (File too large)"),
            std::string::npos)
      << run.output;
  EXPECT_EQ(read_text(model), good);
  EXPECT_TRUE(partial_files(path("full")).empty());
}

TEST_F(LongRun, OutOfRangeSettingsAreRefusedBeforeAnyWork) {
  auto expect_refused = [&](const std::string& flags, const std::string& needle) {
    const auto run = dgt::run_command(pg(flags));
    EXPECT_EQ(run.exit_code, 2) << flags << "\n" << run.output;
    EXPECT_NE(run.output.find(needle), std::string::npos) << flags << "\n" << run.output;
    EXPECT_EQ(run.output.find("Epoch 1/"), std::string::npos) << run.output;
  };
  expect_refused("--train-limit 1000", "--train-limit 1000 exceeds the training split");
  expect_refused("--test-limit 65", "--test-limit 65 exceeds the test split");
  expect_refused("--batch-size 0", "--batch-size");
  expect_refused("--epochs 0", "--epochs");
  expect_refused("--depth 21", "--depth must be 6n+2");
  expect_refused("--save-every -1", "--save-every");
}
