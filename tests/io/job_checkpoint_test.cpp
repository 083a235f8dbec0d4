// A checkpoint written before a setting existed (here: the network, "arch")
// still says which flag contradicts it, in one line.
#include "dnn_gating/io/job_checkpoint.h"

#include <torch/torch.h>

#include "dnn_gating/io/checkpoint.h"
#include "test_support.h"

namespace dg = dnn_gating;
namespace dgt = dnn_gating::testing;

TEST(JobCheckpoint, AnOlderDescriptionNamesTheContradictingFlag) {
  dgt::TempDir tmp;
  const std::string file = (tmp.path() / "old.pt").string();
  torch::nn::Linear model(2, 2);
  dg::train::save_checkpoint(
      file, *model,
      R"({"program":"cg-cifar10","model":{"conv":"cg","depth":20},"dataset":"cifar10"})");
  dg::train::JobConfig requested;
  requested.program = "cg-cifar10";
  requested.load_path = file;
  requested.test_only = true;
  requested.model.arch(dg::models::Arch::kResNet18);
  requested.explicit_settings["arch"] = "--arch";
  const std::string message = dgt::error_of([&] { dg::train::open_job_checkpoint(requested); });
  EXPECT_NE(message.find(file + ": flags contradict the checkpoint: --arch (arch \"resnet18\", "
                                "checkpoint \"resnet20\")"),
            std::string::npos)
      << message;
  // Without the flag, the file's network is taken.
  requested.explicit_settings.clear();
  EXPECT_EQ(dg::train::open_job_checkpoint(requested).config.model.arch(),
            dg::models::Arch::kResNet);
}
