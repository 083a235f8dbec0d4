// Two and three processes on 127.0.0.1 through scripts/launch.sh: identical
// parameters and buffers on every rank, and reports (after training, and of
// a saved checkpoint) that equal one process's evaluation, to the image.
#include <csignal>
#include <fstream>
#include <regex>

#include "dnn_gating/report/metrics.h"
#include "test_support.h"

namespace dgt = dnn_gating::testing;
namespace fs = std::filesystem;

namespace {

using dnn_gating::testing::quote;

std::string launch(int n, const std::string& program, const std::string& flags) {
  return "env DNN_GATING_BUILD_DIR=" + quote(DG_BINARY_DIR) + " " +
         quote(fs::path(DG_SOURCE_DIR) / "scripts" / "launch.sh") + " -n " + std::to_string(n) +
         " --threads 1 " + program + " " + flags;
}

// The report lines log parsers read and the per-layer gate table.
std::vector<std::string> report_lines(const std::string& output) {
  return dgt::matching_lines(
      output, "Accuracy of .*|Sparsity of the update phase: .*|layer[0-9.]+conv1 .*");
}

// Every line of a final report: accuracy, per-class accuracy, sparsity, the
// per-layer gate table and the cost figures.
std::vector<std::string> whole_report(const std::string& output) {
  return dgt::matching_lines(
      output,
      "Accuracy of .*|Sparsity of the update phase: .*|gated layer .*|layer[0-9.]+conv[12] .*|"
      "Dense MACs per image: .*|PG average activation bits: .*|CG FLOP reduction: .*");
}

struct ReportCase {
  const char* name;
  const char* program;
  const char* flags;
  int processes;
};

class DistributedReport : public ::testing::TestWithParam<ReportCase> {};

}  // namespace

// What an N-process training run reports, after its last epoch and in its
// metrics file, is one process's evaluation of the checkpoint it saved: the
// ranks evaluate rank 0's model, BatchNorm statistics included.
TEST_P(DistributedReport, TrainingReportsTheModelItSaves) {
  const ReportCase& c = GetParam();
  dgt::TempDir tmp;
  dgt::write_cifar_dir(tmp.path() / "cifar", /*per_file=*/64);
  // 320 training images in batches of 24: the last batch (8) splits 3/3/2
  // among 3 processes.
  const std::string data = "--data-dir " + quote(tmp.path() / "cifar") + " --batch-size 24 ";
  const fs::path trained = tmp.path() / "train.jsonl", evaluated = tmp.path() / "eval.jsonl";
  const auto train = dgt::run_command(
      "timeout 300 " + launch(c.processes, c.program,
                              std::string(c.flags) + " --epochs 2 -s " + data + "--save-dir " +
                                  quote(tmp.path() / "s") + " --metrics " + quote(trained)));
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("Parameters and buffers identical on all " +
                              std::to_string(c.processes) + " ranks"),
            std::string::npos)
      << train.output;
  const fs::path ckpt = tmp.path() / "s" / "model_resnet-20.pt";
  const std::string binary = std::string(c.program) == "pg-cifar10" ? DG_PG_BINARY : DG_CG_BINARY;
  const auto one = dgt::run_command(binary + " -t -p " + quote(ckpt) + " " + data + "--metrics " +
                                    quote(evaluated));
  ASSERT_EQ(one.exit_code, 0) << one.output;

  const auto expected = whole_report(one.output);
  ASSERT_GE(expected.size(), 16u) << one.output;  // 2 + 10 classes + table + cost lines
  EXPECT_EQ(whole_report(train.output), expected) << train.output;

  const auto t = dnn_gating::train::read_metrics(trained.string());
  const auto e = dnn_gating::train::read_metrics(evaluated.string());
  ASSERT_TRUE(t.final_record && e.final_record);
  ASSERT_EQ(t.epochs.size(), 2u);
  const auto& final_record = *t.final_record;
  EXPECT_EQ(final_record.test_accuracy, e.final_record->test_accuracy);
  EXPECT_EQ(final_record.sparsity, e.final_record->sparsity);
  EXPECT_EQ(final_record.pg_average_bits, e.final_record->pg_average_bits);
  EXPECT_EQ(final_record.cg_flop_reduction, e.final_record->cg_flop_reduction);
  EXPECT_EQ(final_record.layer_on_fraction, e.final_record->layer_on_fraction);
  EXPECT_EQ(final_record.confusion, e.final_record->confusion);
  const auto& last = t.epochs.back();
  EXPECT_EQ(last.test_accuracy, e.final_record->test_accuracy);
  EXPECT_EQ(last.sparsity, e.final_record->sparsity);
  EXPECT_EQ(last.pg_average_bits, e.final_record->pg_average_bits);
  EXPECT_EQ(last.cg_flop_reduction, e.final_record->cg_flop_reduction);
  EXPECT_EQ(last.layer_on_fraction, e.final_record->layer_on_fraction);
}

INSTANTIATE_TEST_SUITE_P(
    Models, DistributedReport,
    ::testing::Values(
        ReportCase{"pg_2", "pg-cifar10", "-pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact", 2},
        ReportCase{"pg_3", "pg-cifar10", "-pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact", 3},
        ReportCase{"cg_2", "cg-cifar10", "-gi 0.0 -gt 1.0 -pt 4 -cg --sparse_bp --use_group", 2},
        ReportCase{"cg_3", "cg-cifar10", "-gi 0.0 -gt 1.0 -pt 4 -cg --sparse_bp --use_group", 3},
        ReportCase{"postact_2", "cg-cifar10",
                   "-lr 0.08 -gi 0.0 -gt 0.6 -pt 2 -cg --use_postact --sparse_bp --use_group", 2},
        ReportCase{"postact_3_sync_bn", "cg-cifar10",
                   "-lr 0.08 -gi 0.0 -gt 0.6 -pt 2 -cg --use_postact --sparse_bp --use_group "
                   "--sync-bn",
                   3}),
    [](const ::testing::TestParamInfo<ReportCase>& info) { return info.param.name; });

TEST(DistributedRun, TwoProcessesTrainAlikeAndReportExactly) {
  dgt::TempDir tmp;
  dgt::write_cifar_dir(tmp.path() / "cifar", /*per_file=*/64);
  const std::string data = "--data-dir " + quote(tmp.path() / "cifar") + " --batch-size 32 ";
  const auto train =
      dgt::run_command("timeout 300 " + launch(2, "pg-cifar10",
                                               "-pg -w 8 -a 3 -pb 2 -spbp -pact --epochs 1 -s " +
                                                   data + "--save-dir " + quote(tmp.path() / "s")));
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("Data parallel over 2 processes: each takes 16 images"),
            std::string::npos)
      << train.output;
  EXPECT_NE(train.output.find("Parameters and buffers identical on all 2 ranks"), std::string::npos)
      << train.output;
  EXPECT_EQ(train.output.find("[rank 1]"), std::string::npos) << "rank 1 prints no progress";

  // Sharded evaluation, counts summed over ranks: the one-process report.
  const fs::path ckpt = tmp.path() / "s" / "model_resnet-20.pt";
  const auto one =
      dgt::run_command(std::string(DG_PG_BINARY) + " -t -p " + quote(ckpt) + " " + data);
  const auto two = dgt::run_command("timeout 300 " +
                                    launch(2, "pg-cifar10", "-t -p " + quote(ckpt) + " " + data));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const auto expected = report_lines(one.output);
  ASSERT_EQ(expected.size(), 21u) << one.output;  // accuracy, sparsity, 10 classes, 9 layers
  EXPECT_EQ(report_lines(two.output), expected) << two.output;

  // A global batch that does not divide: one clear error, every rank stopped.
  const auto bad = dgt::run_command("timeout 300 " + launch(3, "cg-cifar10", "--epochs 1 " + data));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(
      bad.output.find("--batch-size 32 is the global batch and must divide evenly among the 3 "
                      "processes"),
      std::string::npos)
      << bad.output;
  // A last batch smaller than the number of processes would leave one
  // without an image: refused before training, naming both flags.
  const auto short_last = dgt::run_command(
      "timeout 300 " + launch(2, "cg-cifar10", "--epochs 1 --train-limit 289 " + data));
  EXPECT_EQ(short_last.exit_code, 2) << short_last.output;
  EXPECT_NE(short_last.output.find("--batch-size 32 leaves a last batch of 1 training images, "
                                   "fewer than the 2 processes; choose another --batch-size or "
                                   "--train-limit"),
            std::string::npos)
      << short_last.output;
}

// SIGTERM to the launcher stops every rank at the same step; resumed with the
// launcher, the run ends as the uninterrupted 2-process run does.
TEST(DistributedRun, InterruptedAndResumedLikeOneRun) {
  dgt::TempDir tmp;
  dgt::write_cifar_dir(tmp.path() / "cifar", /*per_file=*/64);
  const std::string flags = "-pg -w 8 -a 3 -pb 2 -spbp -pact --data-dir " +
                            quote(tmp.path() / "cifar") +
                            " --batch-size 32 --epochs 4 --milestones 2,3 -s ";
  const auto metrics = [&](const std::string& name) { return tmp.path() / (name + ".jsonl"); };
  ASSERT_EQ(dgt::run_command("timeout 300 " +
                             launch(2, "pg-cifar10",
                                    flags + "--save-dir " + quote(tmp.path() / "straight") +
                                        " --metrics " + quote(metrics("straight"))))
                .exit_code,
            0);
  {
    dgt::Background run(launch(2, "pg-cifar10",
                               flags + "--save-dir " + quote(tmp.path() / "stopped") +
                                   " --metrics " + quote(metrics("stopped"))),
                        tmp.path() / "stopped.log");
    const auto text = [&] {
      std::ifstream in(metrics("stopped"));
      return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    ASSERT_TRUE(
        dgt::wait_until([&] { return text().find("\"epoch\":1") != std::string::npos; }, 120));
    run.signal(SIGTERM);
    ASSERT_EQ(run.wait(120), 143);
  }
  const auto resumed = dgt::run_command(
      "timeout 300 " +
      launch(2, "pg-cifar10", "--resume " + quote(tmp.path() / "stopped" / "resume_resnet-20.pt")));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  const auto a = dnn_gating::train::read_metrics(metrics("straight").string());
  const auto b = dnn_gating::train::read_metrics(metrics("stopped").string());
  ASSERT_EQ(a.epochs.size(), 4u);
  ASSERT_EQ(b.epochs.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(a.epochs[i].train_loss, b.epochs[i].train_loss) << "epoch " << i + 1;
    EXPECT_EQ(a.epochs[i].train_accuracy, b.epochs[i].train_accuracy) << "epoch " << i + 1;
  }
  ASSERT_TRUE(a.final_record && b.final_record);
  EXPECT_EQ(a.final_record->confusion, b.final_record->confusion);
  EXPECT_EQ(a.final_record->sparsity, b.final_record->sparsity);
}
