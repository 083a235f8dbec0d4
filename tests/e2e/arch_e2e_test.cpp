// ResNet-18 and VGG-16 through both trainers: train, save a checkpoint that
// names its network, evaluate it with -t -p alone; on CIFAR-10's layout
// (synthetic files) and Fashion-MNIST's (when installed); refused flags.
#include <regex>

#include "dnn_gating/io/pytorch_state_dict.h"
#include "dnn_gating/models/torchvision.h"
#include "test_support.h"

namespace dgt = dnn_gating::testing;
namespace fs = std::filesystem;

namespace {

using dnn_gating::testing::quote;

// Rows of the per-layer gate table whose layer name starts with `prefix`.
int table_rows(const std::string& output, const std::string& prefix) {
  return static_cast<int>(
      dgt::matching_lines(output, "^" + prefix + "[0-9.a-z]+ +[0-9]+ +[0-9.]+ +[0-9]+ +[0-9]+$")
          .size());
}

double accuracy(const std::string& output) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex(R"(test images: ([0-9.]+) %)"))) return -1;
  return std::stod(m[1]);
}

class Architectures : public ::testing::Test {
 protected:
  void SetUp() override { dgt::write_cifar_dir(tmp_.path() / "cifar", /*per_file=*/32); }
  std::string cifar() const {
    return " --data-dir " + quote(tmp_.path() / "cifar") +
           " --train-limit 32 --batch-size 16 --threads 2 ";
  }
  // Trains one epoch, then evaluates the checkpoint with -t -p alone; both
  // reports agree and hold `gated` rows of `prefix`.
  void train_and_evaluate(const std::string& program, const std::string& flags,
                          const std::string& data, const std::string& file,
                          const std::string& prefix, int gated) {
    const fs::path dir = tmp_.path() / ("save-" + std::to_string(++runs_));
    const auto train =
        dgt::run_command(program + flags + " --epochs 1 -s" + data + " --save-dir " + quote(dir));
    ASSERT_EQ(train.exit_code, 0) << train.output;
    ASSERT_TRUE(fs::exists(dir / file)) << train.output;
    EXPECT_EQ(table_rows(train.output, prefix), gated) << train.output;
    const auto test = dgt::run_command(program + " -t -p " + quote(dir / file) + data);
    ASSERT_EQ(test.exit_code, 0) << test.output;
    EXPECT_EQ(accuracy(test.output), accuracy(train.output)) << test.output;
    EXPECT_EQ(table_rows(test.output, prefix), gated) << test.output;
  }
  dgt::TempDir tmp_;
  int runs_ = 0;
};

}  // namespace

TEST_F(Architectures, ResNet18AndVgg16OnCifarLayout) {
  const std::string cg = DG_CG_BINARY, pg = DG_PG_BINARY;
  train_and_evaluate(cg, " -gi 0.0 -gt 1.0 -pt 4 -cg --sparse_bp --use_group --arch resnet18",
                     cifar(), "model_resnet-18.pt", "layer", 8);
  train_and_evaluate(pg, " -pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact --arch vgg16", cifar(),
                     "model_vgg-16.pt", "features\\.", 12);
}

TEST_F(Architectures, OnFashionMnistLayout) {
  const fs::path fashion = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(fashion / "t10k-images-idx3-ubyte.gz") &&
      !fs::exists(fashion / "t10k-images-idx3-ubyte")) {
    if (std::getenv("CI") != nullptr) FAIL() << "Fashion-MNIST missing (CI is set)";
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
  const std::string data =
      " --dataset fashion-mnist --train-limit 32 --test-limit 32 --batch-size 16 --threads 2 ";
  train_and_evaluate(std::string(DG_PG_BINARY), " -pg -w 8 -a 3 -pb 2 --arch resnet18", data,
                     "model_resnet-18.pt", "layer", 8);
  train_and_evaluate(std::string(DG_CG_BINARY), " -cg -pt 4 --use_group --arch vgg16", data,
                     "model_vgg-16.pt", "features\\.", 12);
}

TEST_F(Architectures, RefusedFlags) {
  const std::string cg = DG_CG_BINARY;
  const auto expect_refused = [](const dgt::RunResult& r, const std::string& needle) {
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;
  };
  expect_refused(dgt::run_command(cg + " --arch vgg19 --epochs 1" + cifar()), "--arch");
  expect_refused(dgt::run_command(cg + " --arch resnet18 --depth 32 --epochs 1" + cifar()),
                 "--depth");
  expect_refused(dgt::run_command(cg + " --imagenet-stem --epochs 1" + cifar()), "--imagenet-stem");
  expect_refused(dgt::run_command(cg + " -cg -postact --arch vgg16 --epochs 1" + cifar()),
                 "-postact");
}

// A state dict of float weights in torchvision's names (written here from a
// float ResNet-18, whose names are torchvision's) starts a gated fine-tune:
// every float tensor loaded, the gates' own tensors listed as initial.
TEST_F(Architectures, FloatWeightsStartAGatedFineTune) {
  torch::manual_seed(9);
  auto source = dnn_gating::models::make_model(
      dnn_gating::models::ResNetOptions().arch(dnn_gating::models::Arch::kResNet18));
  const fs::path weights = tmp_.path() / "resnet18-float.pt";
  dnn_gating::train::write_pytorch_state_dict(weights.string(), *source.module);
  const auto run =
      dgt::run_command(std::string(DG_CG_BINARY) + " -cg -pt 4 --use_group --arch resnet18 -p " +
                       quote(weights) + " --epochs 1" + cifar());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  // 122 float tensors; each of the 8 gated layers adds threshold, mask and
  // its gate's BatchNorm without affine parameters (running mean, variance,
  // step count): 40.
  EXPECT_NE(run.output.find("Started from the float weights of " + weights.string() +
                            ": 122 tensors loaded, 0 convolution biases folded into the "
                            "BatchNorm after them, 40 kept their initial values, 0 of the file "
                            "not used"),
            std::string::npos)
      << run.output;
}
