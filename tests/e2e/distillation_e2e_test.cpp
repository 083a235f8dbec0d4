// Knowledge distillation from the command line: a float teacher trained and
// saved by the trainers, a student distilled from it (from the checkpoint,
// and from the plain state dict it exported), the teacher's figure against
// the teacher's own evaluation, and refused teachers.
#include <fstream>
#include <regex>

#include "test_support.h"

namespace dgt = dnn_gating::testing;
namespace fs = std::filesystem;

namespace {

using dnn_gating::testing::quote;

std::string read(const fs::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The train_loss values of a metrics file's epoch records.
std::vector<std::string> train_losses(const fs::path& metrics) {
  std::vector<std::string> out;
  const std::string text = read(metrics);
  const std::regex loss(R"("train_loss":([-0-9.e+]+))");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), loss); it != std::sregex_iterator();
       ++it) {
    out.push_back((*it)[1]);
  }
  return out;
}

class Distillation : public ::testing::Test {
 protected:
  void SetUp() override {
    dgt::write_cifar_dir(tmp_.path() / "cifar", /*per_file=*/32);
    // The teacher: a float ResNet-20, saved and exported as a plain state dict.
    const auto run =
        dgt::run_command(std::string(DG_CG_BINARY) + data() + " --epochs 1 -s" + " --save-dir " +
                         quote(tmp_.path() / "teacher") + " --export-pytorch " + quote(plain()));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    ASSERT_TRUE(fs::exists(teacher())) << run.output;
  }
  std::string data() const {
    return " --data-dir " + quote(tmp_.path() / "cifar") +
           " --train-limit 32 --batch-size 16 --threads 1 --seed 3 ";
  }
  fs::path teacher() const { return tmp_.path() / "teacher" / "model_resnet-20.pt"; }
  fs::path plain() const { return tmp_.path() / "teacher-plain.pt"; }
  // A PG student trained one epoch with `flags`; its metrics file.
  dgt::RunResult student(const std::string& flags, const std::string& name) {
    return dgt::run_command(std::string(DG_PG_BINARY) + " -pg -w 8 -a 3 -pb 2 -gtar 1 -spbp" +
                            data() + " --epochs 1 --metrics " + quote(tmp_.path() / name) + flags);
  }
  dgt::TempDir tmp_;
};

}  // namespace

TEST_F(Distillation, StudentLearnsFromTheTeacherItNames) {
  const auto teacher_eval =
      dgt::run_command(std::string(DG_CG_BINARY) + " -t -p " + quote(teacher()) + data());
  ASSERT_EQ(teacher_eval.exit_code, 0) << teacher_eval.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(teacher_eval.output, m, std::regex(R"(test images: ([0-9.]+) %)")));
  const double teacher_accuracy = std::stod(m[1]);

  const auto alone = student("", "alone.jsonl");
  ASSERT_EQ(alone.exit_code, 0) << alone.output;
  const auto kd =
      student(" --teacher " + quote(teacher()) + " --kd-temperature 3 --kd-alpha 0.5", "kd.jsonl");
  ASSERT_EQ(kd.exit_code, 0) << kd.output;
  ASSERT_TRUE(std::regex_search(
      kd.output, m,
      std::regex(
          R"(Distilling from .*model_resnet-20\.pt \(float ResNet-20, test accuracy ([0-9.]+) %\): temperature 3, alpha 0\.5)")))
      << kd.output;
  EXPECT_NEAR(std::stod(m[1]), teacher_accuracy, 0.05);  // the report rounds to 0.1
  // The distillation term changes what the student trains on (its value
  // against the formula, and a teacher left untouched by the student's steps:
  // DistillationStep in tests/train/distillation_test.cpp) ...
  ASSERT_EQ(train_losses(tmp_.path() / "kd.jsonl").size(), 1u);
  EXPECT_NE(train_losses(tmp_.path() / "kd.jsonl"), train_losses(tmp_.path() / "alone.jsonl"));
  // ... and without it (alpha 0) the run is the one without a teacher.
  const auto none = student(" --teacher " + quote(plain()) + " --kd-alpha 0", "none.jsonl");
  ASSERT_EQ(none.exit_code, 0) << none.output;
  EXPECT_EQ(train_losses(tmp_.path() / "none.jsonl"), train_losses(tmp_.path() / "alone.jsonl"));
}

TEST_F(Distillation, RefusesTeachersThatDoNotFit) {
  // The plain state dict is a ResNet-20, not a ResNet-18.
  auto run = student(" --teacher " + quote(plain()) + " --teacher-arch resnet18", "a.jsonl");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("teacher-plain.pt: not a whole float ResNet-18"), std::string::npos)
      << run.output;
  // A checkpoint of ours names its own network.
  run = student(" --teacher " + quote(teacher()) + " --teacher-arch resnet18", "b.jsonl");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("--teacher-arch names the network of a plain state dict"),
            std::string::npos)
      << run.output;
  run = student(" --kd-alpha 0.5", "d.jsonl");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("--kd-alpha sets the distillation from a --teacher"), std::string::npos)
      << run.output;
  run = student(" --teacher " + quote(teacher()) + " --kd-alpha 1.5", "c.jsonl");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("--kd-alpha"), std::string::npos) << run.output;
  run = dgt::run_command(std::string(DG_CG_BINARY) + " -t -p " + quote(teacher()) + " --teacher " +
                         quote(teacher()) + data());
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("--teacher distils while training"), std::string::npos) << run.output;
  EXPECT_EQ(dgt::matching_lines(run.output, "terminate|Exception raised from").size(), 0u)
      << run.output;
}
