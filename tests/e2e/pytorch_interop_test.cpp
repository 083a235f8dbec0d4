// PyTorch state dict files through the trainers: export a model, evaluate the
// exported file as a state dict of the original's would be, and fine-tune from it.
#include <regex>

#include "test_support.h"

namespace dgt = dnn_gating::testing;
namespace fs = std::filesystem;

namespace {

using dnn_gating::testing::quote;

// The report lines log parsers read: overall and per-class accuracy, sparsity.
std::vector<std::string> report_lines(const std::string& output) {
  return dgt::matching_lines(output, "Accuracy of .*|Sparsity of the update phase: .*");
}

}  // namespace

TEST(PytorchInterop, ExportedStateDictEvaluatesToTheSameReport) {
  dgt::TempDir tmp;
  dgt::write_cifar_dir(tmp.path() / "cifar", /*per_file=*/64);
  const std::string pg = std::string(DG_PG_BINARY);
  const std::string model_flags = " -pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact";
  const std::string data = " --data-dir " + quote(tmp.path() / "cifar") + " --batch-size 32 ";
  ASSERT_EQ(dgt::run_command(pg + model_flags + data + "--epochs 1 -s --save-dir " +
                             quote(tmp.path() / "save"))
                .exit_code,
            0);
  const fs::path exported = tmp.path() / "model_resnet-20.pt";
  const auto ours =
      dgt::run_command(pg + " -t -p " + quote(tmp.path() / "save" / "model_resnet-20.pt") + data +
                       "--export-pytorch " + quote(exported));
  ASSERT_EQ(ours.exit_code, 0) << ours.output;
  ASSERT_TRUE(fs::exists(exported));

  // The state dict carries no description: the flags describe the model.
  const auto theirs = dgt::run_command(pg + model_flags + " -t -p " + quote(exported) + data);
  ASSERT_EQ(theirs.exit_code, 0) << theirs.output;
  const auto expected = report_lines(ours.output);
  ASSERT_EQ(expected.size(), 12u) << ours.output;
  EXPECT_EQ(report_lines(theirs.output), expected);

  // Flags of another model: the keys that do not fit, and why the flags matter.
  const auto wrong = dgt::run_command(pg + " -w 8 -a 3 -pact -t -p " + quote(exported) + data);
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(
      wrong.output.find("checkpoint does not fit this model: unexpected layer1.0.conv1.threshold"),
      std::string::npos)
      << wrong.output;
  EXPECT_NE(wrong.output.find("the file does not describe its model, so the flags do"),
            std::string::npos)
      << wrong.output;

  // Fine-tuning starts from it.
  const auto tuned =
      dgt::run_command(pg + model_flags + " -p " + quote(exported) + data + "--epochs 1");
  EXPECT_EQ(tuned.exit_code, 0) << tuned.output;
}
