// The distillation loss against a hand computation and Hinton's gradient,
// and the student's training steps against the teacher's evaluation-mode
// logits.
#include "dnn_gating/train/distillation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/io/model_meta.h"
#include "dnn_gating/models/torchvision.h"
#include "test_support.h"

namespace dtr = dnn_gating::train;
namespace dgm = dnn_gating::models;

namespace {

std::vector<double> softmax(const std::vector<double>& z, double t) {
  double sum = 0;
  std::vector<double> out;
  for (const double v : z) sum += std::exp(v / t);
  for (const double v : z) out.push_back(std::exp(v / t) / sum);
  return out;
}

// alpha T^2 KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha)
// cross entropy, averaged over the batch, in double from [B, C] logits.
double hinton_loss(const torch::Tensor& student, const torch::Tensor& teacher,
                   const torch::Tensor& labels, double t, double alpha) {
  const auto s = student.to(torch::kDouble).contiguous();
  const auto q = teacher.to(torch::kDouble).contiguous();
  const int64_t batch = s.size(0), classes = s.size(1);
  double kl = 0, ce = 0;
  for (int64_t i = 0; i < batch; ++i) {
    std::vector<double> zs(classes), zt(classes);
    for (int64_t c = 0; c < classes; ++c) {
      zs[c] = s[i][c].item<double>();
      zt[c] = q[i][c].item<double>();
    }
    const auto ps = softmax(zs, t), pt = softmax(zt, t);
    for (int64_t c = 0; c < classes; ++c) kl += pt[c] * std::log(pt[c] / ps[c]);
    ce -= std::log(softmax(zs, 1.0)[labels[i].item<int64_t>()]);
  }
  return alpha * t * t * kl / batch + (1 - alpha) * ce / batch;
}

// Every parameter and buffer of `module`, copied, by name.
std::map<std::string, torch::Tensor> state_of(torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : module.named_buffers()) out[b.key()] = b.value().clone();
  return out;
}

}  // namespace

TEST(DistillationLoss, EqualsTheHandComputedLoss) {
  const std::vector<std::vector<double>> student{{1.0, 2.0, 0.5}, {-1.0, 0.0, 3.0}};
  const std::vector<std::vector<double>> teacher{{3.0, 1.0, 0.0}, {0.5, 0.5, 2.0}};
  const std::vector<int64_t> labels{0, 2};
  const double t = 2.5, alpha = 0.7;
  double kl = 0, ce = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto ps = softmax(student[i], t), pt = softmax(teacher[i], t);
    for (size_t c = 0; c < 3; ++c) kl += pt[c] * std::log(pt[c] / ps[c]);
    ce -= std::log(softmax(student[i], 1.0)[labels[i]]);
  }
  kl /= 2;
  ce /= 2;
  const double expected = alpha * t * t * kl + (1 - alpha) * ce;
  const auto s = torch::tensor({1.0, 2.0, 0.5, -1.0, 0.0, 3.0}, torch::kDouble).view({2, 3});
  const auto q = torch::tensor({3.0, 1.0, 0.0, 0.5, 0.5, 2.0}, torch::kDouble).view({2, 3});
  const auto y = torch::tensor({0, 2}, torch::kLong);
  EXPECT_NEAR(dtr::distillation_loss(s, q, y, t, alpha).item<double>(), expected, 1e-12);
  // alpha 0 is the cross entropy alone; alpha 1 the distillation term alone.
  EXPECT_NEAR(dtr::distillation_loss(s, q, y, t, 0.0).item<double>(), ce, 1e-12);
  EXPECT_NEAR(dtr::distillation_loss(s, q, y, t, 1.0).item<double>(), t * t * kl, 1e-12);
}

// Hinton et al.: the gradient of T^2 KL with respect to the student's logits
// is T (softmax(s/T) - softmax(t/T)), per image (over the batch: / B); the
// teacher gets none.
TEST(DistillationLoss, GradientIsHintons) {
  torch::manual_seed(0);
  const double t = 4.0;
  const auto s = torch::randn({3, 5}, torch::kDouble).requires_grad_(true);
  const auto q = torch::randn({3, 5}, torch::kDouble).requires_grad_(true);
  const auto y = torch::tensor({1, 0, 4}, torch::kLong);
  dtr::distillation_loss(s, q, y, t, 1.0).backward();
  const auto expected =
      t * (torch::softmax(s.detach() / t, 1) - torch::softmax(q.detach() / t, 1)) / 3.0;
  EXPECT_TRUE(torch::allclose(s.grad(), expected, 1e-12, 1e-12));
  EXPECT_FALSE(q.grad().defined());
}

// The trainer's way of distilling (load_teacher, distillation_task_loss,
// train_step): each step's task loss is the formula over the student's
// training-mode logits and the teacher's evaluation-mode logits (BatchNorm
// with its running statistics), and the teacher's parameters and buffers
// (running statistics included) stay as the checkpoint had them.
TEST(DistillationStep, StudentLearnsFromTheTeachersEvaluationLogits) {
  const dnn_gating::testing::TempDir tmp;
  torch::manual_seed(5);
  const auto options = dgm::ResNetOptions().depth(8);
  dgm::Model trained = dgm::make_model(options);
  {
    // Running statistics far from those of the batches below (mean 0, std
    // 1): a teacher left in training mode normalises otherwise.
    torch::NoGradGuard no_grad;
    trained.module->train();
    for (int i = 0; i < 3; ++i) trained.forward(torch::randn({8, 3, 32, 32}) * 3 + 2);
  }
  trained.module->eval();
  const std::string file = (tmp.path() / "teacher.pt").string();
  const nlohmann::json meta{{"model", nlohmann::json::parse(dtr::model_to_json(options))}};
  dtr::save_checkpoint(file, *trained.module, meta.dump());

  dtr::Distillation kd;
  kd.teacher = file;
  const double temperature = 3.0, alpha = 0.6;
  const dtr::Teacher teacher = dtr::load_teacher(kd, options, torch::kCPU);
  const auto teacher_state = state_of(*teacher.model.module);
  ASSERT_EQ(teacher_state.count("bn1.running_mean"), 1u);
  const dtr::TaskLoss task_loss = dtr::distillation_task_loss(teacher, temperature, alpha);

  dgm::Model student = dgm::make_model(dgm::ResNetOptions().depth(8));
  const dtr::Classifier classifier{student.module, student.forward};
  torch::optim::SGD sgd(student.module->parameters(),
                        torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-4));
  for (int step = 0; step < 3; ++step) {
    const torch::Tensor images = torch::randn({8, 3, 32, 32});
    const torch::Tensor labels = torch::randint(10, {8}, torch::kLong);
    torch::Tensor teacher_logits;
    {
      torch::NoGradGuard no_grad;
      teacher_logits = trained.forward(images);  // evaluation mode, the checkpoint's state
    }
    const dtr::StepResult result =
        dtr::train_step(classifier, sgd, dnn_gating::layers::GatingLoss{}, images, labels,
                        /*before_step=*/nullptr, task_loss);
    // Float32 logits of order 1 through log-softmax: a few ulps of the loss.
    const double expected = hinton_loss(result.logits, teacher_logits, labels, temperature, alpha);
    EXPECT_NEAR(result.ce_loss, expected, 1e-5 * std::max(1.0, std::abs(expected)))
        << "step " << step;
    for (const auto& [name, tensor] : state_of(*teacher.model.module)) {
      ASSERT_EQ(teacher_state.count(name), 1u) << name;
      EXPECT_TRUE(torch::equal(tensor, teacher_state.at(name)))
          << "step " << step << ": the teacher's " << name << " changed";
    }
    for (const auto& [name, tensor] : state_of(*trained.module)) {
      EXPECT_TRUE(torch::equal(tensor, teacher_state.at(name)))
          << "the teacher's " << name << " is not the checkpoint's";
    }
  }
}
